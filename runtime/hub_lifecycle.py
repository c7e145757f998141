"""`HubLifecycle`: how an `EventHub` opens and closes (its `running()` and friends).

`running()` starts one pump task per pumped sink (`SinkQueue.pump`) and, on exit,
closes in two shielded phases sharing one deadline (`drain_timeout` seconds from
the moment `running()` starts to exit): the pumps empty their buffers, then a
finished run's log is sealed (`EventHub.seal`), what is left is delivered (non-audit sinks
bounded by the deadline, audit sinks completely) and every sink's `aclose()` is
awaited. A hub whose sinks are all
inline and close synchronously may use `open_inline()`/`close_inline()` instead,
which never await. `EventHub` (hub.py) inherits these methods; this mixin only
reads and sets the hub state declared below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Self

import trio

from .sink_queue import SinkQueue, close_sinks, drain_pending, wait_for_pumps

if TYPE_CHECKING:
    from .subscription import Subscription

__all__ = ["HubLifecycle"]


class HubLifecycle:
    """`EventHub`'s opening and closing; see the module docstring."""

    # The EventHub state this mixin uses (set in EventHub.__init__; see the invariants there).
    drain_timeout: float
    max_consecutive_failures: int
    _queues: list[SinkQueue]
    _pumped: list[SinkQueue]
    _held: list[str]
    _subscribers: set[Subscription]
    _lean: bool
    _started: bool
    _sync_close: bool
    _closing: bool
    _closed: bool
    _deadline: float | None
    seal_on_close: bool

    if TYPE_CHECKING:  # EventHub's methods

        def flush(self) -> None: ...

        def seal(self) -> None: ...

        def _report_drops(self, *, force: bool) -> None: ...

        def _delivery_failed(self, queue: SinkQueue, exc: Exception, events: int) -> None: ...

    def _is_closing(self) -> bool:
        return self._closing

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """Run the sink pumps for the duration of the block; drain and close on exit."""
        if self._started:
            raise RuntimeError("EventHub.running() entered twice; a hub serves one run")
        self._started = True
        try:
            if not self._pumped:  # no sink, or inline sinks only: no task, no nursery
                yield self
                return
            async with trio.open_nursery() as nursery:
                for queue in self._pumped:
                    nursery.start_soon(queue.pump, self._is_closing, self._delivery_failed)
                try:
                    yield self
                finally:
                    with trio.CancelScope(shield=True):
                        await self._let_pumps_finish()
                    # Only a pump stuck past the timeout is still running: cancelling is
                    # dear (~40 us a task), so the pumps are asked to return instead.
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._drain_and_close()

    def _shutdown_deadline(self) -> float:
        """When non-audit sinks must be drained and closed: set once, at the first call."""
        if self._deadline is None:
            self._deadline = trio.current_time() + self.drain_timeout
        return self._deadline

    async def _let_pumps_finish(self) -> None:
        """Phase 1: the pumps empty their buffers, by the shutdown deadline."""
        deadline = self._shutdown_deadline()
        self._report_drops(force=True)
        self._closing = True
        await wait_for_pumps(self._pumped, deadline)

    @property
    def runs_inline(self) -> bool:
        """True when `open_inline()` / `close_inline()` may stand in for `running()`.

        That is: no sink needs a pump task (every sink is inline) and every sink
        closes synchronously (`close()`, as the FileSink does; its `aclose()` is then
        not called, so `close()` must do all of it). Opening and closing
        then never await, so they need no nursery and no shielded scope (~15 us a
        run less, measured in bench/RESULTS.md).
        """
        return self._sync_close and not self._pumped

    def open_inline(self) -> None:
        """`running()`'s entry for a hub where `runs_inline` holds; pair with `close_inline`.

        Raises:
            RuntimeError: the hub was already started, or it needs `running()`.
        """
        if self._started:
            raise RuntimeError("EventHub.running() entered twice; a hub serves one run")
        if not self.runs_inline:
            raise RuntimeError(
                "EventHub.open_inline() on a hub with pumped or async-closing sinks; "
                "use `async with hub.running()`"
            )
        self._started = True

    def close_inline(self) -> None:
        """`running()`'s exit for an `open_inline()` hub: write what is held, close the sinks.

        Synchronous, so it needs no shield: a cancelled run still closes its log here.
        """
        if self.seal_on_close:
            self.seal()
        self._finish()
        for queue in self._queues:
            try:
                queue.sink.close()  # type: ignore[attr-defined]  # runs_inline checked it
            except Exception:  # a sink's close must not hide the run's outcome
                queue.failures_total += 1

    def _finish(self) -> None:
        """Write the held lines, then mark the hub closed and end the subscriptions."""
        for _ in range(self.max_consecutive_failures + 1):  # a failure report is held again
            self.flush()
        self._held.clear()
        self._closed = True
        self._lean = False
        for subscription in tuple(self._subscribers):
            subscription._wake()
        self._subscribers.clear()

    async def _drain_and_close(self) -> None:
        """Phase 2: seal the log, deliver what the pumps left (non-audit sinks first,
        bounded) with the seal, then close."""
        deadline = self._shutdown_deadline()  # the one phase 1 started, if it ran
        if self.seal_on_close:
            self.seal()
        await drain_pending(self._pumped, deadline, self._delivery_failed)
        self._finish()
        await close_sinks(self._queues, deadline)
