"""`SinkQueue`: one sink's buffer, accounting, delivery and pump, for the `EventHub`.

The hub appends each event to every pumped sink's queue (its hot path stays in
`hub.py`); this module holds what happens next: the pump task that drains one
queue, delivery with failure accounting, drop reports, and the shutdown phases.

Buffering policy per sink (`EventHub.add_sink`):

- `block_never_drop` (the default for sinks with `audit = True`, i.e. the JSONL
  audit log): an unbounded buffer. Nothing is ever dropped; a slow disk costs
  memory, never events.
- `drop_oldest` (the default for every other sink: console, webhook): a bounded
  buffer (10,000 by default). When it is full the oldest event is dropped and
  counted; the hub reports drops as `sink_error` events {sink, dropped} at most
  once a second while dropping, and once more before `run_finished`.

A sink whose `emit` raises is recorded as a `sink_error` event {sink, error} and,
after `max_consecutive_failures` failures in a row, disabled. A sink never
crashes the run and never stops the other sinks. An audit sink (`audit = True`,
the JSONL log) is disabled at its first failure: a failed write may have left a
cut-off line, after which nothing it wrote would verify, so the hub reports the
audit log lost (`EventHub.audit_failure`) and the run ends as an error.

Closing: each pump drains its buffer and the sink's `aclose()` is awaited, even
when the surrounding scope was cancelled (the hub shields the drain). Non-audit
sinks get one deadline for draining and closing; audit sinks are always drained
and closed completely.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import trio

from .event import PipelineEvent
from .sink import LogSink

__all__ = [
    "DEFAULT_SINK_BUFFER",
    "OnFailure",
    "SinkPolicy",
    "SinkQueue",
    "close_sinks",
    "drain_pending",
    "wait_for_pumps",
]

SinkPolicy = Literal["block_never_drop", "drop_oldest"]
DEFAULT_SINK_BUFFER = 10_000

OnFailure = Callable[["SinkQueue", Exception, int], None]
"""What the hub does with a failed delivery of N events: (queue, error, N)."""


def _no_write_lines(lines: Sequence[str]) -> None:
    raise AssertionError("only inline sinks are written through write_lines")


class SinkQueue:
    """One sink's buffer and accounting; touched only from the trio thread."""

    def __init__(self, sink: LogSink, policy: SinkPolicy, bound: int | None) -> None:
        self.sink = sink
        self.name = str(getattr(sink, "name", type(sink).__name__))
        self.policy = policy
        self.audit = getattr(sink, "audit", False) is True
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
        # drain): bare lines (str) when `lines_only`, else `Entry` tuples.
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
        # Invariant: events delivered by successful writes / deliveries, in order.
        self.written = 0

    def lines_written(self) -> int:
        """Whole events the sink holds: its own count if it keeps one (the FileSink knows
        the whole lines of a failed write that landed), else the successful deliveries."""
        count = getattr(self.sink, "lines_written", None)
        return count if type(count) is int else self.written

    def wake(self) -> None:
        if self.waiting:
            self.waiting = False
            self.wakeup.set()

    def stats(self, held: int) -> dict[str, Any]:
        """Policy, buffered (`held`: lines the hub holds for inline sinks), dropped, failures."""
        return {
            "policy": self.policy,
            "buffered": len(self.pending) + len(self.inflight) + (held if self.inline else 0),
            "dropped": self.dropped_total,
            "failures": self.failures_total,
            "disabled": self.disabled,
        }

    def take_drop_report(self, now: float, *, force: bool) -> dict[str, Any] | None:
        """The `sink_error` payload for the drops since the last report, if one is due.

        Due when events were dropped and (`force` or a second has passed since the
        last report, by `now` = time.monotonic()); taking it resets the count.
        """
        if not self.dropped or not (force or now - self.last_drop_report >= 1.0):
            return None
        dropped, self.dropped = self.dropped, 0
        self.last_drop_report = now
        return {
            "sink": self.name,
            "error": f"buffer full ({self.bound} events): dropped the oldest",
            "dropped": dropped,
            "dropped_total": self.dropped_total,
        }

    def record_failure(self, exc: Exception, events: int, max_failures: int) -> dict[str, Any]:
        """Count a failed delivery of `events` events; disable the sink (discarding its
        buffer) at `max_failures` in a row, an audit sink at once. Returns the
        `sink_error` payload."""
        self.failures += 1
        self.failures_total += 1
        disable = self.audit or self.failures >= max_failures
        discarded = 0
        if disable and not self.disabled:
            self.disabled = True
            discarded = len(self.pending)
            self.pending.clear()
        return {
            "sink": self.name,
            "error": f"{type(exc).__name__}: {exc}",
            "events": events,
            "consecutive_failures": self.failures,
            "disabled": disable,
            "discarded": discarded,
        }

    async def deliver(self, batch: list[Any], on_failure: OnFailure) -> None:
        """Hand `batch` to the sink; report a failure through `on_failure` instead of raising."""
        sink = self.sink
        try:
            if self.lines_only:
                await sink.emit_lines(batch)  # type: ignore[attr-defined]
            elif self.max_batch > 1:
                await sink.emit_batch(batch)  # type: ignore[attr-defined]
            else:
                for event, line in batch:
                    # Not lines_only, so the hub built every entry's event.
                    await sink.emit(cast(PipelineEvent, event), line=line)
        except Exception as exc:
            on_failure(self, exc, len(batch))
        else:
            self.failures = 0
            self.written += len(batch)

    async def deliver_pending(self, on_failure: OnFailure) -> None:
        """Deliver the in-flight batch (if a cancelled pump left one), then the buffer."""
        while self.inflight or self.pending:
            if not self.inflight:
                count = min(self.max_batch, len(self.pending))
                self.inflight = [self.pending.popleft() for _ in range(count)]
            await self.deliver(self.inflight, on_failure)
            self.inflight = []

    async def pump(self, closing: Callable[[], bool], on_failure: OnFailure) -> None:
        """The sink's task: deliver whatever arrives; return once `closing()` and empty."""
        try:
            while True:
                if self.pending or self.inflight:
                    await self.deliver_pending(on_failure)
                elif closing():
                    return
                else:
                    self.wakeup = trio.Event()
                    self.waiting = True
                    await self.wakeup.wait()
        finally:
            self.done.set()


