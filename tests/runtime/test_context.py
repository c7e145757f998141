"""`new_context` builds the same `AgentContext` as the dataclass's own `__init__`."""

from __future__ import annotations

import dataclasses

import pytest

from agentflow.runtime.agents import AgentOutput, QAIssue, WorkItem, child_result, text_output
from agentflow.runtime.engine.context import AgentContext, new_context


def test_new_context_equals_the_dataclass_init() -> None:
    fields = {
        "run_id": "run-1",
        "agent": "qa_agent",
        "item": WorkItem("item-3", {"q": 3}, 3, "main"),
        "attempt": 2,
        "input": {"topic": "trio"},
        "upstream": AgentOutput(text="draft"),
        "feedback": (QAIssue(message="too short"),),
        "services": None,
        "outputs": {"writer": text_output("draft")},
        "history": {"writer": (text_output("first"), text_output("draft"))},
        "joined": {"a": text_output("a")},
        "children": (child_result("item-3.1", "passed", text_output("c"), None),),
        "source": "writer",
    }
    assert list(fields) == [field.name for field in dataclasses.fields(AgentContext)]
    built, expected = new_context(**fields), AgentContext(**fields)
    assert built == expected
    assert {name: getattr(built, name) for name in fields} == fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.attempt = 3  # type: ignore[misc]
    assert dataclasses.replace(built, attempt=3).attempt == 3
