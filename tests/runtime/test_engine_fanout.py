"""Fan-out, broadcast, gates and cancellation (docs/semantics.md)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.sinks.memory import MemorySink

from .test_engine_fakes import Handlers, compile_dict, fanout_spec, kinds, run, text, verdict

WK, Q = "worker_agent", "qa_agent"


def plan(n: int) -> Any:
    return lambda ctx: AgentOutput(text="plan", items=[f"sub-question {k}" for k in range(n)])


class InFlight:
    """Tracks how many worker invocations run at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def worker(self, ctx: AgentContext) -> AgentOutput:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await trio.sleep(0.001 * (hash(ctx.item.id) % 5))
        self.now -= 1
        return text(f"answer to {ctx.item.payload}")


@pytest.mark.parametrize("limit_source", ["dispatch", "option"])
async def test_fan_out_1000_items_respects_concurrency_limit(
    autojump_clock: object, limit_source: str
) -> None:
    flight = InFlight()
    spec = fanout_spec(max_concurrency=7 if limit_source == "dispatch" else None)
    extra = {"max_concurrency": 7} if limit_source == "option" else {}
    handlers = Handlers(
        orchestrator_agent=plan(1000), worker_agent=flight.worker, qa_agent=lambda c: verdict(True)
    )
    result, events = await run(compile_dict(spec), "q", handlers, **extra)

    assert flight.peak == 7
    assert result.status == "succeeded" and result.final_state == "complete"
    assert len(result.items) == 1001
    children = result.items[1:]
    assert [c.id for c in children] == [f"item-{k}" for k in range(1, 1001)]
    assert {c.status for c in children} == {"passed"} and result.items[0].status == "completed"
    assert {c.parent for c in children} == {"main"}
    assert children[41].output == "answer to sub-question 41"
    assert len(kinds(events, K.ITEM_CREATED)) == 1000
    finished = kinds(events, K.ITEM_FINISHED)
    assert len(finished) == 1001 and finished[-1].item == "main"
    agg = kinds(events, K.AGGREGATION)[0].payload
    assert (agg["passed"], agg["aborted"], agg["decision"]) == (1000, 0, "on_complete")


async def test_state_machine_does_not_complete_while_items_in_flight() -> None:
    async def worker(ctx: AgentContext) -> AgentOutput:
        await trio.sleep(0.01 if ctx.item.id == "item-3" else 0)  # item-3 finishes last
        return text("w")

    handlers = Handlers(
        orchestrator_agent=plan(3), worker_agent=worker, qa_agent=lambda c: verdict(True)
    )
    result, events = await run(compile_dict(fanout_spec()), "q", handlers)
    last_item_done = max(e.seq for e in kinds(events, K.ITEM_FINISHED) if e.item != "main")
    early = [e for e in events if e.seq < last_item_done]
    assert all(e.payload["to"] not in ("complete", "failed") for e in kinds(early, K.TRANSITION))
    assert len(kinds(early, K.TRANSITION_DEFERRED)) >= 2  # items passed QA while item-3 ran
    assert result.final_state == "complete"


async def test_one_item_failing_does_not_lose_the_others() -> None:
    def worker(ctx: AgentContext) -> AgentOutput:
        if ctx.item.id == "item-5":
            raise ValueError("bad payload")
        return text("ok")

    handlers = Handlers(
        orchestrator_agent=plan(20), worker_agent=worker, qa_agent=lambda c: verdict(True)
    )
    result, events = await run(compile_dict(fanout_spec()), "q", handlers)
    statuses = {item.id: item.status for item in result.items}
    assert statuses.pop("item-5") == "aborted"
    assert statuses.pop("main") == "completed"
    assert set(statuses.values()) == {"passed"} and len(statuses) == 19
    assert result.status == "failed" and result.final_state == "failed"
    aborted = kinds(events, K.ITEM_ABORTED)
    assert [(e.item, e.agent) for e in aborted] == [("item-5", WK)]
    assert "ValueError: bad payload" in aborted[0].payload["reason"]


async def test_qa_retry_runs_per_item() -> None:
    def qa(ctx: AgentContext) -> AgentOutput:
        if ctx.item.id == "item-2" and ctx.attempt == 1:
            return verdict(False, "cite a source")
        return verdict(True)

    handlers = Handlers(
        orchestrator_agent=plan(3), worker_agent=lambda c: text(f"w{c.attempt}"), qa_agent=qa
    )
    result, events = await run(compile_dict(fanout_spec()), "q", handlers)
    assert result.ok
    item2 = result.items[2]
    assert item2.id == "item-2" and item2.attempts == {WK: 2, Q: 2} and item2.output == "w2"
    assert result.items[1].attempts == {WK: 1, Q: 1}
    retry = kinds(events, K.RETRY_SCHEDULED)
    assert [(e.item, e.payload["target"], e.payload["next_attempt"]) for e in retry] == [
        ("item-2", WK, 2)
    ]


