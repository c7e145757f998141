"""`agentflowc --explain`'s worst case is a real bound, and a tight one.

Each example pipeline runs on the dry-run model with every QA verdict failing
(the worst case) and every fan-out producing N items; the agent invocations the
run makes must equal the bound's formula evaluated at N (the bound is exact
for these shapes), and the model calls must not exceed it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.bounds import worst_case
from agentflow.compiler.load import load_pipeline
from agentflow.runtime import EventKind, compile_spec, run_pipeline
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.memory import MemorySink

ROOT = Path(__file__).resolve().parents[1]
N = 3


PIPELINES = [
    *(ROOT / "pipelines" / f"{name}.yaml" for name in ("hello_world", "seed_minimal")),
    ROOT / "pipelines" / "research_fanout.yaml",
    ROOT / "tests" / "worst_case" / "two_loops_one_target.yaml",
]


@pytest.mark.parametrize("path", PIPELINES, ids=[p.stem for p in PIPELINES])
async def test_worst_case_bound_is_reached_and_not_exceeded(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the filesystem tool's workspace
    loaded = load_pipeline(path)
    bound = worst_case(loaded.spec)
    assert bound.invocations is not None and bound.model_calls is not None
    symbols = dict.fromkeys(bound.symbols, N)

    sink = MemorySink()
    result = await run_pipeline(
        compile_spec(loaded.spec, loaded.prompts),
        "topic",
        handlers=None,
        model=DryRunModel(fail_first=1_000, items=N),
        sinks=[sink],
        options=RunOptions(backoff_scale=0),
    )
    started = sum(1 for e in sink.events if e.kind == EventKind.AGENT_STARTED)
    assert started == bound.invocations.evaluate(symbols)
    assert result.usage.model_calls <= bound.model_calls.evaluate(symbols)
    assert result.status == "failed"  # every item ran out of attempts