async def wait_for_pumps(pumped: Sequence[SinkQueue], deadline: float) -> None:
    """Wake every pump (the hub is closing) and wait, until `deadline`, for them to return."""
    for queue in pumped:
        queue.waiting = False
        queue.wakeup.set()
    with trio.move_on_at(deadline):
        for queue in pumped:
            await queue.done.wait()


async def drain_pending(
    pumped: Sequence[SinkQueue], deadline: float, on_failure: OnFailure
) -> None:
    """Deliver what the pumps left: `drop_oldest` sinks first, until `deadline`, then
    `block_never_drop` sinks completely."""
    for queue in pumped:
        if queue.policy == "drop_oldest" and (queue.pending or queue.inflight):
            with trio.move_on_at(deadline):
                await queue.deliver_pending(on_failure)
    for queue in pumped:
        if queue.policy == "block_never_drop":
            await queue.deliver_pending(on_failure)


async def close_sinks(queues: Sequence[SinkQueue], deadline: float) -> None:
    """`aclose()` every sink: pumped `drop_oldest` ones until `deadline`, the rest fully.

    A sink's failing close is counted, never raised: it must not hide the run's outcome.
    """
    for queue in queues:
        try:
            if queue.policy == "drop_oldest" and not queue.inline:
                with trio.move_on_at(deadline):
                    await queue.sink.aclose()
            else:
                await queue.sink.aclose()
        except Exception:
            queue.failures_total += 1
