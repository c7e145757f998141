"""What an agent receives (`AgentContext`) and returns (`AgentOutput`, `QAIssue`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .run_services import RunServices
    from .spec import AgentSpec

__all__ = [
    "AgentContext",
    "AgentOutput",
    "QAIssue",
    "QAVerdict",
    "TextOutput",
    "Usage",
    "WorkItem",
]

JSON = Any
"""Any JSON-serialisable value."""


class QAIssue(BaseModel):
    """One problem a QA agent found. `blocking` issues fail the verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    severity: Literal["blocking", "warning", "info"] = Field(
        default="blocking", description="blocking issues must be fixed before the work passes"
    )
    message: str = Field(description="what is wrong, in one or two sentences")
    location: str | None = Field(default=None, description="where in the work the issue is")
    suggestion: str | None = Field(default=None, description="how to fix it")


class QAVerdict(BaseModel):
    """The structured answer a QA agent gives (the forced tool's input schema)."""

    model_config = ConfigDict(extra="forbid")
    passed: bool = Field(description="true if the work is acceptable as it is")
    issues: list[QAIssue] = Field(default_factory=list, description="problems found")
    summary: str = Field(default="", description="a one-line summary of the review")


class WorkItems(BaseModel):
    """The structured answer a fan-out agent gives: the work items to dispatch."""

    model_config = ConfigDict(extra="forbid")
    items: list[str | dict[str, Any]] = Field(description="one entry per work item")


class Usage(BaseModel):
    """Tokens and cost of one or more model calls."""

    model_config = ConfigDict(extra="forbid")
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            model_calls=self.model_calls + other.model_calls,
        )

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


class TextOutput(BaseModel):
    """The output of an agent without `output:` as `outputs.<agent>` shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str


_TEXT_OUTPUT_FIELDS = frozenset({"text"})
_new_object = object.__new__
_set = object.__setattr__


def text_output(text: str) -> TextOutput:
    """`TextOutput(text=text)` without validation (~0.6 us, a tenth of the validated one).

    The engine records one per text agent invocation; pinned against a
    validated instance by test_v2_outputs.py::test_text_output_is_a_valid_model.
    """
    output: TextOutput = _new_object(TextOutput)
    _set(output, "__dict__", {"text": text})
    _set(output, "__pydantic_fields_set__", set(_TEXT_OUTPUT_FIELDS))
    _set(output, "__pydantic_extra__", None)
    _set(output, "__pydantic_private__", None)
    return output


class AgentOutput(BaseModel):
    """What an agent returns.

    `passed` and `issues` are a QA agent's verdict (other agents leave the
    defaults); `items` is a fan-out agent's list of work items; `text` is the
    agent's answer; `data` is any structured result an app handler wants to pass on.
    """

    model_config = ConfigDict(extra="forbid")
    passed: bool = True
    text: str = ""
    issues: list[QAIssue] = Field(default_factory=list)
    items: list[JSON] | None = None
    data: JSON = None
    usage: Usage = Field(default_factory=Usage)


def typed_agent_output(output: BaseModel) -> AgentOutput:
    """The `AgentOutput` the engine passes on for a typed agent's `output`.

    `data` is the output as JSON data; `text` the same as compact JSON text (what
    the next agent's user message and `upstream` show).
    """
    data = output.model_dump(mode="json")
    return AgentOutput(text=json.dumps(data, ensure_ascii=False), data=data)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A unit of work flowing through the agents: `main` for the run, children for fan-outs."""

    id: str
    payload: JSON = None
    index: int | None = None
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class AgentContext:
    """Everything one agent invocation may read.

    `input` is the run's input; `upstream` the output of the agent that dispatched
    to this one (None for the entry agent); `feedback` the QA issues to address on
    a retry (empty on a first attempt); `attempt` counts this agent's runs on this
    work item, from 1. `outputs` maps each agent that already ran on this item or
    an ancestor item (the item a fan-out started from) to its latest output, the
    item's own first: a typed agent's output model instance, else a `TextOutput`.
    `history` maps each agent that ran on this item to all its outputs, oldest first.
    """

    run_id: str
    agent: str
    item: WorkItem
    attempt: int
    input: JSON
    upstream: AgentOutput | None = None
    feedback: tuple[QAIssue, ...] = ()
    services: RunServices | None = field(default=None, repr=False, compare=False)
    outputs: Mapping[str, BaseModel] = field(default_factory=dict, hash=False)
    history: Mapping[str, tuple[BaseModel, ...]] = field(default_factory=dict, hash=False)

    @property
    def spec(self) -> AgentSpec:
        """The agent's definition; requires a context built by the runtime."""
        if self.services is None:
            raise RuntimeError(
                "this AgentContext was built by hand, without run services; "
                "build it through agentflow.runtime.run_pipeline"
            )
        return self.services.pipeline.spec.agent(self.agent)

    def prompt_variables(self) -> Mapping[str, JSON]:
        """The variables an agent's prompt template may use (checked by the compiler)."""
        return {
            "input": self.input,
            "item": self.item.payload,
            "item_id": self.item.id,
            "upstream": self.upstream.text if self.upstream is not None else "",
            "feedback": [issue.model_dump() for issue in self.feedback],
            "attempt": self.attempt,
            "agent": self.agent,
            "outputs": {a: out.model_dump(mode="json") for a, out in self.outputs.items()},
            "history": {
                a: [out.model_dump(mode="json") for out in outs] for a, outs in self.history.items()
            },
        }


PROMPT_VARIABLES: frozenset[str] = frozenset(
    {"input", "item", "item_id", "upstream", "feedback", "attempt", "agent", "outputs", "history"}
)
