"""`EventHub`: numbers, hash-chains and fans out every event to the sinks.

`emit` is synchronous and cheap (the run's hot path): it builds the event,
serialises it once, chains its hash, appends it to each sink's buffer and
returns. Each sink drains its buffer from its own task, so a slow sink never
makes the pipeline wait.

NOTE (lead): minimal first version; the events/sinks work hardens buffering
policies, drop accounting and subscribers without changing this API.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from .events import EventKind, PipelineEvent
from .sinks.base import LogSink

__all__ = ["EventHub"]


class _SinkQueue:
    def __init__(self, sink: LogSink) -> None:
        self.sink = sink
        # Invariant: events appended by `emit`, popped in order by the pump task only.
        self.pending: deque[tuple[PipelineEvent, str]] = deque()
        self.wakeup = trio.Event()


class EventHub:
    """Publishes a run's events to its sinks and subscribers."""

    def __init__(
        self,
        *,
        run_id: str,
        pipeline_hash: str = "",
        sinks: Sequence[LogSink] = (),
        keep_history: bool = True,
    ) -> None:
        self.run_id = run_id
        self.pipeline_hash = pipeline_hash
        self._queues = [_SinkQueue(sink) for sink in sinks]
        # Invariant: seq of the next event; equals the number of events emitted so far.
        self._seq = 0
        # Invariant: sha256 hex of the previous event's line ("" before the first).
        self._prev_hash = ""
        self._closed = False
        # Invariant: every (event, line) emitted, in order, when keep_history is on.
        self.history: list[tuple[PipelineEvent, str]] | None = [] if keep_history else None

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
        if self._closed:
            raise RuntimeError("EventHub.emit after the hub was closed")
        event = PipelineEvent.model_construct(
            run_id=self.run_id,
            seq=self._seq,
            ts=time.time(),
            kind=kind,
            agent=agent,
            item=item,
            attempt=attempt,
            payload=payload if payload is not None else {},
            pipeline_hash=self.pipeline_hash,
            prev_hash=self._prev_hash,
        )
        line = event.model_dump_json()
        self._seq += 1
        self._prev_hash = hashlib.sha256(line.encode()).hexdigest()
        if self.history is not None:
            self.history.append((event, line))
        for queue in self._queues:
            queue.pending.append((event, line))
            queue.wakeup.set()
        return event

    @property
    def events_emitted(self) -> int:
        return self._seq

    async def _pump(self, queue: _SinkQueue) -> None:
        while True:
            while queue.pending:
                event, line = queue.pending.popleft()
                await queue.sink.emit(event, line=line)
            if self._closed:
                return
            await queue.wakeup.wait()
            queue.wakeup = trio.Event()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[EventHub]:
        """Run the sink pumps for the duration of the block; drain and close on exit."""
        async with trio.open_nursery() as nursery:
            for queue in self._queues:
                nursery.start_soon(self._pump, queue)
            try:
                yield self
            finally:
                self._closed = True
                for queue in self._queues:
                    queue.wakeup.set()
        for queue in self._queues:
            await queue.sink.aclose()
