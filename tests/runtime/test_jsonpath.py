"""The feedback_path JSONPath subset."""

from __future__ import annotations

import pytest

from agentflow.runtime.agents import AgentOutput, QAIssue
from agentflow.runtime.engine.jsonpath import InvalidJsonPath, feedback_issues, parse_path, select
from agentflow.runtime.errors import OutputValidationError, PipelineDefinitionError

OUT = AgentOutput(
    passed=False,
    issues=[QAIssue(message="one", suggestion="fix"), QAIssue(message="two", severity="warning")],
    data={"problems": ["p1", "p2"], "nested": {"x": [{"message": "deep"}]}, "n": 3},
)


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", ()),
        ("$.issues", ("issues",)),
        ("$.issues[*]", ("issues", None)),
        ("$.issues[0]", ("issues", 0)),
        ("$.issues[-1].message", ("issues", -1, "message")),
        ("$['data'].*", ("data", None)),
        ('$["data"]["n"]', ("data", "n")),
    ],
)
def test_parse(path: str, steps: tuple[object, ...]) -> None:
    assert parse_path(path) == steps


@pytest.mark.parametrize(
    "path", ["issues", "$.", "$..issues", "$.issues[", "$[?(@.x)]", "$.issues[a]"]
)
def test_parse_rejects(path: str) -> None:
    with pytest.raises(InvalidJsonPath) as info:
        parse_path(path)
    assert isinstance(info.value, PipelineDefinitionError)
    assert path in str(info.value) or "must start" in str(info.value)


def test_select_misses_are_empty() -> None:
    doc = {"a": [1, 2, {"b": 3}]}
    assert select(doc, parse_path("$.a[2].b")) == [3]
    assert select(doc, parse_path("$.a[9]")) == []
    assert select(doc, parse_path("$.zz.b")) == []
    assert select(doc, parse_path("$.a[*]")) == [1, 2, {"b": 3}]


@pytest.mark.parametrize(
    ("path", "messages"),
    [
        ("$", ["one", "two"]),
        ("$.issues", ["one", "two"]),
        ("$.issues[*]", ["one", "two"]),
        ("$.issues[1]", ["two"]),
        ("$.issues[*].message", ["one", "two"]),
        ("$.data.problems", ["p1", "p2"]),
        ("$.data.nested.x", ["deep"]),
        ("$.nothing", []),
    ],
)
def test_feedback_issues(path: str, messages: list[str]) -> None:
    issues = feedback_issues(OUT, parse_path(path))
    assert [i.message for i in issues] == messages
    if path == "$.issues[1]":
        assert issues[0].severity == "warning"


def test_feedback_issues_rejects_non_issues() -> None:
    with pytest.raises(OutputValidationError, match="must select QA issues"):
        feedback_issues(OUT, parse_path("$.data.n"))
    with pytest.raises(OutputValidationError, match="not a QA issue"):
        feedback_issues(OUT, parse_path("$.data.nested"))
