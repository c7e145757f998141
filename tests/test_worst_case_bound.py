"""`agentflowc --explain`'s worst case is a real bound, and a tight one.

Each pipeline runs on the dry-run model in its worst case: every QA verdict
failing, every fan-out producing N items, and every router told to take the case
the bound counts (its costliest one, each loop case until its `max_iterations`
are spent). The agent invocations the run makes must equal the bound's formula
evaluated at N (the bound is exact for these shapes: `WorstCase.exact`), and the
model calls must not exceed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentflow.compiler.bounds import worst_case
from agentflow.compiler.load import load_pipeline
from agentflow.runtime import EventKind, run_pipeline
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.memory import MemorySink

ROOT = Path(__file__).resolve().parents[1]
N = 3


@dataclass(frozen=True)
class Case:
    path: Path
    formula: str
    status: str
    routes: dict[str, list[str]] = field(default_factory=dict)


def _example(name: str, formula: str, status: str, **routes: list[str]) -> Case:
    return Case(ROOT / "pipelines" / f"{name}.yaml", formula, status, routes)


def _shape(name: str, formula: str, status: str, **routes: list[str]) -> Case:
    return Case(ROOT / "tests" / "worst_case" / f"{name}.yaml", formula, status, routes)


CASES = [
    _example("hello_world", "4", "failed"),
    _example("seed_minimal", "4", "failed"),
    _example("research_fanout", "1 + 6·N", "failed"),
    _example("plan_execute", "11", "succeeded", replanner=["execute"]),
    _example("map_reduce", "2 + N", "succeeded"),
    _example(
        "supervisor",
        "19",
        "succeeded",
        supervisor=["research"] * 3 + ["write"] * 3 + ["finish"],
    ),
    _shape("two_loops_one_target", "1 + 6·N", "failed"),
    _shape("route_loop_exit", "10", "succeeded", replanner=["more"] * 3 + ["done"]),
    _shape("route_costliest_case", "6", "succeeded", triage=["deep"]),
    _shape(
        "nested_loops",
        "19",
        "succeeded",
        checker=["retry"] * 3 + ["ok"],
        reviewer=["again", "again", "done"],
    ),
    _shape("qa_in_route", "7", "failed", router=["review"]),
    _shape("map_reduce_routes", "2 + 2·N", "succeeded", analyst=["deep"]),
    _shape("join_with_qa_branch", "6", "failed"),
    _shape("sub_pipeline_fan_outs", "1 + 2·N1 + N1·N2", "succeeded"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.path.stem for c in CASES])
async def test_worst_case_bound_is_reached_and_not_exceeded(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_pipeline(case.path)
    bound = worst_case(loaded.spec, loaded.children)
    assert bound.invocations is not None and bound.model_calls is not None
    assert str(bound.invocations) == case.formula
    assert bound.exact, bound.notes
    symbols = dict.fromkeys(bound.symbols, N)
    monkeypatch.chdir(tmp_path)  # the filesystem tool's workspace
    module = compile_and_import(case.path)  # its DefaultHandlers run a sub-pipeline agent

    sink = MemorySink()
    result = await run_pipeline(
        module.compiled,
        "topic",
        handlers=module.default_handlers(),
        model=DryRunModel(fail_first=1_000, items=N, routes=case.routes),
        sinks=[sink],
        options=RunOptions(backoff_scale=0),
    )
    started = sum(1 for e in sink.events if e.kind == EventKind.AGENT_STARTED)
    assert started == bound.invocations.evaluate(symbols)
    assert result.usage.model_calls <= bound.model_calls.evaluate(symbols)
    assert result.status == case.status, result
