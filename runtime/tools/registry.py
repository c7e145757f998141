"""Builtin tools by id, and the check every plugin tool's class passes before it is used.

A pipeline's `type: plugin` entry names `module:Class`; the generated module
imports it and calls `check_plugin_classes` at import time, so nothing a YAML
file names is ever called with its config unless it is a class that satisfies
the `Tool` protocol (`plugin: "os:system"` is refused, not run).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from ..errors import PipelineDefinitionError
from ..spec import BUILTIN_TOOL_KEYS
from .base import Tool
from .filesystem import FilesystemTool

__all__ = ["BUILTIN_TOOLS", "builtin_tool", "check_plugin_classes", "plugin_class_problem"]

BUILTIN_TOOLS: frozenset[str] = frozenset(BUILTIN_TOOL_KEYS)
"""The ids a pipeline may declare with `type: builtin`."""


def builtin_tool(tool_id: str, config: Mapping[str, str]) -> Tool:
    """Build the builtin tool `tool_id` from its pipeline `config`.

    `filesystem` takes `root` (default `workspace`), relative to the current
    directory when the tool is built; other keys are refused.

    Raises:
        PipelineDefinitionError: an unknown builtin id or config key.
    """
    if tool_id == "filesystem":
        unknown = sorted(set(config) - BUILTIN_TOOL_KEYS["filesystem"])
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


def plugin_class_problem(obj: object) -> str | None:
    """Why `obj` cannot be a plugin tool's class, or None if it can.

    Only the class is inspected (nothing is called): it must be a class whose
    `execute` is an async method (`async def execute(self, input)`). Its `id`,
    `description` and `input_schema` may be set by its constructor, so they are
    not required on the class (mypy checks the whole protocol on the generated
    factory's return value).
    """
    if not inspect.isclass(obj):
        kind = "a function" if callable(obj) else f"a {type(obj).__name__} value"
        return f"is {kind}, not a class"
    execute = inspect.getattr_static(obj, "execute", None)
    if isinstance(execute, staticmethod | classmethod):
        execute = execute.__func__
    if execute is None or not inspect.iscoroutinefunction(execute):
        return (
            f"is the class {obj.__module__}.{obj.__qualname__}, which does not satisfy the "
            "Tool protocol (it has no async def execute(self, input))"
        )
    return None


def check_plugin_classes(source: str, plugins: Mapping[str, tuple[object, str]]) -> None:
    """Check each plugin tool's class before any of them is instantiated.

    `plugins` maps tool id to (the imported object, the `plugin` path in the YAML).
    Generated modules call this at import time.

    Raises:
        PipelineDefinitionError: naming the tool id, the YAML file and the plugin
            path of the first object that is not a Tool class.
    """
    for tool_id, (obj, path) in plugins.items():
        problem = plugin_class_problem(obj)
        if problem is not None:
            raise PipelineDefinitionError(
                f"{source}: plugin tool '{tool_id}': '{path}' {problem}; a plugin must be a "
                "class with id, description, input_schema and async def execute(self, input) "
                "(the Tool protocol, agentflow.runtime.tools.base); nothing was called"
            )
