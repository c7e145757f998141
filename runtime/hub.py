"""`EventHub`: numbers, hash-chains and fans out every event to the sinks.

`emit` is synchronous and cheap (the run's hot path): it serialises the event
once (`LineEncoder`: by hand, byte-identical to `model_dump_json`), chains its
hash, appends it to each sink's buffer and returns. `publish` is `emit` without
the returned object: the engine uses it, and the hub then builds the
`PipelineEvent` only if history, a subscriber or a sink without `emit_lines`
needs it (the audit FileSink takes bare lines). Each sink drains its buffer
from its own pump task, so a slow sink never makes the pipeline wait.

Inline sinks (`inline = True` and a synchronous `write_lines(lines)`: the audit
FileSink, whose write goes to the page cache and is treated as fast) have no
buffer and no pump: `publish` holds their lines and `flush()` writes them, one
write per synchronous burst; the engine flushes before each of its awaits and
at the end of each task, and `emit` flushes at once. A run with only inline
sinks starts no task and opens no nursery; if they also close synchronously
(`close()`), `open_inline()`/`close_inline()` replace `running()` altogether.

Buffering policy per sink (`add_sink`):

- `block_never_drop` (the default for sinks with `audit = True`, i.e. the JSONL
  audit log): an unbounded buffer. Nothing is ever dropped; a slow disk costs
  memory, never events.
- `drop_oldest` (the default for every other sink: console, webhook): a bounded
  buffer (10,000 by default). When it is full the oldest event is dropped and
  counted; the hub reports drops as `sink_error` events {sink, dropped} at most
  once a second while dropping, and once more before `run_finished`.

A sink whose `emit` raises is recorded as a `sink_error` event {sink, error} and,
after `max_consecutive_failures` failures in a row, disabled. A sink never
crashes the run and never stops the other sinks.

Closing: when `running()` exits, each pump drains its buffer and the sink's
`aclose()` is awaited, even when the surrounding scope was cancelled (the drain
is shielded). Non-audit sinks get `drain_timeout` seconds in all, from the
moment `running()` starts to exit, for draining and closing (one deadline);
audit sinks are always drained and closed completely.

Subscribers (`subscribe`, see `subscription.py`) are the UI's WebSocket
clients: each gets the history, then live events, from its own bounded buffer;
one that falls behind is marked `overflowed` and its iteration ends, so the UI
can resync it. They never slow `emit`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, cast

import trio

from .events import EventKind, LineEncoder, PipelineEvent, new_event
from .sinks.base import LogSink
from .subscription import Entry, Subscription

__all__ = ["DEFAULT_SINK_BUFFER", "EventHub", "SinkPolicy", "Subscription"]

SinkPolicy = Literal["block_never_drop", "drop_oldest"]
DEFAULT_SINK_BUFFER = 10_000
_MAX_HELD = 256  # held lines that make `publish` flush on its own (bounds one write)
_Entry = Entry
_RUN_FINISHED = EventKind.RUN_FINISHED
_SINK_ERROR = EventKind.SINK_ERROR
_sha256 = hashlib.sha256
_time = time.time
_new_event = new_event  # kept under its old name for callers of the hub module


def _no_write_lines(lines: Sequence[str]) -> None:
    raise AssertionError("only inline sinks are written through write_lines")


class _SinkQueue:
    """One sink's buffer and accounting; touched only from the trio thread."""

    def __init__(self, sink: LogSink, policy: SinkPolicy, bound: int | None) -> None:
        self.sink = sink
        self.name = str(getattr(sink, "name", type(sink).__name__))
        self.policy = policy
        self.bound = bound if policy == "drop_oldest" else None
        # A sink with `emit_lines(lines)` (the FileSink) needs only the lines, so the hub
        # need not build a PipelineEvent per event for it.
        self.lines_only = callable(getattr(sink, "emit_lines", None))
        # A sink with `inline = True` and a synchronous `write_lines(lines)` (the FileSink:
        # one local os.write) is written by the hub itself (`flush`): no pump task, no wakeup.
        write_lines = getattr(sink, "write_lines", None)
        self.inline = getattr(sink, "inline", False) is True and callable(write_lines)
        self.write_lines: Callable[[Sequence[str]], object] = write_lines or _no_write_lines
        batched = self.lines_only or hasattr(sink, "emit_batch")
        batch = getattr(sink, "max_batch", 1) if batched else 1
        self.max_batch = max(1, int(batch))
        # Invariant: events appended by `emit`, popped in order by the pump (or the final
        # drain): bare lines (str) when `lines_only`, else `_Entry` tuples.
        self.pending: deque[Any] = deque()
        # Invariant: events popped but not yet delivered (a delivery is under way, or the
        # pump was cancelled mid-delivery); same element type as `pending`.
        self.inflight: list[Any] = []
        self.wakeup = trio.Event()
        # Invariant: True only while the pump waits on `wakeup`; emit sets the event then.
        self.waiting = False
        self.done = trio.Event()
        self.dropped = 0  # events dropped since the last drop report
        self.dropped_total = 0
        self.last_drop_report = -math.inf  # time.monotonic() of the last drop report
        self.failures = 0  # consecutive failing deliveries
        self.failures_total = 0
        self.disabled = False

    def wake(self) -> None:
        if self.waiting:
            self.waiting = False
            self.wakeup.set()


