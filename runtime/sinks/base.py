"""The `LogSink` protocol: where the event hub delivers events."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..events import PipelineEvent

__all__ = ["LogSink"]


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
