"""Pipeline shapes the examples do not cover, compiled by the real agentflowc and run end to end.

Agents not scripted here run their default body on `DryRunModel`, so the real
prompt rendering, model events and structured answers are exercised too.
"""

from __future__ import annotations

from pathlib import Path

import trio

from agentflow.runtime import AgentContext, AgentOutput
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.models.replay import ReplayModel
from agentflow.runtime.sinks.memory import MemorySink

from .conftest import Compiled
from .helpers import PIPELINES, fail, kinds, of, run_module

DRY = DryRunModel


def ok(ctx: AgentContext) -> AgentOutput:
    return AgentOutput(text=f"{ctx.agent} done")


async def test_single_agent_ends_by_its_deferred_request(compiled: Compiled) -> None:
    result, events = await run_module(compiled["single_agent"], "hi", model=DRY())
    assert (result.status, result.final_state) == ("succeeded", "done")
    assert [(i.id, i.status, i.attempts) for i in result.items] == [
        ("main", "completed", {"solo": 1})
    ]
    assert kinds(events) == [
        "run_started",
        "agent_started:solo",
        "agent_completed:solo",
        "transition_deferred:solo",
        "item_finished",
        "transition:solo",
        "run_finished",
    ]
    assert of(events, K.TRANSITION)[0].payload == {
        "from": "start",
        "to": "done",
        "trigger": "solo.on_complete",
        "noop": False,
    }
    text = of(events, K.MODEL_RESPONSE)[0].payload["text"]
    assert "You are solo working on main (attempt 1). Input: hi" in text


async def test_no_aggregation_pass_takes_the_on_pass_request(compiled: Compiled) -> None:
    result, events = await run_module(compiled["no_aggregation"], model=DRY())
    assert (result.status, result.final_state) == ("succeeded", "published")
    assert not of(events, K.AGGREGATION)
    assert [e.payload["to"] for e in of(events, K.TRANSITION)] == ["reviewing", "published"]


async def test_no_aggregation_exhausted_retries_take_the_on_abort_request(
    compiled: Compiled,
) -> None:
    result, events = await run_module(compiled["no_aggregation"], model=DRY(fail_first=5))
    assert (result.status, result.final_state) == ("failed", "rejected")
    assert result.items[0].status == "aborted"
    assert result.items[0].attempts == {"writer": 2, "reviewer": 2}
    assert len(of(events, K.RETRY_SCHEDULED)) == 1
    final = of(events, K.TRANSITION)[-1].payload
    assert (final["to"], final["trigger"]) == ("rejected", "reviewer.on_abort")
    # the deferred on_pass never happened; on_fail moved back to drafting (non-terminal)
    assert [e.payload["to"] for e in of(events, K.TRANSITION_DEFERRED)] == ["rejected"]


async def test_explicit_entry_starts_at_the_named_agent(compiled: Compiled) -> None:
    assert "agent 'orphan' never runs" in compiled.stderr
    module = compiled["explicit_entry"]
    assert module.ENTRY is module.AgentId.STARTER
    result, events = await run_module(module, model=DRY())
    assert (result.status, result.final_state) == ("succeeded", "done")
    assert of(events, K.RUN_STARTED)[0].payload["entry"] == "starter"
    assert [e.agent for e in of(events, K.AGENT_STARTED)] == ["starter", "finisher"]
    assert result.items[0].attempts == {"starter": 1, "finisher": 1}


async def test_long_chain_runs_every_step_in_order(compiled: Compiled) -> None:
    result, events = await run_module(compiled["long_chain"], model=DRY())
    steps = [f"step_{i}" for i in range(1, 11)]
    assert (result.status, result.final_state) == ("succeeded", "finished")
    started = of(events, K.AGENT_STARTED)
    assert [e.agent for e in started] == steps
    assert [e.payload["upstream"] for e in started] == [None, *steps[:-1]]
    assert [e.payload["to"] for e in of(events, K.TRANSITION)] == [
        *(f"s{i}" for i in range(1, 10)),
        "finished",
    ]


async def test_broadcast_to_non_qa_agents_that_continue(compiled: Compiled) -> None:
    seen: list[tuple[str, str | None]] = []

    def record(ctx: AgentContext) -> AgentOutput:
        seen.append((ctx.agent, ctx.upstream.text if ctx.upstream else None))
        return AgentOutput(text=f"from {ctx.agent}")

    result, events = await run_module(
        compiled["broadcast_continue"],
        splitter=record,
        left=record,
        right=record,
        left_tail=record,
        right_tail=record,
    )
    assert (result.status, result.final_state) == ("succeeded", "done")
    assert sorted(seen) == [
        ("left", "from splitter"),
        ("left_tail", "from left"),
        ("right", "from splitter"),
        ("right_tail", "from right"),
        ("splitter", None),
    ]
    assert result.items[0].attempts == {
        "splitter": 1,
        "left": 1,
        "right": 1,
        "left_tail": 1,
        "right_tail": 1,
    }
    assert not of(events, K.QA_VERDICT)


