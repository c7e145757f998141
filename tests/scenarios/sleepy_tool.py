"""A plugin tool that sleeps: it makes a replayed run slow enough to interrupt (test_cancel.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

__all__ = ["SleepyTool"]


class SleepyTool:
    """Sleeps `seconds` (from the YAML config) and says so."""

    id = "sleepy"
    description = "Wait a moment, then report how long."
    input_schema: Mapping[str, Any] = {"type": "object", "properties": {}}

    def __init__(self, seconds: str = "0.2") -> None:
        self.seconds = float(seconds)

    async def execute(self, input: Mapping[str, Any]) -> Any:
        await trio.sleep(self.seconds)
        return {"slept": self.seconds}