@pytest.mark.parametrize(
    ("strategy", "min_pass", "verdicts", "expected"),
    [
        ("all_pass", None, (True, True), "passed"),
        ("any_pass", None, (True, False), "passed"),
        ("threshold", 1, (False, True), "passed"),
        ("threshold", 2, (True, True), "passed"),
    ],
)
async def test_broadcast_gates_pass(
    strategy: str, min_pass: int | None, verdicts: tuple[bool, bool], expected: str
) -> None:
    spec = fanout_spec(qa=("qa_a", "qa_b"), strategy=strategy, min_pass=min_pass)
    handlers = Handlers(
        orchestrator_agent=plan(50),
        worker_agent=lambda c: text("w"),
        qa_a=lambda c: verdict(verdicts[0], "a says no"),
        qa_b=lambda c: verdict(verdicts[1], "b says no"),
    )
    result, events = await run(compile_dict(spec), "q", handlers)
    assert {i.status for i in result.items[1:]} == {expected}
    assert result.ok
    assert not kinds(events, K.RETRY_SCHEDULED)  # the gates already satisfy the strategy
    assert result.items[1].gates == {"qa_a": verdicts[0], "qa_b": verdicts[1]}


async def test_broadcast_all_pass_retries_once_with_merged_issues() -> None:
    spec = fanout_spec(qa=("qa_a", "qa_b"), strategy="all_pass", max_attempts=3)
    handlers = Handlers(
        orchestrator_agent=plan(2),
        worker_agent=lambda c: text(f"w{c.attempt}"),
        qa_a=lambda c: verdict(c.attempt > 1, "a: too long"),
        qa_b=lambda c: verdict(c.attempt > 1, "b: no source"),
    )
    result, events = await run(compile_dict(spec), "q", handlers)
    assert result.ok
    assert result.items[1].attempts == {WK: 2, "qa_a": 2, "qa_b": 2}
    retried = [c for c in handlers.contexts if c.agent == WK and c.attempt == 2]
    assert len(retried) == 2
    assert sorted(i.message for i in retried[0].feedback) == ["a: too long", "b: no source"]
    assert len(kinds(events, K.RETRY_SCHEDULED)) == 2  # one per item, not per QA agent


async def test_broadcast_threshold_not_met_exhausts_and_aborts() -> None:
    spec = fanout_spec(qa=("qa_a", "qa_b"), strategy="threshold", min_pass=2, max_attempts=2)
    handlers = Handlers(
        orchestrator_agent=plan(4),
        worker_agent=lambda c: text("w"),
        qa_a=lambda c: verdict(True),
        qa_b=lambda c: verdict(c.item.id != "item-4", "no"),
    )
    result, events = await run(compile_dict(spec), "q", handlers)
    assert result.status == "failed" and result.final_state == "failed"
    item4 = result.items[4]
    assert (item4.status, item4.attempts[WK]) == ("aborted", 2)
    agg = kinds(events, K.AGGREGATION)[0].payload
    assert (agg["passed"], agg["aborted"], agg["decision"]) == (3, 1, "on_any_abort")


async def test_broadcast_abort_action_aborts_item() -> None:
    spec = fanout_spec(qa=("qa_a", "qa_b"), strategy="all_pass", qa_action="abort")
    handlers = Handlers(
        orchestrator_agent=plan(2),
        worker_agent=lambda c: text("w"),
        qa_a=lambda c: verdict(True),
        qa_b=lambda c: verdict(False, "style"),
    )
    result, _ = await run(compile_dict(spec), "q", handlers)
    assert [i.status for i in result.items[1:]] == ["aborted", "aborted"]
    assert "qa_b" in (result.items[1].reason or "")


async def test_fan_out_without_items_aborts_the_parent() -> None:
    handlers = Handlers(
        orchestrator_agent=lambda c: text("no list"),
        worker_agent=lambda c: text("w"),
        qa_agent=lambda c: verdict(True),
    )
    result, _ = await run(compile_dict(fanout_spec()), "q", handlers)
    assert result.items[0].status == "aborted" and "returned no work items" in (
        result.items[0].reason or ""
    )
    assert result.status == "failed"


async def test_fan_out_of_zero_items_completes() -> None:
    handlers = Handlers(
        orchestrator_agent=plan(0),
        worker_agent=lambda c: text("w"),
        qa_agent=lambda c: verdict(True),
    )
    result, _ = await run(compile_dict(fanout_spec()), "q", handlers)
    assert result.ok and len(result.items) == 1