async def test_broadcast_any_pass_one_gate_passing_is_enough(compiled: Compiled) -> None:
    result, events = await run_module(
        compiled["broadcast_any_pass"],
        drafter=ok,
        gate_a=lambda ctx: fail("a says no"),
        gate_b=lambda ctx: AgentOutput(passed=True),
        gate_c=lambda ctx: fail("c says no"),
    )
    assert (result.status, result.final_state) == ("succeeded", "accepted")
    assert not of(events, K.RETRY_SCHEDULED)
    assert result.items[0].gates == {"gate_a": False, "gate_b": True, "gate_c": False}
    assert of(events, K.AGGREGATION)[0].payload["decision"] == "on_complete"


async def test_broadcast_all_pass_retries_through_the_gate_with_on_fail(
    compiled: Compiled,
) -> None:
    result, events = await run_module(
        compiled["broadcast_all_pass"],
        drafter=lambda ctx: AgentOutput(text=f"draft {ctx.attempt}"),
        gate_a=lambda ctx: (
            fail("a") if ctx.upstream and ctx.upstream.text == "draft 1" else AgentOutput()
        ),
        gate_b=lambda ctx: AgentOutput(),
        gate_c=lambda ctx: AgentOutput(),
    )
    assert (result.status, result.final_state) == ("succeeded", "accepted")
    assert result.items[0].attempts == {"drafter": 2, "gate_a": 2, "gate_b": 2, "gate_c": 2}
    retry = of(events, K.RETRY_SCHEDULED)
    assert [(r.payload["target"], r.payload["next_attempt"]) for r in retry] == [("drafter", 2)]


async def test_broadcast_all_pass_failing_gate_without_on_fail_fails_the_run(
    compiled: Compiled,
) -> None:
    result, events = await run_module(
        compiled["broadcast_all_pass"],
        drafter=ok,
        gate_a=lambda ctx: AgentOutput(),
        gate_b=lambda ctx: fail("b says no"),
        gate_c=lambda ctx: AgentOutput(),
    )
    assert (result.status, result.final_state) == ("failed", "rejected")
    assert result.items[0].status == "failed"
    assert not of(events, K.RETRY_SCHEDULED)
    assert of(events, K.AGGREGATION)[0].payload["decision"] == "on_any_abort"


async def test_broadcast_threshold_retries_until_min_pass(compiled: Compiled) -> None:
    def gate_a(ctx: AgentContext) -> AgentOutput:
        return fail("a") if ctx.attempt == 1 else AgentOutput()

    result, events = await run_module(
        compiled["broadcast_threshold"],
        drafter=ok,
        gate_a=gate_a,
        gate_b=lambda ctx: fail("b always fails"),
        gate_c=lambda ctx: AgentOutput(),
    )
    # attempt 1: only c passes (1 < 2): retry via gate_a; attempt 2: a and c pass (2 >= 2)
    assert (result.status, result.final_state) == ("succeeded", "accepted")
    assert result.items[0].gates == {"gate_a": True, "gate_b": False, "gate_c": True}
    assert result.items[0].attempts["drafter"] == 2
    merged = of(events, K.AGENT_STARTED, "drafter")[1].payload["feedback"]
    assert sorted(i["message"] for i in merged) == ["a", "b always fails"]


async def test_nested_fan_out_ids_parents_and_verdicts(compiled: Compiled) -> None:
    result, events = await run_module(
        compiled["nested_fanout"],
        model=DRY(),
        outliner=lambda ctx: AgentOutput(items=["intro", "body"]),
        chapter=lambda ctx: AgentOutput(items=[f"{ctx.item.payload}/{k}" for k in "xyz"]),
    )
    assert (result.status, result.final_state) == ("succeeded", "complete")
    by_id = {i.id: i for i in result.items}
    assert sorted(by_id) == sorted(
        ["main", "item-1", "item-2"] + [f"item-{c}.{s}" for c in (1, 2) for s in (1, 2, 3)]
    )
    assert by_id["item-2.3"].parent == "item-2" and by_id["item-2"].parent == "main"
    assert by_id["item-2.3"].status == "passed"
    assert by_id["item-2.3"].attempts == {"section": 1, "section_qa": 1}
    created = {e.item: e.payload for e in of(events, K.ITEM_CREATED)}
    assert created["item-1.2"]["payload"] == "intro/y"
    rendered = of(events, K.MODEL_REQUEST, "section")
    assert len(rendered) == 6
    assert of(events, K.ITEM_FINISHED)[-1].item == "main"
    aggregation = of(events, K.AGGREGATION)[0].payload
    assert (aggregation["passed"], aggregation["aborted"]) == (6, 0)


