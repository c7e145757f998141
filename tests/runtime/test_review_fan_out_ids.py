"""Two fan-out agents on one item number their children apart (review of DSL v2 part 2).

A broadcast to two fan-outs, or a reduce that fans out again, runs two fan-out agents
on the same item: both numbered their children `item-1`, `item-2`, ... so one id
named two items in the audit log, and `agentflow verify` failed a genuine log (an
aborted `item-1` of one fan-out and a completed `item-1` of the other counted as one).
"""

from __future__ import annotations

from pathlib import Path

from agentflow.runtime import EventKind, run_pipeline
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.memory import MemorySink

BROADCAST_TO_TWO_FAN_OUTS = """\
name: two-fan-outs
agents:
  - id: a
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [f1, f2]}
  - id: f1
    prompt: p.md
    dispatch: {strategy: parallel_fan_out, target: w1}
  - id: f2
    prompt: p.md
    dispatch: {strategy: parallel_fan_out, target: w2}
  - id: w1
    prompt: p.md
    on_fail: {action: abort}
  - id: w2
    prompt: p.md
"""

REDUCE_THEN_FAN_OUT = """\
name: reduce-then-fan-out
agents:
  - id: f1
    prompt: p.md
    dispatch: {strategy: parallel_fan_out, target: w, reduce: f2}
  - id: w
    prompt: p.md
  - id: f2
    prompt: p.md
    dispatch: {strategy: parallel_fan_out, target: w2}
  - id: w2
    prompt: p.md
    dispatch: {strategy: parallel_fan_out, target: w3}
  - id: w3
    prompt: p.md
"""


async def _run(tmp_path: Path, text: str, model: DryRunModel) -> tuple[list[str], Path]:
    (tmp_path / "p.md").write_text("Do {{ input }}.\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    module = compile_and_import(path)
    log = tmp_path / "run.jsonl"
    sink = MemorySink()
    await run_pipeline(
        module.compiled,
        "topic",
        handlers=module.default_handlers(),
        model=model,
        sinks=[sink],
        options=RunOptions(backoff_scale=0, audit_log=log),
    )
    created = [str(e.item) for e in sink.events if e.kind == EventKind.ITEM_CREATED]
    return created, log


async def test_two_fan_outs_of_a_broadcast_number_their_children_apart(tmp_path: Path) -> None:
    created, log = await _run(
        tmp_path, BROADCAST_TO_TWO_FAN_OUTS, DryRunModel(items=2, fail_first=1)
    )
    assert len(created) == 4
    assert len(set(created)) == 4, created
    assert sorted(created) == ["item-f1-1", "item-f1-2", "item-f2-1", "item-f2-2"]
    report = verify_log(log)
    assert report.ok, report.problems


async def test_a_reduce_that_fans_out_again_numbers_its_children_apart(tmp_path: Path) -> None:
    created, log = await _run(tmp_path, REDUCE_THEN_FAN_OUT, DryRunModel(items=2))
    assert len(set(created)) == len(created) == 2 + 2 + 4, created
    # w2 is the only fan-out on its items: its children keep the v1 form `<parent>.<k>`
    assert "item-f2-1.2" in created
    assert verify_log(log).ok
