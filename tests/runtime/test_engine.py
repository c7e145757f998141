"""The engine's semantics on one work item (docs/semantics.md), hello-world shaped."""

from __future__ import annotations

import dataclasses

import pytest

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.errors import PipelineDefinitionError
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.models.factory import NoModelError

from .test_engine_fakes import Handlers, compile_dict, hello_spec, kinds, run, text, verdict

W, R = "writer_agent", "reviewer_agent"


def review_fails_first(ctx: AgentContext) -> AgentOutput:
    if ctx.attempt == 1:
        return verdict(False, "add a concrete example")
    return verdict(True)


async def test_hello_world_feedback_loop_exact_sequence() -> None:
    handlers = Handlers(
        writer_agent=lambda ctx: text(f"draft {ctx.attempt}"), reviewer_agent=review_fails_first
    )
    result, events = await run(compile_dict(hello_spec()), "trio nurseries", handlers)

    assert result.status == "succeeded" and result.ok
    assert result.final_state == "complete"
    assert handlers.calls == [(W, "main", 1), (R, "main", 1), (W, "main", 2), (R, "main", 2)]
    retry_ctx = handlers.contexts[2]
    assert [i.message for i in retry_ctx.feedback] == ["add a concrete example"]
    assert retry_ctx.upstream is None and retry_ctx.input == "trio nurseries"
    assert (
        handlers.contexts[3].upstream is not None
        and handlers.contexts[3].upstream.text == "draft 2"
    )

    seq = [(e.kind.value, e.agent, e.attempt) for e in events]
    assert seq == [
        ("run_started", None, None),
        ("agent_started", W, 1),
        ("transition", W, 1),
        ("agent_completed", W, 1),
        ("transition", W, 1),
        ("agent_started", R, 1),
        ("qa_verdict", R, 1),
        ("transition", R, 1),
        ("retry_scheduled", R, 1),
        ("agent_started", W, 2),
        ("transition", W, 2),
        ("agent_completed", W, 2),
        ("transition", W, 2),
        ("agent_started", R, 2),
        ("qa_verdict", R, 2),
        ("transition_deferred", R, 2),
        ("item_finished", None, None),
        ("aggregation", None, None),
        ("transition", None, None),
        ("run_finished", None, None),
        ("log_sealed", None, None),  # written as run_pipeline closes its hub
    ]
    moves = [
        (e.payload["from"], e.payload["to"], e.payload["trigger"], e.payload["noop"])
        for e in kinds(events, K.TRANSITION)
    ]
    assert moves == [
        ("initialised", "running", "writer_agent.on_start", False),
        ("running", "reviewing", "writer_agent.on_complete", False),
        ("reviewing", "running", "reviewer_agent.on_fail", False),
        ("running", "running", "writer_agent.on_start", True),  # a recorded no-op
        ("running", "reviewing", "writer_agent.on_complete", False),
        ("reviewing", "complete", "aggregation.on_complete", False),
    ]
    deferred = kinds(events, K.TRANSITION_DEFERRED)[0]
    assert deferred.payload == {"to": "complete", "trigger": "reviewer_agent.on_pass"}
    started = kinds(events, K.AGENT_STARTED)
    assert started[2].payload["feedback"][0]["message"] == "add a concrete example"
    assert [e.seq for e in events] == list(range(len(events)))
    (main,) = result.items
    assert (main.id, main.status, main.attempts, main.gates, main.output) == (
        "main",
        "passed",
        {W: 2, R: 2},
        {R: True},
        "draft 2",
    )
    assert result.events == len(events) - 1  # every event through run_finished


