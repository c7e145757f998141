"""agentflow.runtime: runs compiled pipelines on trio.

Generated modules import from here; so do apps that plug in their own
handlers, tools, models and sinks.
"""

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