async def test_fan_out_of_zero_items_completes_without_gates(compiled: Compiled) -> None:
    result, events = await run_module(
        compiled["fanout_items"], model=DRY(), planner=lambda ctx: AgentOutput(items=[])
    )
    assert [(i.id, i.status) for i in result.items] == [("main", "completed")]
    assert not of(events, K.ITEM_CREATED)
    # docs/semantics.md: no item failed or aborted -> aggregation.on_complete
    assert (result.status, result.final_state) == ("succeeded", "complete")


async def test_fan_out_of_one_dict_item(compiled: Compiled) -> None:
    payloads: list[object] = []

    def worker(ctx: AgentContext) -> AgentOutput:
        payloads.append(ctx.item.payload)
        return AgentOutput(text=str(ctx.item.payload["title"]))

    result, events = await run_module(
        compiled["fanout_items"],
        model=DRY(),
        planner=lambda ctx: AgentOutput(items=[{"title": "Ünïcode", "n": [1, 2]}]),
        worker=worker,
    )
    assert (result.status, result.final_state) == ("succeeded", "complete")
    assert payloads == [{"title": "Ünïcode", "n": [1, 2]}]
    assert [(i.id, i.status) for i in result.items] == [("main", "completed"), ("item-1", "passed")]
    assert of(events, K.ITEM_CREATED)[0].payload["payload"] == {"title": "Ünïcode", "n": [1, 2]}
    request = of(events, K.MODEL_RESPONSE, "checker")[0]
    assert request.item == "item-1"


async def test_fan_out_of_dict_items_from_the_default_agent(compiled: Compiled) -> None:
    """The dry-run model's fan-out answers flow through the real structured-answer path."""
    result, events = await run_module(compiled["fanout_items"], model=DRY(items=1))
    assert (result.status, result.final_state) == ("succeeded", "complete")
    assert [i.id for i in result.items if i.status == "passed"] == ["item-1"]
    assert of(events, K.AGENT_COMPLETED, "planner")[0].payload["items"] == 1


async def test_feedback_target_two_hops_upstream(compiled: Compiled) -> None:
    feedback: dict[str, list[tuple[int, int]]] = {"writer": [], "editor": []}

    def track(ctx: AgentContext) -> AgentOutput:
        feedback[ctx.agent].append((ctx.attempt, len(ctx.feedback)))
        return AgentOutput(text=f"{ctx.agent} v{ctx.attempt}")

    def qa(ctx: AgentContext) -> AgentOutput:
        assert ctx.upstream is not None
        return AgentOutput() if ctx.upstream.text == "editor v3" else fail(f"try {ctx.attempt}")

    result, events = await run_module(
        compiled["two_hop_feedback"], writer=track, editor=track, qa=qa
    )
    assert (result.status, result.final_state) == ("succeeded", "complete")
    assert result.items[0].attempts == {"writer": 3, "editor": 3, "qa": 3}
    assert feedback["writer"] == [(1, 0), (2, 1), (3, 1)]
    assert feedback["editor"] == [(1, 0), (2, 0), (3, 0)]  # feedback goes to the target only
    started = [(e.agent, e.attempt) for e in of(events, K.AGENT_STARTED)]
    assert started == [(a, n) for n in (1, 2, 3) for a in ("writer", "editor", "qa")]


async def test_feedback_two_hops_exhausted_aborts(compiled: Compiled) -> None:
    result, events = await run_module(
        compiled["two_hop_feedback"], writer=ok, editor=ok, qa=lambda ctx: fail("never good")
    )
    assert (result.status, result.final_state) == ("failed", "failed")
    assert result.items[0].attempts == {"writer": 3, "editor": 3, "qa": 3}
    assert len(of(events, K.RETRY_SCHEDULED)) == 2
    assert of(events, K.ITEM_ABORTED)[0].agent == "qa"