async def test_exhausted_attempts_abort_item_and_fail_run() -> None:
    handlers = Handlers(
        writer_agent=lambda ctx: text("draft"), reviewer_agent=lambda ctx: verdict(False, "bad")
    )
    result, events = await run(compile_dict(hello_spec()), "x", handlers)

    assert handlers.calls == [(W, "main", 1), (R, "main", 1), (W, "main", 2), (R, "main", 2)]
    assert result.status == "failed" and not result.ok
    assert result.final_state == "failed"
    assert result.items[0].status == "aborted"
    assert "max_attempts 2 exhausted" in (result.items[0].reason or "")
    tail = [(e.kind.value, e.payload.get("to")) for e in events[-8:]]
    assert tail == [
        ("transition", "running"),  # reviewer on_fail
        ("item_aborted", None),
        ("transition_deferred", "failed"),  # reviewer on_abort, held for the run's decision
        ("item_finished", None),
        ("aggregation", None),
        ("transition", "failed"),  # aggregation.on_any_abort
        ("run_finished", None),
        ("log_sealed", None),
    ]
    assert kinds(events, K.AGGREGATION)[0].payload["decision"] == "on_any_abort"
    assert kinds(events, K.RUN_FINISHED)[0].payload["status"] == "failed"


async def test_on_fail_abort_action_aborts_without_retry() -> None:
    spec = hello_spec()
    spec["agents"][1]["on_fail"] = {"action": "abort"}
    handlers = Handlers(
        writer_agent=lambda ctx: text("d"), reviewer_agent=lambda ctx: verdict(False, "no")
    )
    result, events = await run(compile_dict(spec), "x", handlers)
    assert handlers.calls == [(W, "main", 1), (R, "main", 1)]
    assert result.status == "failed"
    assert not kinds(events, K.RETRY_SCHEDULED)
    assert "on_fail: abort" in (result.items[0].reason or "")


async def test_handler_exception_aborts_item_with_agent_failed() -> None:
    def boom(ctx: AgentContext) -> AgentOutput:
        raise RuntimeError("disk on fire")

    result, events = await run(
        compile_dict(hello_spec()),
        "x",
        Handlers(writer_agent=boom, reviewer_agent=review_fails_first),
    )
    failed = kinds(events, K.AGENT_FAILED)[0]
    assert (failed.agent, failed.payload) == (
        W,
        {"error": "RuntimeError", "message": "disk on fire"},
    )
    assert result.status == "failed" and result.final_state == "failed"
    assert result.items[0].status == "aborted"


async def test_handler_returning_wrong_type_fails_the_item() -> None:
    async def bad(ctx: AgentContext) -> AgentOutput:
        return "text"  # type: ignore[return-value]

    handlers = type(
        "H", (), {"writer_agent": staticmethod(bad), "reviewer_agent": staticmethod(bad)}
    )()
    result, events = await run(compile_dict(hello_spec()), "x", handlers)
    assert kinds(events, K.AGENT_FAILED)[0].payload["error"] == "TypeError"
    assert result.status == "failed"


async def test_missing_handler_is_a_definition_error() -> None:
    with pytest.raises(PipelineDefinitionError, match="no method 'reviewer_agent'"):
        await run(compile_dict(hello_spec()), "x", Handlers(writer_agent=lambda ctx: text("d")))


async def test_default_agent_without_model_or_key_fails_before_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(NoModelError, match="model=None"):
        await run(compile_dict(hello_spec()), "x", None)


async def test_illegal_transition_ends_run_with_error() -> None:
    pipeline = compile_dict(hello_spec())
    table = {
        k: v
        for k, v in pipeline.transitions.items()
        if k[1].value != "writer_agent.on_complete" or k[0].value != "running"
    }
    pipeline = dataclasses.replace(pipeline, transitions=table)
    handlers = Handlers(writer_agent=lambda ctx: text("d"), reviewer_agent=review_fails_first)
    result, events = await run(pipeline, "x", handlers)
    assert result.status == "error"
    assert "trigger 'writer_agent.on_complete'" in (result.reason or "")
    assert "state 'running'" in (result.reason or "")
    assert handlers.calls == [(W, "main", 1)]  # nothing ran after the illegal move
    failed = kinds(events, K.AGENT_FAILED)[0]
    assert failed.payload["error"] == "InvalidTransition" and failed.agent == W
    assert [e.kind for e in events[-2:]] == [K.RUN_FINISHED, K.LOG_SEALED]


