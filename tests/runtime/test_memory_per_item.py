"""What a fan-out keeps per item (issue 12: memory per item not above 3 KB).

A finished item keeps only what the run's result and a reduce read (`ItemState.release`);
the upstream output of an agent no QA sends items back to is not kept; engine-built
models share one `fields_set` (pydantic only reads, copies or re-adds to it).
The bound is on bytes Python allocated (tracemalloc), not on time.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from agentflow.runtime.agents import (
    AgentOutput,
    ChildResult,
    TextOutput,
    child_result,
    text_output,
)
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.run_result import _outcome
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind, new_event

from .test_engine_fakes import Handlers, compile_dict, fanout_spec, run, verdict

N = 2000


async def _worker(ctx: AgentContext) -> AgentOutput:
    return AgentOutput(text=f"answer to {ctx.item.payload}", data={"n": ctx.item.index})


class FanOut:
    """Handlers that keep nothing themselves (the scripted `Handlers` keep every context).

    As in the peer harness's workload B, no handler waits: each item runs to its end once
    its task starts, so the peak is what finished items keep, not what waiting ones hold
    (a task, its coroutines and context: ~4.7 KB an item while its model call is out)."""

    async def orchestrator_agent(self, ctx: AgentContext) -> AgentOutput:
        return AgentOutput(text="plan", items=list(range(N)))

    worker_agent = staticmethod(_worker)

    async def qa_agent(self, ctx: AgentContext) -> AgentOutput:
        return AgentOutput(passed=True)


async def test_a_fan_out_keeps_well_under_3_kb_an_item_at_its_peak(tmp_path: Path) -> None:
    pipeline = compile_dict(fanout_spec())
    options = RunOptions(audit_log=tmp_path / "run.jsonl", max_concurrency=N)
    await run_pipeline(pipeline, "q", handlers=FanOut(), options=options)  # warm the caches
    gc.collect()
    tracemalloc.start()
    try:
        result = await run_pipeline(pipeline, "q", handlers=FanOut(), options=options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == "succeeded" and len(result.items) == N + 1
    assert result.items[7].output == "answer to 6"
    # 4,718 bytes an item before finished items released what they no longer need and
    # engine-built models shared their fields_set (peer harness B: 4.74 KB RSS an item).
    assert peak / N < 3000, f"{peak / N:.0f} bytes an item"


async def test_a_finished_item_keeps_its_result_and_a_retry_still_gets_its_input() -> None:
    seen: list[tuple[str, int, str | None]] = []

    async def worker(ctx: AgentContext) -> AgentOutput:
        seen.append((ctx.item.id, ctx.attempt, ctx.upstream.text if ctx.upstream else None))
        return AgentOutput(text=f"w{ctx.attempt}")

    handlers = Handlers(
        orchestrator_agent=lambda c: AgentOutput(text="the plan", items=["a", "b"]),
        worker_agent=worker,
        qa_agent=lambda c: verdict(c.attempt > 1),  # each item is sent back once
    )
    result, _ = await run(compile_dict(fanout_spec()), "q", handlers)
    assert result.status == "succeeded"
    assert sorted(seen) == [
        ("item-1", 1, "the plan"),
        ("item-1", 2, "the plan"),
        ("item-2", 1, "the plan"),
        ("item-2", 2, "the plan"),
    ]
    child = result.items[1]
    assert (child.output, child.attempts, child.gates) == (
        "w2",
        {"worker_agent": 2, "qa_agent": 2},
        {"qa_agent": True},
    )


def test_models_sharing_a_fields_set_copy_and_update_independently() -> None:
    one, two = text_output("one"), text_output("two")
    copied = one.model_copy(update={"text": "changed"})
    assert (copied.text, one.text, two.text) == ("changed", "one", "two")
    assert one.model_fields_set == two.model_fields_set == {"text"}
    assert TextOutput.model_validate(one.model_dump()) == one

    child = child_result("item-1", "passed", one, None)
    assert child.model_copy(update={"status": "failed"}).status == "failed"
    assert child.status == "passed" and child == ChildResult(
        id="item-1", status="passed", output=one, reason=None
    )

    fields = {
        "run_id": "r", "seq": 0, "ts": 1.0, "kind": EventKind.WARNING, "agent": None,
        "item": None, "attempt": None, "payload": {}, "pipeline_hash": "", "prev_hash": "",
    }  # fmt: skip
    event = new_event(fields)
    assert event.model_copy(update={"seq": 5}).seq == 5 and event.seq == 0
    assert new_event(dict(fields)).model_fields_set == set(fields)


def test_an_item_outcome_built_by_the_engine_copies_like_a_validated_one() -> None:
    from agentflow.runtime.agents import WorkItem
    from agentflow.runtime.engine.plan import ItemState

    item = ItemState(WorkItem("item-1", "x", 1, "main"))
    item.status, item.output = "passed", "done"
    outcome, other = _outcome(item), _outcome(item)
    changed = outcome.model_copy(update={"status": "failed"})
    assert changed.status == "failed" and outcome.status == other.status == "passed"
    assert other.model_fields_set == set(type(other).model_fields)