async def test_on_fail_abort_aborts_without_retry(compiled: Compiled) -> None:
    result, events = await run_module(
        compiled["abort_on_fail"], maker=ok, strict_qa=lambda ctx: fail("no")
    )
    assert (result.status, result.final_state) == ("failed", "failed")
    assert result.items[0].status == "aborted"
    assert result.items[0].attempts == {"maker": 1, "strict_qa": 1}
    assert not of(events, K.RETRY_SCHEDULED)
    assert kinds(events)[-7:] == [
        "qa_verdict:strict_qa",
        "item_aborted:strict_qa",
        "transition_deferred:strict_qa",
        "item_finished",
        "aggregation",
        "transition",
        "run_finished",
    ]


async def test_sparse_transitions_only_the_last_agent_moves(compiled: Compiled) -> None:
    result, events = await run_module(compiled["sparse_transitions"], model=DRY())
    assert (result.status, result.final_state) == ("succeeded", "done")
    assert [e.agent for e in of(events, K.AGENT_COMPLETED)] == ["first", "second", "third"]
    assert [(e.agent, e.payload["to"]) for e in of(events, K.TRANSITION)] == [("third", "done")]
    assert len(of(events, K.TRANSITION_DEFERRED)) == 1


async def test_snake_cased_name_gives_the_module_name(compiled: Compiled) -> None:
    assert (compiled.out_dir / "my_cool_pipeline_v2_0.py").exists()
    module = compiled["my_cool_pipeline_v2_0"]
    assert module.PIPELINE.name == "My Cool-Pipeline v2.0"
    result, _ = await run_module(module, model=DRY())
    assert (result.status, result.final_state, result.pipeline) == (
        "succeeded",
        "z",
        "My Cool-Pipeline v2.0",
    )


async def test_qa_agent_with_tools_reads_what_the_writer_saved(compiled: Compiled) -> None:
    model = ReplayModel(PIPELINES / "qa_with_tools.cassette.jsonl")
    result, events = await run_module(compiled["qa_with_tools"], model=model)
    assert (result.status, result.final_state) == ("succeeded", "complete")
    assert Path("workspace/draft.md").read_text(encoding="utf-8") == "Brouillon ✓ v1"
    results = of(events, K.TOOL_RESULT, "checker")
    assert [r.payload["output"] for r in results] == ["Brouillon ✓ v1"]
    requests = of(events, K.MODEL_REQUEST, "checker")
    assert [(r.payload["tools"], r.payload["output"]) for r in requests] == [
        (["filesystem"], "verdict"),
        (["filesystem"], "verdict"),
    ]
    assert of(events, K.QA_VERDICT)[0].payload["passed"] is True
    assert result.usage.model_calls == 4


async def test_max_tool_rounds_hit_aborts_the_item(compiled: Compiled) -> None:
    model = ReplayModel(PIPELINES / "qa_with_tools_rounds.cassette.jsonl")
    result, events = await run_module(compiled["qa_with_tools"], model=model)
    assert (result.status, result.final_state) == ("failed", "failed")
    failed = of(events, K.AGENT_FAILED, "writer")[0].payload
    assert "more than 1 rounds (max_tool_rounds)" in failed["message"]
    assert len(of(events, K.TOOL_CALL)) == 1  # the second round's call never runs
    assert not of(events, K.AGENT_STARTED, "checker")
    assert result.items[0].status == "aborted"


async def test_cancel_scope_mid_fan_out_writes_cancelled_and_finished(
    compiled: Compiled, autojump_clock: object
) -> None:
    async def slow(self: object, ctx: AgentContext) -> AgentOutput:
        await trio.sleep(10)
        return AgentOutput(text="late")

    module = compiled["fanout_items"]
    handlers = type("Slow", (module.DefaultHandlers,), {"worker": slow})()
    sink = MemorySink()
    with trio.move_on_after(15) as scope:
        await module.run(
            "x",
            handlers=handlers,
            model=DRY(items=4),
            sinks=[sink],
            options=RunOptions(max_concurrency=1),
        )
    assert scope.cancelled_caught
    run_events = [e for e in sink.events if e.kind.value != "log_sealed"]  # the seal is last
    assert [e.kind for e in run_events[-2:]] == [K.RUN_CANCELLED, K.RUN_FINISHED]
    finished = run_events[-1].payload
    assert finished["status"] == "cancelled"
    # item-1 passed at t=10; item-2 was mid-sleep; 3 and 4 never started
    assert finished["items"] == {"passed": 1, "failed": 0, "aborted": 4, "completed": 0}
    assert [e.seq for e in sink.events] == list(range(len(sink.events)))