async def test_without_aggregation_the_deferred_request_is_taken() -> None:
    spec = hello_spec()
    del spec["aggregation"]
    result, events = await run(
        compile_dict(spec),
        "x",
        Handlers(writer_agent=lambda c: text("d"), reviewer_agent=review_fails_first),
    )
    assert result.status == "succeeded" and result.final_state == "complete"
    last_move = kinds(events, K.TRANSITION)[-1]
    assert last_move.payload["trigger"] == "reviewer_agent.on_pass" and last_move.agent == R


async def test_without_aggregation_abort_takes_the_abort_request() -> None:
    spec = hello_spec()
    del spec["aggregation"]
    result, _ = await run(
        compile_dict(spec),
        "x",
        Handlers(writer_agent=lambda c: text("d"), reviewer_agent=lambda c: verdict(False, "x")),
    )
    assert (result.status, result.final_state) == ("failed", "failed")


async def test_no_terminal_request_leaves_run_incomplete() -> None:
    spec = hello_spec()
    del spec["aggregation"]
    spec["agents"][1]["transitions"] = {"on_fail": "running"}
    result, _ = await run(
        compile_dict(spec),
        "x",
        Handlers(writer_agent=lambda c: text("d"), reviewer_agent=lambda c: verdict(True)),
    )
    assert result.status == "incomplete" and result.final_state == "reviewing"


async def test_feedback_path_selects_one_issue() -> None:
    spec = hello_spec()
    spec["agents"][1]["on_fail"]["feedback_path"] = "$.issues[1]"
    handlers = Handlers(
        writer_agent=lambda c: text("d"),
        reviewer_agent=lambda c: (
            verdict(False, "first", "second") if c.attempt == 1 else verdict(True)
        ),
    )
    result, _ = await run(compile_dict(spec), "x", handlers)
    assert result.ok
    assert [i.message for i in handlers.contexts[2].feedback] == ["second"]


async def test_backoff_waits_with_jitter(autojump_clock: object) -> None:
    import trio

    handlers = Handlers(writer_agent=lambda c: text("d"), reviewer_agent=review_fails_first)
    start = trio.current_time()
    result, events = await run(compile_dict(hello_spec()), "x", handlers, backoff_scale=1.0, seed=7)
    waited = trio.current_time() - start
    delay_ms = kinds(events, K.RETRY_SCHEDULED)[0].payload["delay_ms"]
    assert 100 <= delay_ms <= 200  # backoff_ms 200, jitter in [50%, 100%]
    assert waited == pytest.approx(delay_ms / 1000, abs=1e-5)
    assert result.ok


async def test_caller_owned_hub_is_used_and_left_running() -> None:
    from agentflow.runtime.events.hub import EventHub
    from agentflow.runtime.sinks.memory import MemorySink

    sink = MemorySink()
    hub = EventHub(run_id="run-fixed", sinks=[sink])
    async with hub.running():
        result = await run_pipeline(
            compile_dict(hello_spec()),
            "x",
            handlers=Handlers(
                writer_agent=lambda c: text("d"), reviewer_agent=lambda c: verdict(True)
            ),
            hub=hub,
            options=RunOptions(backoff_scale=0),
        )
        hub.emit(K.WARNING, payload={"message": "the caller may still emit"})
    assert result.run_id == "run-fixed" and result.ok
    # Closing the caller's hub seals the log after whatever the caller emitted.
    assert [e.kind for e in sink.events][-3:] == [K.RUN_FINISHED, K.WARNING, K.LOG_SEALED]


async def test_run_id_default_shape() -> None:
    result, events = await run(
        compile_dict(hello_spec()),
        "x",
        Handlers(writer_agent=lambda c: text("d"), reviewer_agent=lambda c: verdict(True)),
    )
    assert result.run_id.startswith("run-") and len(result.run_id) == 16
    assert {e.run_id for e in events} == {result.run_id}


async def test_item_outcome_is_a_valid_model() -> None:
    from agentflow.runtime.engine.runner import ItemOutcome, RunResult

    handlers = Handlers(writer_agent=lambda c: text("d"), reviewer_agent=review_fails_first)
    result, _ = await run(compile_dict(hello_spec()), "x", handlers)
    built = result.items[0]
    validated = ItemOutcome.model_validate(built.model_dump())
    assert built == validated and built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set
    again = RunResult.model_validate_json(result.model_dump_json())
    assert again == result and again.ok
