"""Aggregation strategies over one item's gate verdicts, and the run decision."""

from __future__ import annotations

import pytest

from agentflow.runtime.engine.aggregator import decide, gate_verdicts, satisfied
from agentflow.runtime.spec import AggregationSpec


def agg(strategy: str, min_pass: int | None = None) -> AggregationSpec:
    return AggregationSpec.model_validate(
        {
            "strategy": strategy,
            "gates": ["a", "b", "c"],
            "min_pass": min_pass,
            "on_complete": {"transition": "done"},
            "on_any_abort": {"transition": "failed"},
        }
    )


@pytest.mark.parametrize(
    ("strategy", "min_pass", "verdicts", "expected"),
    [
        ("all_pass", None, {"a": True, "b": True, "c": True}, True),
        ("all_pass", None, {"a": True, "b": False}, False),
        ("all_pass", None, {"a": True}, True),  # only the gates that ran count
        ("all_pass", None, {}, False),  # no gate ran: nothing passed
        ("any_pass", None, {"a": False, "b": True}, True),
        ("any_pass", None, {"a": False, "b": False}, False),
        ("threshold", 2, {"a": True, "b": False, "c": True}, True),
        ("threshold", 2, {"a": True, "b": False, "c": False}, False),
        ("threshold", 1, {"x": True, "a": False}, False),  # non-gate verdicts are ignored
    ],
)
def test_satisfied(
    strategy: str, min_pass: int | None, verdicts: dict[str, bool], expected: bool
) -> None:
    assert satisfied(agg(strategy, min_pass), verdicts) is expected


def test_gate_verdicts_in_gate_order() -> None:
    assert gate_verdicts(agg("all_pass"), {"c": False, "x": True, "a": True}) == [True, False]


def test_decide_counts_and_decision() -> None:
    d = decide(["completed", "passed", "passed", "aborted", "failed"])
    assert (d.passed, d.failed, d.aborted, d.decision) == (2, 1, 1, "on_any_abort")
    assert decide(["completed", "passed"]).decision == "on_complete"
    assert decide([]).decision == "on_complete"
