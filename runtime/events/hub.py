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
handler calls, and a fan-out's tasks end unflushed inside `flushing_before_waits`
(a trio instrument flushes before each wait for I/O); `emit` flushes at once. A run with only inline
sinks starts no task and opens no nursery; if they also close synchronously
(`close()`), `open_inline()`/`close_inline()` replace `running()` altogether.

Each sink's buffer, its policy (lossless `block_never_drop`, the audit log's
default, or bounded `drop_oldest`, the others'), its pump and its failure
accounting are `sink_queue.py`'s (a failing sink is reported as `sink_error`
events and disabled after `max_consecutive_failures` in a row); opening and
closing are the hub's own (see "Opening and closing" below).

Opening and closing: `running()` starts one pump task per pumped sink
(`SinkQueue.pump`) and, on exit, closes in two shielded phases sharing one
deadline (`drain_timeout` seconds from the moment `running()` starts to exit):
the pumps empty their buffers, then a finished run's log is sealed (`seal`),
what is left is delivered (non-audit sinks bounded by the deadline, audit sinks
completely) and every sink's `aclose()` is awaited. A hub whose sinks are all
inline and close synchronously may use `open_inline()`/`close_inline()`
instead, which never await.

Closing a hub whose run has finished (`seal_on_close`, set by `finish_run` as it
writes `run_finished`) first emits `log_sealed` (`events.seal_event`): the log's
last line, covering the line before it and itself, so nothing at the end of a
finished log can be edited unnoticed.
An audit sink whose write fails is disabled at once and recorded in
`audit_failure`; `on_audit_failure` (the runner's: end the run) is called then,
and the log is not sealed.

Subscribers (`subscribe`, see `subscription.py`) are the UI's WebSocket
clients: each gets the history, then live events, from its own bounded buffer;
one that falls behind is marked `overflowed` and its iteration ends, so the UI
can resync it. They never slow `emit`.

Commit, then publish: a hub given a `committer` (the run store's, `commit.py`)
numbers and chains each event as always but delivers it (history, subscribers,
every sink: the JSONL file included) only once the committer says it is
committed. `flush()` hands the burst to the committer without waiting (or, while
a burst is being committed, leaves it queued: the acknowledgement submits
everything published meanwhile as the next burst, so a run has one commit in
flight at a time); the acknowledgement arrives on the trio loop and delivers the
burst, and the delivered lines are written with one write per acknowledgement.
A failed commit is recorded like a failed audit write (`audit_failure`,
`on_audit_failure`: the run stops, as an error) and nothing after the last
commit is ever published, so the sinks can lag the store, never lead it.
`wait_committed()` waits for every event published so far; `running()` waits
for them before it seals and closes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Self

import trio

from ..errors import AgentflowError
from .commit import EventCommitter
from .event import EventKind, LineEncoder, PipelineEvent, new_event
from .sink import LogSink
from .sink_queue import (
    DEFAULT_SINK_BUFFER,
    SinkPolicy,
    SinkQueue,
    close_sinks,
    drain_pending,
    wait_for_pumps,
)
from .subscription import Subscription

__all__ = [
    "DEFAULT_SINK_BUFFER",
    "AuditFailure",
    "AuditLogError",
    "EventHub",
    "SinkPolicy",
    "Subscription",
]

_MAX_HELD = 256  # held lines that make `publish` flush on its own (bounds one write)
# An event `publish` keeps until `flush` builds its line: (ts, kind, agent, item, attempt,
# payload).
_RawEvent = tuple[float, EventKind, str | None, str | None, int | None, dict[str, Any] | None]
_RUN_FINISHED = EventKind.RUN_FINISHED
_SINK_ERROR = EventKind.SINK_ERROR
_LOG_SEALED = EventKind.LOG_SEALED
_sha256 = hashlib.sha256
_time = time.time


class _FlushBeforeWait(trio.abc.Instrument):
    """Writes a hub's held lines before each wait for I/O (`flushing_before_waits`)."""

    __slots__ = ("hub",)

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    def before_io_wait(self, timeout: float) -> None:
        hub = self.hub
        failed = hub.audit_failure
        try:
            hub.flush()
        except Exception as exc:  # trio would log it and drop the instrument: fail the log
            hub.flush_failed(exc)
        if hub.audit_failure is not failed:
            # The log failed here, so the run was told to stop (its tasks cancelled);
            # but trio has already chosen how long to sleep: wake it at once.
            trio.lowlevel.current_trio_token().run_sync_soon(_nothing)


def _nothing() -> None:
    pass


class AuditLogError(AgentflowError):
    """The run's audit log could not be written (a full disk, a lost mount...)."""


@dataclass(frozen=True, slots=True)
class AuditFailure:
    """The first failed write of an audit sink: which log, why, how much it holds."""

    where: str  # the log's path, the sink's name, or the run store
    error: BaseException

    @property
    def reason(self) -> str:
        """`No space left on device` for an OSError, else `Type: message`."""
        error = self.error
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        return f"{type(error).__name__}: {error}"

    def message(self, written: int, emitted: int) -> str:
        return (
            f"audit log {self.where} could not be written: {self.reason}; "
            f"{written} of {emitted} events written"
        )


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
        committer: EventCommitter | None = None,
    ) -> None:
        self.run_id = run_id
        self.pipeline_hash = pipeline_hash
        self.drain_timeout = drain_timeout
        self.max_consecutive_failures = max_consecutive_failures
        self._queues: list[SinkQueue] = []  # every sink, in the order added
        # Invariant: the enabled inline queues, and the queues drained by pump tasks;
        # together with the disabled inline queues they are `_queues`.
        self._inline: list[SinkQueue] = []
        self._pumped: list[SinkQueue] = []
        # Invariant: lines published but not yet written to the inline sinks (see `flush`).
        self._held: list[str] = []
        # Invariant: events `publish` took on a lean path, not yet encoded (`flush` builds
        # their lines): seqs `_seq - len(_raw)` onwards, the first chained to `_prev_hash`.
        self._raw: list[_RawEvent] = []
        self._subscribers: set[Subscription] = set()
        # Invariant: seq of the next event; equals the number of events emitted so far.
        self._seq = 0
        # Invariant: sha256 hex of the previous event's line ("" before the first, or when
        # that line was never built because nothing listened: see `publish`).
        self._prev_hash = ""
        self._encoder = LineEncoder(run_id, pipeline_hash)
        self._line = self._encoder.line  # bound once: `publish` is the hot path
        # Invariant: True when some consumer needs every PipelineEvent object (history, or
        # a sink without `emit_lines`); subscribers are checked per event.
        self._eager = keep_history
        # Commit, then publish (see the module docstring): None, or where events are
        # committed before any sink sees them.
        self._committer = committer
        # Invariant: events published but not yet handed to the committer, in seq order.
        self._uncommitted: list[tuple[PipelineEvent | None, str, EventKind]] = []
        # Invariant: bursts handed to the committer and not yet acknowledged.
        self._inflight = 0
        # Invariant: callbacks waiting for `_uncommitted` to be submitted (`after_submitted`).
        self._after_submit: list[Callable[[], None]] = []
        self._idle: trio.Event | None = None  # set when `_inflight` drops to 0
        # Invariant: None, or the committer's first failure (nothing is committed after it).
        self.commit_failure: BaseException | None = None
        # Invariant: events the committer acknowledged (and the hub then delivered).
        self.events_committed = 0
        # Lines the first audit sink's log held before this hub wrote to it, and events
        # the store held before this hub (a resumed run: `continue_chain`).
        self._audit_lines_before = 0
        self._committed_before = 0
        # Invariant: True while open with no history and inline sinks only (or none) and
        # no committer: `publish` then needs no event object, no buffer, no drop accounting.
        self._lean = not keep_history and committer is None
        # Invariant: True while open with a committer and no consumer of event objects
        # (no history, every sink lines-only or inline): `publish` then queues the bare
        # line for the commit.
        self._commit_lean = not keep_history and committer is not None
        self._token: trio.lowlevel.TrioToken | None = None  # for `_write_soon`
        # `flushing_before_waits`: how many blocks are open, and their trio instrument.
        self._wait_flush_depth = 0
        self._wait_flusher: _FlushBeforeWait | None = None
        self._write_scheduled = False
        self._started = False
        # Invariant: True while every sink added has a synchronous `close()` (see runs_inline).
        self._sync_close = True
        self._closing = False  # running() is exiting: pumps return once their buffer is empty
        self._closed = False  # every sink drained and closed; emit is an error now
        # Invariant: None until running() starts to exit; then when non-audit sinks must
        # be drained and closed by (trio time), one deadline for every phase.
        self._deadline: float | None = None
        # Invariant: None until an audit sink's write fails; then that first failure.
        self.audit_failure: AuditFailure | None = None
        # Called (once) when `audit_failure` is set; the runner ends the run with it.
        self.on_audit_failure: Callable[[], None] | None = None
        # True once the run has finished: closing the hub then seals the log (`seal`).
        self.seal_on_close = False
        # Invariant: True once `log_sealed` was emitted; nothing is logged after it.
        self._sealed = False
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
        queue = SinkQueue(sink, policy, bound)
        self._queues.append(queue)
        (self._inline if queue.inline else self._pumped).append(queue)
        self._eager = self._eager or not (queue.lines_only or queue.inline)
        self._lean = not self._eager and not self._pumped and self._committer is None
        self._commit_lean = not self._eager and self._committer is not None
        self._sync_close = self._sync_close and callable(getattr(sink, "close", None))

    def commit_to(self, committer: EventCommitter) -> None:
        """Commit every event to `committer` before publishing it (see the module
        docstring); like `add_sink`, only before `running()` starts and before any event.

        Raises:
            RuntimeError: the hub is already running, has events, or has a committer.
        """
        if self._started or self._seq or self._committer is not None:
            raise RuntimeError(
                "EventHub.commit_to after the hub started or emitted, or twice; "
                "attach the committer before the run"
            )
        self._committer = committer
        self._lean = False
        self._commit_lean = not self._eager

    @property
    def committer(self) -> EventCommitter | None:
        """Where events are committed before they are published (None: nowhere)."""
        return self._committer

    def continue_chain(self, seq: int, prev_hash: str, *, audit_lines_before: int = 0) -> None:
        """Number the next event `seq` and chain it to `prev_hash`: a resumed run's hub
        continues its log (`engine/resume.py`). Only before the first event. The store
        holds the `seq` earlier events; `audit_lines_before` of them are already in the
        first audit sink's log (it is appended to), so `audit_events_written` counts
        the whole log, not just this hub's part.

        Raises:
            RuntimeError: the hub already has events.
        """
        if self._seq:
            raise RuntimeError("EventHub.continue_chain after the hub emitted; call it first")
        self._seq = seq
        self._prev_hash = prev_hash
        self._committed_before = seq
        self._audit_lines_before = audit_lines_before

    def after_submitted(self, callback: Callable[[], None]) -> None:
        """Call `callback` once every event published so far is handed to the committer:
        at once if it is (after a flush), else right after the burst that holds them is
        submitted. Commit before proceed: a memo row submitted from `callback` is
        committed with its events or after them, never before (`engine/memo.py`)."""
        self.flush()
        if not self._uncommitted or self._committer is None:
            callback()
        else:
            self._after_submit.append(callback)

    def subscribe(self, max_buffer: int = 1000) -> Subscription:
        """A live view of the run: the history first (if kept), then each new event."""
        subscription = Subscription(
            self.history,
            self._subscribers,
            max_buffer,
            source_closed=self._closed,
        )
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
        FileSink attached, an event costs its JSON line and hash alone.

        Lazily: when nobody needs the object (no history, no subscriber, sinks that take
        bare lines), the event is kept as given and its line and hash are built at the
        next `flush()` (the end of the burst: the engine flushes before each await), once
        per burst; so `payload` must not be changed after `publish`. When nothing listens
        at all (no sink, no committer, no history, no subscriber), the event is only
        numbered: no line, no hash (a subscriber that joins later sees the chain start
        afresh: its first event's `prev_hash` is "").
        """
        if self._lean and not self._subscribers:  # nobody needs the object
            self._seq += 1
            if self._inline:  # the line and hash are built at `flush`
                raw = self._raw
                raw.append((_time(), kind, agent, item, attempt, payload))
                if len(raw) >= _MAX_HELD:
                    self.flush()
            else:  # nothing listens: nothing is built
                self._prev_hash = ""
            return
        if self._commit_lean and not self._subscribers and kind is not _RUN_FINISHED:
            self._seq += 1  # as above; `flush` queues the lines for the commit
            raw = self._raw
            raw.append((_time(), kind, agent, item, attempt, payload))
            if len(raw) >= _MAX_HELD:
                self.flush()
            return
        self._publish(kind, agent, item, attempt, payload, False)

    def _encode_raw(self) -> None:
        """Build the lines of the events `publish` kept raw, chain their hashes, and queue
        them for the committer, or (without one) for the inline sinks."""
        raw, self._raw = self._raw, []
        try:
            lines, self._prev_hash = self._encoder.chain(self._seq - len(raw), raw, self._prev_hash)
        except Exception as exc:  # a payload JSON cannot hold (a plugin's `publish`)
            self.flush_failed(exc)  # the burst is lost: the log fails, the run stops
            return
        if self._committer is not None:
            self._uncommitted += [
                (None, line, event[1]) for line, event in zip(lines, raw, strict=True)
            ]
        elif self._held:
            self._held += lines
        else:
            self._held = lines

    def _publish(
        self,
        kind: EventKind,
        agent: str | None,
        item: str | None,
        attempt: int | None,
        payload: dict[str, Any] | None,
        want_event: bool,
        ts: float | None = None,
    ) -> PipelineEvent | None:
        """Number, serialise, chain and queue one event; the event object if it was built."""
        if self._closed or self._sealed:
            raise RuntimeError(
                "EventHub.emit after the hub was closed; emit inside `async with hub.running()`"
            )
        if self._raw:  # the events published before it are built first: the chain's order
            self._encode_raw()
        if kind is _RUN_FINISHED:
            self._report_drops(force=True)
        seq, prev_hash = self._seq, self._prev_hash
        if ts is None:
            ts = time.time()
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
        if self._committer is not None:  # published once committed (`_committed`)
            uncommitted = self._uncommitted
            uncommitted.append((event, line, kind))
            if want_event or len(uncommitted) >= _MAX_HELD:
                self.flush()
            return event
        self._deliver(event, line, kind, want_event)
        return event

    def _deliver(
        self, event: PipelineEvent | None, line: str, kind: EventKind, write_through: bool
    ) -> None:
        """Hand one numbered event to the history, the sinks and the subscribers."""
        if event is None and self._subscribers:  # one subscribed after it was published
            event = PipelineEvent.model_validate_json(line)
        # No tuple when nobody needs the event: the lines-only queues take the bare line.
        entry = None if event is None else (event, line)
        if self.history is not None:
            self.history.append(entry)  # type: ignore[arg-type]  # kept history means _eager
        if self._inline:
            held = self._held
            held.append(line)
            if write_through or len(held) >= _MAX_HELD:  # `emit` writes through
                self._write_held()
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

    def flush(self) -> None:
        """Write the lines `publish` held to the inline sinks, in one write per sink.

        `publish` (the engine's path) holds inline sinks' lines so a synchronous burst of
        events costs one system call; the engine calls `flush` before each of its awaits,
        and `flushing_before_waits` before trio waits for I/O, so whenever the run
        waits, every line is in the kernel.
        `emit` (everyone else) flushes at once. A failing sink is reported as a
        `sink_error` event, itself held until the next flush. With a committer, the
        events are first handed to it; they reach the sinks when it acknowledges them.
        The lines of the events `publish` kept raw are built here (`_encode_raw`).
        """
        if self._raw:
            self._encode_raw()
        if self._committer is not None and not self._inflight:
            self._submit()  # else `_committed` submits it: everything queued meanwhile
        self._write_held()

    @contextmanager
    def flushing_before_waits(self) -> Iterator[None]:
        """While the block runs, also flush whenever trio is about to wait for I/O.

        The engine's tasks then need no flush of their own as they end (a fan-out's
        children, a broadcast's branches): what a task leaves held goes out with the next
        task's flush or, at the latest, before the run waits, in one write for the batch
        (one write an item less in a fan-out; bench/RESULTS.md). The promise holds: a
        handler is called only after a flush, and trio waits only after one. Blocks may
        nest; one trio instrument serves them all (~8 us to add and remove).
        """
        self._wait_flush_depth += 1
        if self._wait_flusher is None:
            self._wait_flusher = _FlushBeforeWait(self)
            trio.lowlevel.add_instrument(self._wait_flusher)
        try:
            yield
        finally:
            self._wait_flush_depth -= 1
            if not self._wait_flush_depth:
                flusher, self._wait_flusher = self._wait_flusher, None
                # KeyError: trio removed it after it raised (and logged why)
                with suppress(KeyError):
                    trio.lowlevel.remove_instrument(flusher)
            self.flush()

    def _submit(self) -> None:
        """Hand the uncommitted events to the committer (never waits)."""
        if self._raw:  # an acknowledgement submits what was published meanwhile
            self._encode_raw()
        batch = self._uncommitted
        if not batch:
            return
        self._uncommitted = []
        if self.commit_failure is None:  # nothing is committed, nor published, past it
            assert self._committer is not None
            first_seq = self._seq - len(batch)
            self._inflight += 1
            _, lines, kinds = zip(*batch, strict=True)
            self._committer.submit(
                first_seq,
                lines,
                kinds,
                self._prev_hash,
                lambda error: self._committed(batch, error),
            )
        if self._after_submit:
            waiting, self._after_submit = self._after_submit, []
            for callback in waiting:
                callback()

    def _committed(
        self, batch: list[tuple[PipelineEvent | None, str, EventKind]], error: BaseException | None
    ) -> None:
        """The committer's acknowledgement of one burst (on the trio loop): publish it."""
        self._inflight -= 1
        if error is not None:
            self._commit_failed(error)
        elif self.commit_failure is None:
            self.events_committed += len(batch)
            if not self._closed:
                deliver = self._deliver
                for event, line, kind in batch:
                    deliver(event, line, kind, False)
                self._write_soon()
        if self._uncommitted and not self._inflight:  # published while this one committed
            self._submit()
        if not self._inflight and self._idle is not None:
            self._idle.set()

    def _write_soon(self) -> None:
        """Write the delivered lines once the acknowledgements now being run are done:
        one write for all the bursts of a commit (the closing hub writes what is left)."""
        if self._write_scheduled or not self._held:
            return
        token = self._token
        if token is None:
            token = self._token = trio.lowlevel.current_trio_token()
        self._write_scheduled = True
        token.run_sync_soon(self._scheduled_write)

    def _scheduled_write(self) -> None:
        self._write_scheduled = False
        if not self._closed:
            self._write_held()

    def report_commit_failure(self, error: BaseException) -> None:
        """The store refused a write that goes with this run's events (a memo row,
        `engine/memo.py`): fail the hub as if a commit of its own had failed."""
        self._commit_failed(error)

    def flush_failed(self, error: Exception) -> None:
        """A flush could not encode its burst (a payload JSON cannot hold), or raised
        outside any task (`flushing_before_waits`): those events are lost, so the log
        fails as if a write had, and the run stops as an error."""
        if self.audit_failure is not None:
            return
        where = next(
            (str(getattr(q.sink, "path", q.name)) for q in self._queues if q.audit),
            "of the run's events",
        )
        self.audit_failure = AuditFailure(where, error)
        if self.on_audit_failure is not None:
            self.on_audit_failure()

    def _commit_failed(self, error: BaseException) -> None:
        """The store failed: publish nothing more, and stop the run like a lost audit log."""
        if self.commit_failure is not None:
            return
        self.commit_failure = error
        self._uncommitted.clear()
        if self._after_submit:  # their rows are refused by the failed committer
            waiting, self._after_submit = self._after_submit, []
            for callback in waiting:
                callback()
        if self.audit_failure is None:
            assert self._committer is not None
            self.audit_failure = AuditFailure(self._committer.where, error)
            if self.on_audit_failure is not None:
                self.on_audit_failure()

    async def wait_committed(self) -> None:
        """Wait until every event published so far is committed and delivered to the sinks
        (or the committer failed). Without a committer, only flushes."""
        self.flush()
        while self._inflight:
            self._idle = idle = trio.Event()
            await idle.wait()
        self._idle = None

    def _write_held(self) -> None:
        """Write the held (published) lines to the inline sinks, one write per sink."""
        held = self._held
        if not held:
            return
        self._held = []
        failed: list[tuple[SinkQueue, Exception]] | None = None
        for queue in self._inline:
            try:
                queue.write_lines(held)
            except Exception as exc:  # reported after every sink has these lines, in order
                failed = failed or []
                failed.append((queue, exc))
            else:
                queue.failures = 0
                queue.written += len(held)
        if failed is not None:
            for queue, error in failed:
                self._record_failure(queue, error, len(held))

    @property
    def events_emitted(self) -> int:
        return self._seq

    @property
    def audit_events_written(self) -> int | None:
        """Whole events in the audit log (the first audit sink's count); without one, the
        events committed if the hub has a committer, else None."""
        for queue in self._queues:
            if queue.audit:
                return self._audit_lines_before + queue.lines_written()
        if self._committer is None:
            return None
        return self._committed_before + self.events_committed

    def audit_failure_message(self) -> str | None:
        """The message `audit log X could not be written: <why>; N of M events written`."""
        failure = self.audit_failure
        if failure is None:
            return None
        return failure.message(self.audit_events_written or 0, self._seq)

    def seal(self) -> None:
        """Close the log with `log_sealed` (see `events.seal_event`) and write it.

        Done once, by `running()` / `close_inline()` as they close a hub whose
        `seal_on_close` is set; skipped when nothing was emitted or an audit sink failed
        (that log cannot be whole). Nothing is logged after the seal: later sink
        failures are only counted.
        """
        if self._sealed or self._closed or not self._seq or self.audit_failure is not None:
            return
        self.flush()
        if self.audit_failure is not None:  # the lines before the seal did not land
            return
        if self._lean and not self._inline and not self._subscribers:
            self._seq += 1  # nothing listens: numbered, not built (see `publish`)
            self._prev_hash = ""
        else:
            ts = time.time()
            payload = self._encoder.seal_payload(self._seq, ts, self._prev_hash)
            self._publish(_LOG_SEALED, None, None, None, payload, False, ts)
        self._sealed = True
        self._lean = False  # `publish` now goes through `_publish`, which refuses
        self._commit_lean = False
        self.flush()

    def sink_stats(self) -> dict[str, dict[str, Any]]:
        """Per sink: policy, buffered, dropped, failures, disabled (for the CLI and tests)."""
        held = len(self._held) + (len(self._raw) if self._committer is None else 0)
        return {queue.name: queue.stats(held) for queue in self._queues}

    def _report_drops(self, *, force: bool) -> None:
        """Emit `sink_error` {sink, dropped} for sinks that dropped since their last report."""
        now = time.monotonic()
        for queue in self._queues:
            if queue.dropped:
                report = queue.take_drop_report(now, force=force)
                if report is not None:
                    self.publish(_SINK_ERROR, payload=report)

    def _record_failure(self, queue: SinkQueue, exc: Exception, events: int) -> None:
        """Count a failed delivery of `events` events, disable the sink after too many in a
        row, and record a `sink_error` event (which other sinks, and this one, then get)."""
        was_disabled = queue.disabled
        report = queue.record_failure(exc, events, self.max_consecutive_failures)
        if queue.disabled and not was_disabled and queue.inline:
            self._inline = [q for q in self._inline if q is not queue]
        first_audit_failure = queue.audit and self.audit_failure is None
        if first_audit_failure:
            where = getattr(queue.sink, "path", None)
            self.audit_failure = AuditFailure(
                str(where) if where is not None else f"sink '{queue.name}'", exc
            )
        if not (self._closed or self._sealed):
            self.publish(_SINK_ERROR, payload=report)
        if first_audit_failure and self.on_audit_failure is not None:
            self.on_audit_failure()

    def _delivery_failed(self, queue: SinkQueue, exc: Exception, events: int) -> None:
        """A pumped sink failed: record it, and write the report to the audit log now (the
        pump is no engine task, so nobody else flushes for it)."""
        self._record_failure(queue, exc, events)
        self.flush()

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
        await self.wait_committed()  # what is committed is published before the pumps stop
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
        return self._sync_close and not self._pumped and self._committer is None

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
        self._lean = self._commit_lean = False
        for subscription in tuple(self._subscribers):
            subscription._end()
        self._subscribers.clear()

    async def _drain_and_close(self) -> None:
        """Phase 2: seal the log, deliver what the pumps left (non-audit sinks first,
        bounded) with the seal, then close."""
        deadline = self._shutdown_deadline()  # the one phase 1 started, if it ran
        await self.wait_committed()
        if self.seal_on_close:
            self.seal()
            await self.wait_committed()  # the seal, too, is committed before it is published
        await drain_pending(self._pumped, deadline, self._delivery_failed)
        self._finish()
        await close_sinks(self._queues, deadline)
