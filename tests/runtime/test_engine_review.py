"""Engine rules pinned after a review: each test failed before its fix (brief H15)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunInputError, RunOptions, run_pipeline
from agentflow.runtime.errors import PipelineDefinitionError
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.usage import Usage

from .test_engine_fakes import (
    Handlers,
    compile_dict,
    fanout_spec,
    hello_spec,
    kinds,
    run,
    text,
    verdict,
)

UNFINISHED = "the run ended before this item finished"


class Opaque:
    """A value the event log cannot serialise."""

    def __init__(self, n: int) -> None:
        self.n = n


# -- feedback_path selecting something that is not issues ------------------------------


async def test_feedback_path_selecting_no_issues_fails_the_item() -> None:
    spec = hello_spec()
    spec["agents"][1]["on_fail"]["feedback_path"] = "$.data"
    handlers = Handlers(
        writer_agent=lambda c: text("d"),
        reviewer_agent=lambda c: AgentOutput(passed=False, data=5),
    )
    result, events = await run(compile_dict(spec), "x", handlers)
    assert result.status == "failed"  # the aggregation decided; the run did not crash
    failed = kinds(events, K.AGENT_FAILED)
    assert [(e.agent, e.item, e.payload["error"]) for e in failed] == [
        ("reviewer_agent", "main", "OutputValidationError")
    ]
    assert "feedback_path selected 5" in failed[0].payload["message"]
    assert [e.item for e in kinds(events, K.ITEM_ABORTED)] == ["main"]
    assert not kinds(events, K.RETRY_SCHEDULED)
    assert result.items[0].status == "aborted"


async def test_feedback_path_failure_leaves_other_items_alone() -> None:
    spec = fanout_spec()
    spec["agents"][2]["on_fail"]["feedback_path"] = "$.data"

    def qa(ctx: AgentContext) -> AgentOutput:
        return AgentOutput(passed=ctx.item.id != "item-1", data={"not": "issues"})

    handlers = Handlers(
        orchestrator_agent=lambda c: AgentOutput(items=["a", "b"]),
        worker_agent=lambda c: text("w"),
        qa_agent=qa,
    )
    result, _ = await run(compile_dict(spec), "x", handlers)
    statuses = {i.id: i.status for i in result.items}
    assert statuses == {"main": "completed", "item-1": "aborted", "item-2": "passed"}
    assert result.status == "failed"


# -- broadcast: passing verdicts are dispatched when failing ones stand --------------------


def broadcast_spec(g2_on_fail: dict[str, Any] | None = None) -> dict[str, Any]:
    g2: dict[str, Any] = {"id": "g2", "prompt": "p"}
    if g2_on_fail is not None:
        g2["on_fail"] = g2_on_fail
    return {
        "name": "bc",
        "defaults": {"retry": {"max_attempts": 3, "backoff_ms": 10}},
        "state_machine": {
            "initial": "init",
            "terminal": ["done", "failed"],
            "states": [{"id": s} for s in ("init", "done", "failed")],
        },
        "agents": [
            {
                "id": "writer",
                "prompt": "p",
                "dispatch": {"strategy": "parallel_broadcast", "targets": ["g1", "g2"]},
            },
            {
                "id": "g1",
                "prompt": "p",
                "dispatch": {"strategy": "sequential", "target": "publisher"},
            },
            g2,
            {"id": "publisher", "prompt": "p"},
        ],
        "aggregation": {
            "strategy": "any_pass",
            "gates": ["g1", "g2"],
            "on_complete": {"transition": "done"},
            "on_any_abort": {"transition": "failed"},
        },
    }


async def test_broadcast_dispatches_passing_gates_when_the_strategy_holds() -> None:
    handlers = Handlers(
        writer=lambda c: text("w"),
        g1=lambda c: verdict(True),
        g2=lambda c: verdict(False, "bad"),
        publisher=lambda c: text("published"),
    )
    result, events = await run(compile_dict(broadcast_spec()), "x", handlers)
    assert [c[0] for c in handlers.calls][-1] == "publisher"
    assert result.status == "succeeded"
    assert result.items[0].output == "published"
    assert not kinds(events, K.RETRY_SCHEDULED)


async def test_broadcast_retry_dispatches_the_passing_gate_once() -> None:
    """A failing retrying peer: the passing gate's dispatch waits for the retry's join."""
    spec = broadcast_spec({"action": "feedback_and_retry", "target": "writer"})
    spec["aggregation"]["strategy"] = "all_pass"
    handlers = Handlers(
        writer=lambda c: text(f"w{c.attempt}"),
        g1=lambda c: verdict(True),
        g2=lambda c: verdict(c.attempt > 1, "bad"),
        publisher=lambda c: text("published"),
    )
    result, _ = await run(compile_dict(spec), "x", handlers)
    assert [c for c in handlers.calls if c[0] == "publisher"] == [("publisher", "main", 1)]
    assert result.status == "succeeded"


# -- items a run-ending error cut short -----------------------------------------------------


async def test_run_ending_error_reports_cut_short_items_aborted(autojump_clock: object) -> None:
    async def worker(ctx: AgentContext) -> AgentOutput:
        if ctx.item.id == "item-1":
            ctx.services.budget.charge(Usage(input_tokens=10_000))
        await trio.sleep(50)  # item-2 is still working when the budget runs out
        return text("w")

    handlers = Handlers(
        orchestrator_agent=lambda c: AgentOutput(items=["a", "b"]),
        worker_agent=worker,
        qa_agent=lambda c: verdict(True),
    )
    result, events = await run(compile_dict(fanout_spec()), "x", handlers, max_total_tokens=100)
    assert result.status == "cancelled" and "max_total_tokens=100" in (result.reason or "")
    assert [(i.id, i.status, i.reason) for i in result.items] == [
        ("main", "aborted", UNFINISHED),
        ("item-1", "aborted", UNFINISHED),
        ("item-2", "aborted", UNFINISHED),
    ]
    assert not kinds(events, K.ITEM_FINISHED)
    assert kinds(events, K.RUN_FINISHED)[0].payload["items"]["aborted"] == 3


async def test_invalid_transition_reports_the_item_unfinished() -> None:
    pipeline = compile_dict(hello_spec())
    table = {
        k: v for k, v in pipeline.transitions.items() if k[1].value != "writer_agent.on_complete"
    }
    pipeline = dataclasses.replace(pipeline, transitions=table)  # the writer's move is illegal
    handlers = Handlers(writer_agent=lambda c: text("d"), reviewer_agent=lambda c: verdict(True))
    result, events = await run(pipeline, "x", handlers)
    assert result.status == "error"
    assert [(i.status, i.reason) for i in result.items] == [("aborted", UNFINISHED)]
    assert not kinds(events, K.ITEM_FINISHED)
    assert [c[0] for c in handlers.calls] == ["writer_agent"]


# -- values the event log cannot record -------------------------------------------------------


async def test_fan_out_of_non_json_items_aborts_the_parent() -> None:
    handlers = Handlers(
        orchestrator_agent=lambda c: AgentOutput(items=["fine", Opaque(2)]),
        worker_agent=lambda c: text("w"),
        qa_agent=lambda c: verdict(True),
    )
    result, events = await run(compile_dict(fanout_spec()), "x", handlers)
    assert result.status == "failed"
    assert [i.id for i in result.items] == ["main"]  # no child was created
    assert not kinds(events, K.ITEM_CREATED)
    reason = result.items[0].reason or ""
    assert "orchestrator_agent" in reason and "work item 2" in reason and "Opaque" in reason
    assert [c[0] for c in handlers.calls] == ["orchestrator_agent"]


async def test_non_json_run_input_fails_before_the_run() -> None:
    sink = MemorySink()
    handlers = Handlers(writer_agent=lambda c: text("d"), reviewer_agent=lambda c: verdict(True))
    with pytest.raises(RunInputError, match="the run input must be JSON-serialisable"):
        await run_pipeline(compile_dict(hello_spec()), Opaque(1), handlers=handlers, sinks=[sink])
    assert sink.events == [] and handlers.calls == []


# -- run options ------------------------------------------------------------------------------


async def test_audit_log_with_a_callers_hub_is_an_error(tmp_path: Any) -> None:
    hub = EventHub(run_id="r")
    handlers = Handlers(writer_agent=lambda c: text("d"), reviewer_agent=lambda c: verdict(True))
    options = RunOptions(audit_log=str(tmp_path / "run.jsonl"))
    with pytest.raises(PipelineDefinitionError, match="audit_log"):
        async with hub.running():
            await run_pipeline(compile_dict(hello_spec()), "x", handlers=handlers, hub=hub,
                               options=options)  # fmt: skip
    assert hub.events_emitted == 0
    assert not (tmp_path / "run.jsonl").exists()


def test_run_options_reject_impossible_limits() -> None:
    with pytest.raises(PipelineDefinitionError, match="max_model_calls=0"):
        RunOptions(max_model_calls=0)
    with pytest.raises(PipelineDefinitionError, match="max_cost_usd=-1"):
        RunOptions(max_cost_usd=-1)


async def test_zero_token_budget_is_a_limit_not_unset() -> None:
    def writer(ctx: AgentContext) -> AgentOutput:
        ctx.services.budget.charge(Usage(input_tokens=1))
        return text("d")

    handlers = Handlers(writer_agent=writer, reviewer_agent=lambda c: verdict(True))
    result, events = await run(compile_dict(hello_spec()), "x", handlers, max_total_tokens=0)
    assert result.status == "cancelled"
    assert kinds(events, K.BUDGET_EXCEEDED)[0].payload["limit"] == "max_total_tokens=0"