class EventHub:
    """Publishes a run's events to its sinks and subscribers.

    `run_id` and `pipeline_hash` are fixed at construction (the line encoder
    escapes them once).
    """

    def __init__(
        self,
        *,
        run_id: str,
        pipeline_hash: str = "",
        sinks: Sequence[LogSink] = (),
        keep_history: bool = True,
        drain_timeout: float = 5.0,
        max_consecutive_failures: int = 5,
    ) -> None:
        self.run_id = run_id
        self.pipeline_hash = pipeline_hash
        self.drain_timeout = drain_timeout
        self.max_consecutive_failures = max_consecutive_failures
        self._queues: list[_SinkQueue] = []  # every sink, in the order added
        # Invariant: the enabled inline queues, and the queues drained by pump tasks;
        # together with the disabled inline queues they are `_queues`.
        self._inline: list[_SinkQueue] = []
        self._pumped: list[_SinkQueue] = []
        # Invariant: lines published but not yet written to the inline sinks (see `flush`).
        self._held: list[str] = []
        self._subscribers: set[Subscription] = set()
        # Invariant: seq of the next event; equals the number of events emitted so far.
        self._seq = 0
        # Invariant: sha256 hex of the previous event's line ("" before the first).
        self._prev_hash = ""
        self._encoder = LineEncoder(run_id, pipeline_hash)
        self._line = self._encoder.line  # bound once: `publish` is the hot path
        # Invariant: True when some consumer needs every PipelineEvent object (history, or
        # a sink without `emit_lines`); subscribers are checked per event.
        self._eager = keep_history
        # Invariant: True while open with no history and inline sinks only (or none):
        # `publish` then needs no event object, no buffer and no drop accounting.
        self._lean = not keep_history
        self._started = False
        # Invariant: True while every sink added has a synchronous `close()` (see runs_inline).
        self._sync_close = True
        self._closing = False  # running() is exiting: pumps return once their buffer is empty
        self._closed = False  # every sink drained and closed; emit is an error now
        # Invariant: None until running() starts to exit; then when non-audit sinks must
        # be drained and closed by (trio time), one deadline for every phase.
        self._deadline: float | None = None
        # Invariant: every (event, line) emitted, in order, when keep_history is on.
        self.history: list[tuple[PipelineEvent, str]] | None = [] if keep_history else None
        for sink in sinks:
            self.add_sink(sink)

    def add_sink(
        self,
        sink: LogSink,
        *,
        buffer: int | None = None,
        policy: SinkPolicy | None = None,
    ) -> None:
        """Attach a sink before `running()` starts.

        Args:
            sink: the sink; its `audit` attribute (default False) picks the default policy.
            buffer: the bound of a `drop_oldest` buffer (default 10,000).
            policy: `block_never_drop` (unbounded, lossless) or `drop_oldest`.

        Raises:
            RuntimeError: the hub is already running.
        """
        if self._started:
            raise RuntimeError(
                "EventHub.add_sink after running() started; add every sink before the run"
            )
        if policy is None:
            policy = "block_never_drop" if getattr(sink, "audit", False) else "drop_oldest"
        bound = buffer if buffer is not None else DEFAULT_SINK_BUFFER
        if bound < 1:
            raise ValueError(f"sink buffer must be at least 1, got {bound}")
        queue = _SinkQueue(sink, policy, bound)
        self._queues.append(queue)
        (self._inline if queue.inline else self._pumped).append(queue)
        self._eager = self._eager or not (queue.lines_only or queue.inline)
        self._lean = not self._eager and not self._pumped
        self._sync_close = self._sync_close and callable(getattr(sink, "close", None))

    def subscribe(self, max_buffer: int = 1000) -> Subscription:
        """A live view of the run: the history first (if kept), then each new event."""
        subscription = Subscription(self, max_buffer)
        if not self._closed:
            self._subscribers.add(subscription)
        return subscription

    def emit(
        self,
        kind: EventKind,
        *,
        agent: str | None = None,
        item: str | None = None,
        attempt: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> PipelineEvent:
        """Record one event and hand it to every sink; never blocks."""
        event = self._publish(kind, agent, item, attempt, payload, True)
        assert event is not None  # _publish builds it when asked
        return event

    def publish(
        self,
        kind: EventKind,
        *,
        agent: str | None = None,
        item: str | None = None,
        attempt: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """`emit` without the return value: the engine's hot path.

        The hub then builds the `PipelineEvent` object only if a consumer needs it
        (history, a subscriber, a sink without `emit_lines`); with only the audit
        FileSink attached, an event costs its JSON line and hash alone. Inline sinks'
        lines are held until `flush()`.
        """
        if self._lean and not self._subscribers:  # nobody needs the object: line and hash
            seq = self._seq
            line = self._line(seq, _time(), kind, agent, item, attempt, payload, self._prev_hash)
            if line is not None:
                self._seq = seq + 1
                self._prev_hash = _sha256(line.encode()).hexdigest()
                if self._inline:
                    held = self._held
                    held.append(line)
                    if len(held) >= _MAX_HELD:
                        self.flush()
                return
        self._publish(kind, agent, item, attempt, payload, False)

    def _publish(
        self,
        kind: EventKind,
        agent: str | None,
        item: str | None,
        attempt: int | None,
        payload: dict[str, Any] | None,
        want_event: bool,
    ) -> PipelineEvent | None:
        """Number, serialise, chain and queue one event; the event object if it was built."""
        if self._closed:
            raise RuntimeError(
                "EventHub.emit after the hub was closed; emit inside `async with hub.running()`"
            )
        if kind is _RUN_FINISHED:
            self._report_drops(force=True)
        seq, ts, prev_hash = self._seq, time.time(), self._prev_hash
        line = self._encoder.line(seq, ts, kind, agent, item, attempt, payload, prev_hash)
        event = None
        if line is None or want_event or self._eager or self._subscribers:
            event = new_event(
                {
                    "run_id": self.run_id,
                    "seq": seq,
                    "ts": ts,
                    "kind": kind,
                    "agent": agent,
                    "item": item,
                    "attempt": attempt,
                    "payload": payload if payload is not None else {},
                    "pipeline_hash": self.pipeline_hash,
                    "prev_hash": prev_hash,
                }
            )
            if line is None:
                line = event.model_dump_json()
        self._seq = seq + 1
        self._prev_hash = _sha256(line.encode()).hexdigest()
        # No tuple when nobody needs the event: the lines-only queues take the bare line.
        entry = None if event is None else (event, line)
        if self.history is not None:
            self.history.append(entry)  # type: ignore[arg-type]  # kept history means _eager
        if self._inline:
            held = self._held
            held.append(line)
            if want_event or len(held) >= _MAX_HELD:  # `emit` writes through
                self.flush()
        dropping = False
        # Drop reports and run_finished are never dropped (they may exceed a bound by a few),
        # so the drop count reported before run_finished is the final one.
        droppable = kind is not _SINK_ERROR and kind is not _RUN_FINISHED
        for queue in self._pumped:
            if queue.disabled:
                continue
            pending = queue.pending
            if droppable and queue.bound is not None and len(pending) >= queue.bound:
                pending.popleft()
                queue.dropped += 1
                queue.dropped_total += 1
                dropping = True
            pending.append(line if queue.lines_only else entry)
            if queue.waiting:
                queue.wake()
        if self._subscribers:
            for subscription in tuple(self._subscribers):
                subscription._push(entry)  # type: ignore[arg-type]  # built for subscribers
        if dropping:
            self._report_drops(force=False)
        return event

    def flush(self) -> None:
        """Write the lines `publish` held to the inline sinks, in one write per sink.

        `publish` (the engine's path) holds inline sinks' lines so a synchronous burst of
        events costs one system call; the engine calls `flush` before each of its awaits
        and when a task ends, so whenever the run waits, every line is in the kernel.
        `emit` (everyone else) flushes at once. A failing sink is reported as a
        `sink_error` event, itself held until the next flush.
        """
        held = self._held
        if not held:
            return
        self._held = []
        failed: list[tuple[_SinkQueue, Exception]] | None = None
        for queue in self._inline:
            try:
                queue.write_lines(held)
            except Exception as exc:  # reported after every sink has these lines, in order
                failed = failed or []
                failed.append((queue, exc))
            else:
                queue.failures = 0
        if failed is not None:
            for queue, error in failed:
                self._record_failure(queue, error, len(held))

    @property
    def events_emitted(self) -> int:
        return self._seq

    def sink_stats(self) -> dict[str, dict[str, Any]]:
        """Per sink: policy, buffered, dropped, failures, disabled (for the CLI and tests)."""
        return {
            queue.name: {
                "policy": queue.policy,
                "buffered": len(queue.pending)
                + len(queue.inflight)
                + (len(self._held) if queue.inline else 0),
                "dropped": queue.dropped_total,
                "failures": queue.failures_total,
                "disabled": queue.disabled,
            }
            for queue in self._queues
        }

    def _report_drops(self, *, force: bool) -> None:
        """Emit `sink_error` {sink, dropped} for sinks that dropped since their last report."""
        now = time.monotonic()
        for queue in self._queues:
            if queue.dropped and (force or now - queue.last_drop_report >= 1.0):
                dropped, queue.dropped = queue.dropped, 0
                queue.last_drop_report = now
                self.publish(
                    _SINK_ERROR,
                    payload={
                        "sink": queue.name,
                        "error": f"buffer full ({queue.bound} events): dropped the oldest",
                        "dropped": dropped,
                        "dropped_total": queue.dropped_total,
                    },
                )

    async def _deliver(self, queue: _SinkQueue, batch: list[Any]) -> None:
        """Hand `batch` to the sink; record a failure instead of raising."""
        sink = queue.sink
        try:
            if queue.lines_only:
                await sink.emit_lines(batch)  # type: ignore[attr-defined]
            elif queue.max_batch > 1:
                await sink.emit_batch(batch)  # type: ignore[attr-defined]
            else:
                for event, line in batch:
                    # Not lines_only, so `_eager` was set: every entry has its event.
                    await sink.emit(cast(PipelineEvent, event), line=line)
        except Exception as exc:
            self._record_failure(queue, exc, len(batch))
            self.flush()  # the pump is no engine task: write its report to the audit log now
        else:
            queue.failures = 0

    def _record_failure(self, queue: _SinkQueue, exc: Exception, events: int) -> None:
        """Count a failed delivery of `events` events, disable the sink after too many in a
        row, and record a `sink_error` event (which other sinks, and this one, then get)."""
        queue.failures += 1
        queue.failures_total += 1
        disable = queue.failures >= self.max_consecutive_failures
        discarded = 0
        if disable and not queue.disabled:
            queue.disabled = True
            discarded = len(queue.pending)
            queue.pending.clear()
            if queue.inline:
                self._inline = [q for q in self._inline if q is not queue]
        if self._closed:
            return
        self.publish(
            _SINK_ERROR,
            payload={
                "sink": queue.name,
                "error": f"{type(exc).__name__}: {exc}",
                "events": events,
                "consecutive_failures": queue.failures,
                "disabled": disable,
                "discarded": discarded,
            },
        )

    async def _deliver_pending(self, queue: _SinkQueue) -> None:
        """Deliver the in-flight batch (if a cancelled pump left one), then the buffer."""
        while queue.inflight or queue.pending:
            if not queue.inflight:
                count = min(queue.max_batch, len(queue.pending))
                queue.inflight = [queue.pending.popleft() for _ in range(count)]
            await self._deliver(queue, queue.inflight)
            queue.inflight = []

    async def _pump(self, queue: _SinkQueue) -> None:
        try:
            while True:
                if queue.pending or queue.inflight:
                    await self._deliver_pending(queue)
                elif self._closing:
                    return
                else:
                    queue.wakeup = trio.Event()
                    queue.waiting = True
                    await queue.wakeup.wait()
        finally:
            queue.done.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[EventHub]:
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
                    nursery.start_soon(self._pump, queue)
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
        for queue in self._pumped:
            queue.waiting = False
            queue.wakeup.set()
        with trio.move_on_at(deadline):
            for queue in self._pumped:
                await queue.done.wait()

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
        """Phase 2: deliver what the pumps left (non-audit sinks first, bounded), then close."""
        deadline = self._shutdown_deadline()  # the one phase 1 started, if it ran
        lossy = [q for q in self._pumped if q.policy == "drop_oldest"]
        lossless = [q for q in self._pumped if q.policy == "block_never_drop"]
        for queue in lossy:
            if queue.pending or queue.inflight:
                with trio.move_on_at(deadline):
                    await self._deliver_pending(queue)
        for queue in lossless:
            await self._deliver_pending(queue)
        self._finish()
        for queue in self._queues:
            try:
                if queue.policy == "drop_oldest" and not queue.inline:
                    with trio.move_on_at(deadline):
                        await queue.sink.aclose()
                else:
                    await queue.sink.aclose()
            except Exception:  # a sink's close must not hide the run's outcome
                queue.failures_total += 1
