"""agentflow.runtime: runs compiled pipelines on trio.

Generated modules import from here; so do apps that plug in their own
handlers, tools, models and sinks.
"""

from .agent_runner import run_default_agent, run_typed_agent
from .agents import AgentContext, AgentOutput, QAIssue, QAVerdict, TextOutput, Usage, WorkItem
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
from .events import EventKind, PipelineEvent
from .hub import EventHub
from .models.base import Model, ModelRequest, ModelTurn, ToolCall, ToolSchema
from .pipeline import CompiledPipeline, compile_spec
from .pipeline_app import Pipeline
from .runner import ItemOutcome, RunOptions, RunResult, run_pipeline
from .sinks.base import LogSink
from .spec import PipelineSpec
from .state_machine import StateMachine
from .tools.base import Tool

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
