"""Example plugin tools (used by pipelines/seed_minimal.yaml)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import ToolError

__all__ = ["WordCountTool"]


class WordCountTool:
    """Counts the words and lines of a text; shows how a plugin reads its config.

    `api_key_env` names an environment variable holding a credential the tool
    would use; the tool reports only whether it is set, never its value.
    """

    id = "my_tool"
    description = "Count the words and lines of a text."
    input_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "the text to count"}},
        "required": ["text"],
        "additionalProperties": False,
    }

    def __init__(self, api_key_env: str | None = None) -> None:
        self.api_key_env = api_key_env

    async def execute(self, input: Mapping[str, Any]) -> Any:
        """Return {"words", "lines"} (and {"api_key": "set" | "missing"} if configured).

        Raises:
            ToolError: `text` is missing or not a string.
        """
        text = input.get("text")
        if not isinstance(text, str):
            raise ToolError("my_tool needs a 'text' string to count")
        result: dict[str, Any] = {"words": len(text.split()), "lines": len(text.splitlines())}
        if self.api_key_env:
            result["api_key"] = "set" if os.environ.get(self.api_key_env) else "missing"
        return result
