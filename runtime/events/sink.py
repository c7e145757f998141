"""The `LogSink` protocol: where the event hub delivers events.

A sink may also implement `BatchLogSink` (an `emit_batch` method and a
`max_batch` size): the hub then hands it up to `max_batch` buffered events at
once, which is how the webhook sink POSTs JSON arrays and the file sink writes
several lines with one system call.

A sink's optional `audit: bool` attribute picks its default buffering policy in
`EventHub.add_sink`: an audit sink's buffer is unbounded and never drops; any
other sink has a bounded buffer that drops its oldest events when full.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .event import PipelineEvent

__all__ = ["BatchLogSink", "LogSink"]


@runtime_checkable
class LogSink(Protocol):
    """Receives every event of a run, in order, from its own task.

    `line` is the event's canonical JSON (what the audit log stores and the hash
    chain covers); reuse it instead of serialising again. `emit` may be slow: the
    hub buffers for it and never makes the pipeline wait. `aclose` is called once
    after the last event, to flush.
    """

    name: str

    async def emit(self, event: PipelineEvent, *, line: str) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchLogSink(LogSink, Protocol):
    """A sink that takes several buffered events at once (at most `max_batch`)."""

    max_batch: int

    async def emit_batch(self, batch: Sequence[tuple[PipelineEvent, str]]) -> None: ...
