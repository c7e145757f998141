"""`--explain`'s ceiling for any mix of verdicts is a real bound, and is reached.

Two QA agents joined at one broadcast, each with a feedback loop to the same
worker (max_attempts 2): when every verdict fails, both spend an attempt on each
retry, so the worker runs twice (1 + 6N in all). When they fail in turn (check_a
on the first round, check_b on the second), each spends only its own attempt and
the worker runs three times: 1 + 9N, the ceiling --explain prints.
"""

from __future__ import annotations

from pathlib import Path

from agentflow.compiler.bounds import worst_case
from agentflow.compiler.explain import explain
from agentflow.compiler.load import load_pipeline
from agentflow.runtime import EventKind, compile_spec, run_pipeline
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.models.base import ModelRequest, ModelTurn, TextSink
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.memory import MemorySink

PIPELINE = Path(__file__).resolve().parent / "worst_case" / "two_loops_one_target.yaml"
N = 3


class FailInTurn:
    """Dry-run answers, except that QA agent `agent` fails exactly on the listed attempts."""

    name = "fail-in-turn"

    def __init__(self, failing: set[tuple[str, int]]) -> None:
        self.failing = failing
        self.passing = DryRunModel(items=N)
        self.failing_model = DryRunModel(fail_first=1_000, items=N)

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        fails = (request.agent, request.attempt) in self.failing
        model = self.failing_model if fails else self.passing
        return await model.complete(request, on_text)


def test_explain_prints_the_exact_all_fail_count_and_the_ceiling() -> None:
    loaded = load_pipeline(PIPELINE)
    worst = worst_case(loaded.spec)
    assert str(worst.invocations) == "1 + 6·N"
    assert str(worst.ceiling_invocations) == "1 + 9·N"
    text = explain(loaded)
    assert "per run: agent invocations = 1 + 6·N\n" in text
    assert "any mix of verdicts: agent invocations <= 1 + 9·N" in text


async def test_verdicts_failing_in_turn_reach_the_ceiling(tmp_path: Path) -> None:
    loaded = load_pipeline(PIPELINE)
    ceiling = worst_case(loaded.spec).ceiling_invocations
    assert ceiling is not None
    sink = MemorySink()
    model = FailInTurn({("check_a", 1), ("check_b", 2), ("check_a", 3), ("check_b", 3)})
    result = await run_pipeline(
        compile_spec(loaded.spec, loaded.prompts),
        "topic",
        handlers=None,
        model=model,
        sinks=[sink],
        options=RunOptions(backoff_scale=0, audit_log=str(tmp_path / "run.jsonl")),
    )
    started = [e for e in sink.events if e.kind == EventKind.AGENT_STARTED]
    assert len(started) == ceiling.evaluate({"N": N}) == 1 + 9 * N
    workers = [e for e in started if e.agent == "worker"]
    assert len(workers) == 3 * N  # three rounds per item, not two
    assert result.status == "failed"
