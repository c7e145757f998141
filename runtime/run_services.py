"""`RunServices`: what one run shares with its agent invocations (via AgentContext)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .hub import EventHub
from .models.base import Model
from .pipeline import CompiledPipeline
from .tools.base import Tool

__all__ = ["RunServices"]


@dataclass(frozen=True)
class RunServices:
    """The run's model, tools and event hub, reachable from every AgentContext."""

    pipeline: CompiledPipeline
    model: Model
    tools: Mapping[str, Tool]
    hub: EventHub
