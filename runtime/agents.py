"""What an agent returns (`AgentOutput`, `QAIssue`, `QAVerdict`) and works on (`WorkItem`).

What it receives, `AgentContext`, is the engine's (`engine/context.py`): it carries
the run's services.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from .usage import Usage

__all__ = [
    "AgentOutput",
    "BranchFailure",
    "ChildResult",
    "QAIssue",
    "QAVerdict",
    "TextOutput",
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


class TextOutput(BaseModel):
    """The output of an agent without `output:` as `outputs.<agent>` shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str


# Every field is set on an engine-built model, so instances share one `fields_set`: pydantic
# only ever adds a field name to it (already there) or copies it (`model_copy`), and a
# private set per instance cost 216 bytes (a 10,000-item fan-out keeps 20,000 outputs).
_TEXT_OUTPUT_FIELDS = {"text"}
_new_object = object.__new__
_set = object.__setattr__


def text_output(text: str) -> TextOutput:
    """`TextOutput(text=text)` without validation (~0.6 us, a tenth of the validated one).

    The engine records one per text agent invocation; pinned against a
    validated instance by test_v2_outputs.py::test_text_output_is_a_valid_model.
    """
    output: TextOutput = _new_object(TextOutput)
    _set(output, "__dict__", {"text": text})
    _set(output, "__pydantic_fields_set__", _TEXT_OUTPUT_FIELDS)
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


class BranchFailure(BaseModel):
    """What a join agent sees for a broadcast target that failed (its agent raised).

    In prompts `joined.<target>` is then `{"failed": true, "error": "..."}`; a
    completed output never has a `failed` field (docs/semantics.md, "Joins").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    failed: Literal[True] = True
    error: str = Field(description="why the branch failed: the exception type and message")


class ChildResult(BaseModel):
    """One child item of a fan-out, as its reduce agent sees it (`ctx.children`).

    `status` is the child's `item_finished` status; `output` the latest output of
    a non-QA agent on the child item (the typed model, or a `TextOutput`; None if
    no such agent completed on it); `reason` why the child aborted, else None.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    status: Literal["passed", "failed", "aborted", "completed"]
    output: SerializeAsAny[BaseModel] | None
    reason: str | None


_CHILD_RESULT_FIELDS = {"id", "status", "output", "reason"}  # shared: see text_output


def child_result(id: str, status: str, output: BaseModel | None, reason: str | None) -> ChildResult:
    """`ChildResult(...)` from the engine's trusted values, without validation (~1.4 us
    instead of ~3.5: a reduce over 10,000 children builds 10,000). Pinned against a
    validated instance by test_engine_reduce.py::test_child_result_is_a_valid_model."""
    result: ChildResult = _new_object(ChildResult)
    fields = {"id": id, "status": status, "output": output, "reason": reason}
    _set(result, "__dict__", fields)
    _set(result, "__pydantic_fields_set__", _CHILD_RESULT_FIELDS)
    _set(result, "__pydantic_extra__", None)
    _set(result, "__pydantic_private__", None)
    return result


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A unit of work flowing through the agents: `main` for the run, children for fan-outs."""

    id: str
    payload: JSON = None
    index: int | None = None
    parent: str | None = None


PROMPT_VARIABLES: frozenset[str] = frozenset(
    {"input", "item", "item_id", "upstream", "feedback", "attempt", "agent", "outputs", "history"}
)
GATHER_VARIABLES: frozenset[str] = frozenset({"joined", "children"})
"""Prompt variables only some agents may use: `joined` (a broadcast's join agent) and
`children` (a fan-out's reduce agent); the runtime renders both for every agent
(empty where they do not apply)."""
