"""`MemorySink`: keeps every event in a list (tests, apps that inspect a run)."""

from __future__ import annotations

from ..events.event import EventKind, PipelineEvent

__all__ = ["MemorySink"]


class MemorySink:
    """Collects `(event, line)` pairs in order; lossless (`audit = True`)."""

    audit = True

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        # Invariant: every delivered event, in delivery (= seq) order.
        self.events: list[PipelineEvent] = []
        self.lines: list[str] = []
        self.closed = False

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        self.events.append(event)
        self.lines.append(line)

    async def aclose(self) -> None:
        self.closed = True

    def of_kind(self, kind: EventKind) -> list[PipelineEvent]:
        """The events of one kind, in order."""
        return [event for event in self.events if event.kind == kind]
