"""Aggregation: does one item's set of gate verdicts satisfy the pipeline's strategy?

Pure functions, no I/O: the dispatcher asks after a QA join (to skip retries
that cannot change the outcome) and the runner asks once per item at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..spec import AggregationSpec

__all__ = ["AggregateDecision", "decide", "gate_verdicts", "item_status", "satisfied"]


def gate_verdicts(spec: AggregationSpec, verdicts: Mapping[str, bool]) -> list[bool]:
    """The last verdict of each gate agent that ran on the item (gates order)."""
    return [verdicts[g] for g in spec.gates if g in verdicts]


def satisfied(spec: AggregationSpec, verdicts: Mapping[str, bool]) -> bool:
    """True if the item's gate verdicts satisfy the strategy.

    all_pass: every gate that ran passed (and at least one ran); any_pass: at
    least one passed; threshold: at least `min_pass` passed.
    """
    results = gate_verdicts(spec, verdicts)
    if spec.strategy == "all_pass":
        return bool(results) and all(results)
    if spec.strategy == "any_pass":
        return any(results)
    return sum(results) >= (spec.min_pass or 1)


def item_status(spec: AggregationSpec | None, aborted: bool, verdicts: Mapping[str, bool]) -> str:
    """A finished item's status: "aborted", "passed"/"failed" by its verdicts, or "completed".

    With an aggregation whose gates ran on the item, the strategy judges; otherwise
    (no aggregation, or only non-gate QA agents ran) every verdict must have passed.
    """
    if aborted:
        return "aborted"
    if not verdicts:
        return "completed"
    if spec is not None and gate_verdicts(spec, verdicts):
        return "passed" if satisfied(spec, verdicts) else "failed"
    return "passed" if all(verdicts.values()) else "failed"


@dataclass(frozen=True, slots=True)
class AggregateDecision:
    """The run-level outcome: counts per item status and which trigger fires."""

    passed: int
    failed: int
    aborted: int
    decision: str  # "on_complete" | "on_any_abort"


def decide(statuses: Iterable[str]) -> AggregateDecision:
    """Fold per-item statuses; any failed or aborted item means `on_any_abort`.

    Items with status "completed" (no gate reached them) do not count.
    """
    counts = {"passed": 0, "failed": 0, "aborted": 0, "completed": 0}
    for status in statuses:
        counts[status] += 1
    bad = counts["failed"] + counts["aborted"]
    return AggregateDecision(
        passed=counts["passed"],
        failed=counts["failed"],
        aborted=counts["aborted"],
        decision="on_any_abort" if bad else "on_complete",
    )