async def test_nested_fan_out_item_ids() -> None:
    spec = fanout_spec()
    spec["agents"][1]["dispatch"] = {"strategy": "parallel_fan_out", "target": "qa_agent"}
    handlers = Handlers(
        orchestrator_agent=plan(2),
        worker_agent=lambda c: AgentOutput(text="split", items=[{"part": 1}, {"part": 2}]),
        qa_agent=lambda c: verdict(True),
    )
    result, _ = await run(compile_dict(spec), "q", handlers)
    ids = [(i.id, i.parent) for i in result.items]
    assert ids[:3] == [("main", None), ("item-1", "main"), ("item-2", "main")]
    # grandchildren are listed as their parents' fan-outs run (in scheduling order)
    assert sorted(ids[3:]) == [
        ("item-1.1", "item-1"),
        ("item-1.2", "item-1"),
        ("item-2.1", "item-2"),
        ("item-2.2", "item-2"),
    ]
    payloads = {c.item.id: c.item.payload for c in handlers.contexts if c.agent == Q}
    assert payloads["item-2.1"] == {"part": 1}
    assert result.ok


async def test_cancellation_mid_fan_out_writes_run_cancelled(autojump_clock: object) -> None:
    started: list[str] = []

    async def slow(ctx: AgentContext) -> AgentOutput:
        started.append(ctx.item.id)
        await trio.sleep(100)
        return text("never")

    sink = MemorySink()
    nurseries_before = list(trio.lowlevel.current_task().child_nurseries)
    handlers = Handlers(
        orchestrator_agent=plan(100), worker_agent=slow, qa_agent=lambda c: verdict(True)
    )
    with trio.move_on_after(5) as scope:
        await run_pipeline(
            compile_dict(fanout_spec(max_concurrency=4)),
            "q",
            handlers=handlers,
            sinks=[sink],
            options=RunOptions(),
        )
    assert scope.cancelled_caught
    assert len(started) == 4  # the limiter held the rest back
    assert sink.closed
    tail = [e.kind for e in sink.events[-3:]]
    assert tail == [K.RUN_CANCELLED, K.RUN_FINISHED, K.LOG_SEALED]
    assert sink.events[-2].payload["status"] == "cancelled"
    assert sink.events[-2].payload["items"]["aborted"] == 101  # none finished
    # no task outlives the run: the test's task has no nursery the run opened
    assert trio.lowlevel.current_task().child_nurseries == nurseries_before


async def test_fatal_error_in_one_item_cancels_siblings(autojump_clock: object) -> None:
    import dataclasses

    pipeline = compile_dict(fanout_spec())
    # qa_agent.on_pass is illegal from 'checking' in this hand-built table
    table = {k: v for k, v in pipeline.transitions.items() if k[1].value != "qa_agent.on_pass"}
    pipeline = dataclasses.replace(pipeline, transitions=table)

    async def worker(ctx: AgentContext) -> AgentOutput:
        await trio.sleep(0 if ctx.item.id == "item-1" else 50)
        return text("w")

    handlers = Handlers(
        orchestrator_agent=plan(10), worker_agent=worker, qa_agent=lambda c: verdict(True)
    )
    start = trio.current_time()
    result, events = await run(pipeline, "q", handlers)
    assert trio.current_time() - start < 1  # the sleeping siblings were cancelled
    assert result.status == "error" and "qa_agent.on_pass" in (result.reason or "")
    assert [e.kind for e in events[-2:]] == [K.RUN_FINISHED, K.LOG_SEALED]


async def test_broadcast_over_1000_items_respects_the_item_limit(autojump_clock: object) -> None:
    running: dict[str, int] = {}  # item -> invocations in flight
    peaks = {"items": 0, "qa_pairs": 0}

    async def tracked(ctx: AgentContext, result: AgentOutput) -> AgentOutput:
        running[ctx.item.id] = running.get(ctx.item.id, 0) + 1
        peaks["items"] = max(peaks["items"], len(running))
        peaks["qa_pairs"] = max(peaks["qa_pairs"], running[ctx.item.id])
        await trio.sleep(0.01)
        running[ctx.item.id] -= 1
        if not running[ctx.item.id]:
            del running[ctx.item.id]
        return result

    spec = fanout_spec(qa=("qa_a", "qa_b"), strategy="all_pass", max_concurrency=5)
    handlers = Handlers(
        orchestrator_agent=plan(1000),
        worker_agent=lambda c: tracked(c, text("w")),
        qa_a=lambda c: tracked(c, verdict(True)),
        qa_b=lambda c: tracked(c, verdict(True)),
    )
    result, events = await run(compile_dict(spec), "q", handlers)
    assert result.ok and len(result.items) == 1001
    assert peaks == {"items": 5, "qa_pairs": 2}  # 5 items at once; both gates run together
    assert len(kinds(events, K.QA_VERDICT)) == 2000
