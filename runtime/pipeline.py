"""`CompiledPipeline`: what a generated module hands to the runtime."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .spec import PipelineSpec
from .tools.base import Tool

__all__ = ["CompiledPipeline", "trigger_value"]


def trigger_value(source: str, event: str) -> str:
    """The `Trigger` enum value for an agent event or an aggregation outcome."""
    return f"{source}.{event}"


@dataclass(frozen=True)
class CompiledPipeline:
    """A pipeline as compiled: its spec, generated enums and table, prompts and plugins.

    `transitions` maps (State, Trigger) to State; Trigger values are
    "<agent>.<event>" and "aggregation.on_complete" / "aggregation.on_any_abort".
    `prompts` maps agent id to its prompt template text (embedded at compile time).
    `plugin_tools` maps tool id to a zero-argument factory of the plugin instance.
    """

    spec: PipelineSpec
    state_type: type[enum.Enum]
    trigger_type: type[enum.Enum]
    transitions: Mapping[tuple[Any, Any], Any]
    initial: enum.Enum
    terminal: frozenset[Any]
    prompts: Mapping[str, str]
    source_path: str = ""
    source_sha256: str = ""
    plugin_tools: Mapping[str, Callable[[], Tool]] = field(default_factory=dict)

    def trigger(self, source: str, event: str) -> enum.Enum | None:
        """The Trigger member for `source.event`, or None if the pipeline declares none."""
        try:
            return self.trigger_type(trigger_value(source, event))
        except ValueError:
            return None
