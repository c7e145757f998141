"""The `Model` protocol: one model turn in, one turn out.

The agent runner (agentflow.runtime.engine.agent_runner) owns the conversation and the
tool-use loop; a model only answers one request. That keeps every model (offline
replay, Anthropic, a user's own) small, and makes each turn a `model_response`
event, so a run's own audit log can be replayed as a cassette.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..spec import DispatchSpec, OutputKind
from ..usage import Usage

__all__ = [
    "AnswerKind",
    "Model",
    "ModelRequest",
    "ModelTurn",
    "OutputKind",
    "TextSink",
    "ToolCall",
    "ToolSchema",
    "accepts_keyword",
]

AnswerKind = Literal["text", "verdict", "items", "output"]
"""What a turn must answer: an `OutputKind`, or "output", a typed agent's declared shape."""


TextSink = Callable[[str], None]
"""Called with each streamed text delta; must not block (the runner batches into events)."""


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """A tool offered to the model."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asked to call in its turn."""

    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One turn's request.

    `messages` are Anthropic-shaped dicts ({"role": ..., "content": [blocks]}), the
    whole conversation so far. `output` says which structured answer ends the turn
    loop: for "verdict" and "items" the model must call the structured-output tool
    (`STRUCTURED_TOOL_NAMES[output]`), whose input arrives in `ModelTurn.structured`;
    likewise for "output" (an agent with `output:`), whose tool's input schema is
    `output_schema` (the generated output model's JSON schema).
    (agent, item, attempt, turn) identify the call; replay keys on them.
    `dispatch` is the agent's dispatch block: which output field a router routes
    on, which field of a typed fan-out holds its work items. A live model answers
    by the prompt and ignores it; the dry-run model answers by it.
    """

    agent: str
    item: str
    attempt: int
    turn: int
    model: str
    max_tokens: int
    system: str
    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[ToolSchema] = ()
    output: AnswerKind = "text"
    temperature: float | None = None
    timeout_s: float = 120.0
    output_schema: Mapping[str, Any] | None = None
    dispatch: DispatchSpec | None = None


@dataclass(frozen=True, slots=True)
class ModelTurn:
    """One turn's answer. `tool_calls` excludes the structured-output tool.

    `structured_call_id` is the id of the tool_use block that carried
    `structured`, when the model gave one (Anthropic does; replay does not): the
    runner answers it with a `tool_result` when it re-asks for a valid answer.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    structured: Mapping[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "end_turn"
    model: str = ""
    structured_call_id: str | None = None


STRUCTURED_TOOL_NAMES: Mapping[AnswerKind, str] = {
    "verdict": "submit_verdict",
    "items": "submit_work_items",
    "output": "submit_output",
}


class Model(Protocol):
    """Anything that can answer a `ModelRequest`: replay, Anthropic, or your own."""

    name: str
    """Shown in the CLI, events and UI (e.g. "replay", "anthropic")."""

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        """Answer one turn; stream text deltas to `on_text` if given.

        Raises:
            ModelError: the call failed after the model's own transport retries.
            ModelRequestRejected: the API refused the request for good.
            CassetteMissError: (replay) nothing recorded for this call.
        """
        ...


# (type(model), keyword) -> whether its `complete` takes that keyword.
_ACCEPTS_KEYWORD: dict[tuple[type, str], bool] = {}


def accepts_keyword(model: Model, name: str) -> bool:
    """Whether `model.complete` takes keyword `name` (`on_retry`, `on_wait`: optional
    callbacks AnthropicModel takes), checked once per model class."""
    key = (type(model), name)
    known = _ACCEPTS_KEYWORD.get(key)
    if known is None:
        try:
            parameter = inspect.signature(model.complete).parameters.get(name)
        except (TypeError, ValueError):
            parameter = None
        known = _ACCEPTS_KEYWORD[key] = parameter is not None and parameter.kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
    return known
