"""Builtin tools by id: what a pipeline's `type: builtin` tool entries resolve to."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import PipelineDefinitionError
from .base import Tool
from .filesystem import FilesystemTool

__all__ = ["BUILTIN_TOOLS", "builtin_tool"]

BUILTIN_TOOLS: frozenset[str] = frozenset({"filesystem"})
"""The ids a pipeline may declare with `type: builtin`."""


def builtin_tool(tool_id: str, config: Mapping[str, str]) -> Tool:
    """Build the builtin tool `tool_id` from its pipeline `config`.

    `filesystem` takes `root` (default `workspace`), relative to the current
    directory when the tool is built; other keys are refused.

    Raises:
        PipelineDefinitionError: an unknown builtin id or config key.
    """
    if tool_id == "filesystem":
        unknown = sorted(set(config) - {"root"})
        if unknown:
            raise PipelineDefinitionError(
                f"builtin tool 'filesystem' has no config key(s) {', '.join(unknown)}; "
                "its only key is 'root' (the workspace directory)"
            )
        return FilesystemTool(config.get("root", "workspace"), id=tool_id)
    raise PipelineDefinitionError(
        f"there is no builtin tool {tool_id!r}; builtins are: {', '.join(sorted(BUILTIN_TOOLS))}. "
        "For your own tool use `type: plugin` with `plugin: module:Class`."
    )
