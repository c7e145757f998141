"""agentflow.runtime: runs compiled pipelines on trio.

Generated modules import from here; so do apps that plug in their own
handlers, tools, models and sinks.

The names are loaded on first use (PEP 562 `__getattr__`): importing one light
module such as `agentflow.runtime.errors` or `.spec` (what the compiler does)
does not import the engine, trio or the model stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .agents import AgentOutput, QAIssue, QAVerdict, TextOutput, WorkItem
    from .engine.agent_runner import run_default_agent, run_typed_agent
    from .engine.context import AgentContext
    from .engine.pipeline_app import Pipeline
    from .engine.runner import ItemOutcome, RunOptions, RunResult, run_pipeline
    from .engine.state_machine import StateMachine
    from .errors import (
        AgentflowError,
        BudgetExceededError,
        CassetteMissError,
        InvalidTransition,
        ModelError,
        ModelRequestRejected,
        OutputValidationError,
        PathEscapeError,
        PipelineDefinitionError,
        RunAbortedError,
        ToolError,
    )
    from .events.event import EventKind, PipelineEvent
    from .events.hub import EventHub
    from .events.sink import LogSink
    from .models.base import Model, ModelRequest, ModelTurn, ToolCall, ToolSchema
    from .pipeline import CompiledPipeline, compile_spec
    from .spec import PipelineSpec
    from .tools.base import Tool
    from .usage import Usage

# Public name -> the module (relative to this package) that defines it.
_EXPORTS: dict[str, str] = {
    "AgentContext": ".engine.context",
    "AgentOutput": ".agents",
    "AgentflowError": ".errors",
    "BudgetExceededError": ".errors",
    "CassetteMissError": ".errors",
    "CompiledPipeline": ".pipeline",
    "EventHub": ".events.hub",
    "EventKind": ".events.event",
    "InvalidTransition": ".errors",
    "ItemOutcome": ".engine.runner",
    "LogSink": ".events.sink",
    "Model": ".models.base",
    "ModelError": ".errors",
    "ModelRequest": ".models.base",
    "ModelRequestRejected": ".errors",
    "ModelTurn": ".models.base",
    "OutputValidationError": ".errors",
    "PathEscapeError": ".errors",
    "Pipeline": ".engine.pipeline_app",
    "PipelineDefinitionError": ".errors",
    "PipelineEvent": ".events.event",
    "PipelineSpec": ".spec",
    "QAIssue": ".agents",
    "QAVerdict": ".agents",
    "RunAbortedError": ".errors",
    "RunOptions": ".engine.runner",
    "RunResult": ".engine.runner",
    "StateMachine": ".engine.state_machine",
    "TextOutput": ".agents",
    "Tool": ".tools.base",
    "ToolCall": ".models.base",
    "ToolError": ".errors",
    "ToolSchema": ".models.base",
    "Usage": ".usage",
    "WorkItem": ".agents",
    "compile_spec": ".pipeline",
    "run_default_agent": ".engine.agent_runner",
    "run_pipeline": ".engine.runner",
    "run_typed_agent": ".engine.agent_runner",
}

__all__ = [
    "AgentContext",
    "AgentOutput",
    "AgentflowError",
    "BudgetExceededError",
    "CassetteMissError",
    "CompiledPipeline",
    "EventHub",
    "EventKind",
    "InvalidTransition",
    "ItemOutcome",
    "LogSink",
    "Model",
    "ModelError",
    "ModelRequest",
    "ModelRequestRejected",
    "ModelTurn",
    "OutputValidationError",
    "PathEscapeError",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineEvent",
    "PipelineSpec",
    "QAIssue",
    "QAVerdict",
    "RunAbortedError",
    "RunOptions",
    "RunResult",
    "StateMachine",
    "TextOutput",
    "Tool",
    "ToolCall",
    "ToolError",
    "ToolSchema",
    "Usage",
    "WorkItem",
    "compile_spec",
    "run_default_agent",
    "run_pipeline",
    "run_typed_agent",
]


# Hidden from type checkers: they see the names above, and a misspelt name stays an
# error instead of becoming an `object` returned by a module `__getattr__`.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Import the module defining public `name` on first access and cache the value."""
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
