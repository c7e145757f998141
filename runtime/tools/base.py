"""The `Tool` protocol: an async callable with a JSON schema, offered to agents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["Tool"]


@runtime_checkable
class Tool(Protocol):
    """A tool an agent may call.

    `execute` gets the model's input (already a dict) and returns any
    JSON-serialisable value; raise `ToolError` with a helpful message to report
    a failure back to the model (the agent continues), anything else fails the
    agent invocation.
    """

    id: str
    description: str
    input_schema: Mapping[str, Any]

    async def execute(self, input: Mapping[str, Any]) -> Any: ...
