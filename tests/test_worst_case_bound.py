"""`agentflowc --explain`'s worst case is a real bound, and a tight one.

Each pipeline runs on the dry-run model in its worst case: every QA verdict
failing, every fan-out producing N items, and every router told to take the case
the bound counts (its costliest one, each loop case until its `max_iterations`
are spent). The agent invocations the run makes must equal the bound's formula
evaluated at N (the bound is exact for these shapes: `WorstCase.exact`), and the
model calls must not exceed it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentflow.compiler.bounds import worst_case
from agentflow.compiler.diagnostics import CompileError
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
    _shape("retry_target_off_path", "5", "failed", reviser=["recheck"]),
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


def _random_pipeline(rng: random.Random, size: int) -> tuple[str, dict[str, list[str]]]:
    """Agents a0..a<size-1> dispatching forward (sequential, broadcast, route to agents,
    end or abort), some routes with a bounded case back upstream, some leaves QA agents
    retrying an earlier agent. Many are invalid (the checks reject them): skipped."""
    lines = ["name: random", "defaults:", "  retry: {max_attempts: 2, backoff_ms: 0}", "agents:"]
    routers: dict[str, list[str]] = {}
    for i in range(size):
        lines += [f"  - id: a{i}", "    prompt: p.md"]
        later = [f"a{j}" for j in range(i + 1, size)]
        kind = rng.random()
        if not later or kind < 0.15:
            if i and rng.random() < 0.5:
                retry = f"a{rng.randint(0, i - 1)}"
                lines.append(f"    on_fail: {{action: feedback_and_retry, target: {retry}}}")
        elif kind < 0.45:
            lines.append(f"    dispatch: {{strategy: sequential, target: {rng.choice(later)}}}")
        elif kind < 0.6 and len(later) >= 2:
            one, two = rng.sample(later, 2)
            lines.append(f"    dispatch: {{strategy: parallel_broadcast, targets: [{one}, {two}]}}")
        else:
            cases = {f"c{k}": rng.choice([*later, "end", "end", "abort"]) for k in range(3)}
            if rng.random() < 0.6:
                back, limit = f"a{rng.randint(0, i)}", rng.randint(1, 3)
                then = rng.choice(["end", "abort"])
                cases["loop"] = f"{{target: {back}, max_iterations: {limit}, on_exhausted: {then}}}"
            lines += ["    dispatch:", "      strategy: route", "      cases:"]
            lines += [f"        {key}: {value}" for key, value in cases.items()]
            routers[f"a{i}"] = list(cases)
    return "\n".join(lines) + "\n", routers


async def test_random_routes_and_loops_never_exceed_the_bound(tmp_path: Path) -> None:
    """Soundness on shapes nobody drew: any route choices, every verdict failing."""
    rng = random.Random(5)
    (tmp_path / "p.md").write_text("Do {{ input }}.\n")
    valid = 0
    for number in range(120):
        text, routers = _random_pipeline(rng, rng.randint(3, 8))
        path = tmp_path / f"random_{number}.yaml"
        path.write_text(text)
        try:
            loaded = load_pipeline(path)
        except CompileError:
            continue
        valid += 1
        bound = worst_case(loaded.spec).invocations
        assert bound is not None, text
        module = compile_and_import(path)
        for _ in range(3):
            routes = {
                r: [rng.choice(cases) for _ in range(rng.randint(1, 6))]
                for r, cases in routers.items()
            }
            sink = MemorySink()
            await run_pipeline(
                module.compiled,
                "topic",
                handlers=module.default_handlers(),
                model=DryRunModel(fail_first=1_000, routes=routes),
                sinks=[sink],
                options=RunOptions(backoff_scale=0),
            )
            started = sum(1 for e in sink.events if e.kind == EventKind.AGENT_STARTED)
            assert started <= bound.evaluate({}), (text, routes)
    assert valid >= 30  # the generator still makes enough valid pipelines to mean something
