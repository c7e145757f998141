"""run_default_agent with a scripted model: prompts, tool loop, structured output, budget."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime.engine.runner import RunOptions, RunResult, run_pipeline
from agentflow.runtime.errors import ToolError
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.models.base import ModelRequest, ModelTurn, TextSink, ToolCall
from agentflow.runtime.models.conversation import conversation_problems
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.usage import Usage

from .test_engine_fakes import compile_dict, fanout_spec, hello_spec, kinds

PROMPTS = Path(__file__).resolve().parents[2] / "pipelines" / "prompts"
Script = Callable[[ModelRequest], ModelTurn]


class ScriptedModel:
    """A fake Model: answers each request with `script(request)`, streaming its text."""

    name = "scripted"

    def __init__(self, script: Script, *, chunks: int = 1, delay: float = 0.0) -> None:
        self.script = script
        self.requests: list[ModelRequest] = []
        self.chunks = chunks
        self.delay = delay
        self.in_flight = 0
        self.peak = 0

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        self.requests.append(request)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                await trio.sleep(self.delay)
            turn = self.script(request)
            if on_text is not None and turn.text:
                size = max(1, len(turn.text) // self.chunks)
                for start in range(0, len(turn.text), size):
                    on_text(turn.text[start : start + size])
            return turn
        finally:
            self.in_flight -= 1


class AddTool:
    """A tiny real tool: adds two numbers; refuses negatives with a ToolError."""

    id = "adder"
    description = "Add two numbers."
    input_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    }

    async def execute(self, input: Mapping[str, Any]) -> Any:
        if input["a"] < 0:
            raise ToolError("negative numbers are not supported; pass a >= 0")
        return {"sum": input["a"] + input["b"]}


def hello(reviewer: dict[str, Any] | None = None, **writer: Any) -> Any:
    spec = hello_spec()
    spec["tools"] = [{"id": "adder", "type": "plugin", "plugin": "x:AddTool"}]
    spec["agents"][0].update({"tools": ["adder"], **writer})
    spec["agents"][1].update(reviewer or {})
    prompts = {
        "writer_agent": (PROMPTS / "writer_agent.md").read_text(),
        "reviewer_agent": (PROMPTS / "reviewer_agent.md").read_text(),
    }
    return compile_dict(spec, prompts)


async def go(pipeline: Any, model: ScriptedModel, **options: Any) -> tuple[RunResult, list[Any]]:
    sink = MemorySink()
    options.setdefault("backoff_scale", 0)
    result = await run_pipeline(
        pipeline, "Rust ownership", handlers=None, model=model, tools={"adder": AddTool()},
        sinks=[sink], options=RunOptions(**options),
    )  # fmt: skip
    for request in model.requests:  # every conversation would be valid for the real API
        assert conversation_problems(request.messages) == [], (request.agent, request.turn)
    return result, sink.events


def usage(tokens: int, cost: float = 0.0) -> Usage:
    return Usage(input_tokens=tokens, output_tokens=tokens, cost_usd=cost, model_calls=1)


def passing_review(request: ModelRequest) -> ModelTurn:
    return ModelTurn(structured={"passed": True, "summary": "good"}, usage=usage(5))


async def test_tool_loop_over_several_rounds() -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "reviewer_agent":
            return passing_review(request)
        calls = {
            1: (ToolCall("c1", "adder", {"a": 1, "b": 2}),),
            2: (ToolCall("c2", "adder", {"a": -1, "b": 2}), ToolCall("c3", "nope", {})),
        }
        if request.turn in calls:
            return ModelTurn(
                text=f"thinking {request.turn}", tool_calls=calls[request.turn], usage=usage(10)
            )
        return ModelTurn(text="final draft", usage=usage(10))

    model = ScriptedModel(script)
    result, events = await go(hello(), model)
    assert result.ok, result.reason
    writer = [r for r in model.requests if r.agent == "writer_agent"]
    assert [r.turn for r in writer] == [1, 2, 3]
    assert [t.name for t in writer[0].tools] == ["adder"] and writer[0].output == "text"
    turn3 = writer[2].messages
    assert [m["role"] for m in turn3] == ["user", "assistant", "user", "assistant", "user"]
    assert turn3[1]["content"][1] == {
        "type": "tool_use",
        "id": "c1",
        "name": "adder",
        "input": {"a": 1, "b": 2},
    }
    first_results = turn3[2]["content"]
    assert first_results == [
        {"type": "tool_result", "tool_use_id": "c1", "content": '{"sum": 3}', "is_error": False}
    ]
    errors = turn3[4]["content"]
    assert errors[0]["is_error"] and "negative numbers" in errors[0]["content"]
    assert errors[1]["is_error"] and "unknown tool 'nope'" in errors[1]["content"]
    results = kinds(events, K.TOOL_RESULT)
    assert [r.payload.get("output") for r in results] == [{"sum": 3}, None, None]
    assert [r.payload["call_id"] for r in kinds(events, K.TOOL_CALL)] == ["c1", "c2", "c3"]
    assert result.items[0].output == "final draft"
    assert result.usage.input_tokens == 35 and result.usage.model_calls == 4


async def test_max_tool_rounds_exceeded_fails_the_agent() -> None:
    def script(request: ModelRequest) -> ModelTurn:
        return ModelTurn(tool_calls=(ToolCall(f"c{request.turn}", "adder", {"a": 1, "b": 1}),))

    model = ScriptedModel(script)
    result, events = await go(hello(max_tool_rounds=2), model)
    failed = kinds(events, K.AGENT_FAILED)[0]
    assert "more than 2 rounds (max_tool_rounds)" in failed.payload["message"]
    assert len(model.requests) == 3 and len(kinds(events, K.TOOL_CALL)) == 2
    assert result.status == "failed"


async def test_malformed_verdict_is_reasked_once_then_accepted() -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "writer_agent":
            return ModelTurn(text="draft")
        if request.turn == 1:
            return ModelTurn(text="looks fine", structured={"passed": "maybe", "extra": 1})
        return ModelTurn(structured={"passed": True})

    model = ScriptedModel(script)
    result, _ = await go(hello(), model)
    assert result.ok
    reask = [r for r in model.requests if r.agent == "reviewer_agent"][1]
    assert reask.output == "verdict"
    last = reask.messages[-1]["content"][0]["text"]
    assert "could not be used" in last and "submit_verdict" in last


async def test_malformed_verdict_twice_is_an_output_validation_error() -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "writer_agent":
            return ModelTurn(text="draft")
        return ModelTurn(text="no tool call")

    result, events = await go(hello(), ScriptedModel(script))
    failed = kinds(events, K.AGENT_FAILED)[0]
    assert failed.agent == "reviewer_agent" and failed.payload["error"] == "OutputValidationError"
    assert "gave an invalid verdict twice" in failed.payload["message"]
    assert result.status == "failed"


async def test_feedback_is_rendered_into_prompt_and_message() -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "writer_agent":
            return ModelTurn(text=f"draft {request.attempt}")
        if request.attempt == 1:
            issue = {
                "message": "no concrete example",
                "suggestion": "show a borrow",
                "location": "para 2",
            }
            return ModelTurn(structured={"passed": False, "issues": [issue]})
        return ModelTurn(structured={"passed": True})

    model = ScriptedModel(script)
    result, _ = await go(hello(), model)
    assert result.ok
    first, retry = [r for r in model.requests if r.agent == "writer_agent"]
    assert "Rust ownership" in first.system and "A reviewer found problems" not in first.system
    assert "This is attempt 2" in retry.system
    assert "- no concrete example (suggestion: show a borrow)" in retry.system
    user = retry.messages[0]["content"][0]["text"]
    assert user.startswith("Input:\nRust ownership")
    assert "- [blocking] no concrete example (at para 2) Suggestion: show a borrow" in user
    review = [r for r in model.requests if r.agent == "reviewer_agent"][1]
    assert "draft 2" in review.system  # {{ upstream }}


async def test_model_events_follow_the_cassette_format() -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "writer_agent":
            return ModelTurn(text="x" * 5000, usage=usage(3), stop_reason="end_turn", model="m-1")
        return passing_review(request)

    result, events = await go(hello(), ScriptedModel(script, chunks=50))
    assert result.ok
    texts = [e for e in kinds(events, K.MODEL_TEXT) if e.agent == "writer_agent"]
    assert "".join(e.payload["text"] for e in texts) == "x" * 5000
    assert 2 <= len(texts) < 50  # batched, flushed at 2 KB
    response = kinds(events, K.MODEL_RESPONSE)[0]
    assert (response.agent, response.item, response.attempt) == ("writer_agent", "main", 1)
    assert set(response.payload) == {
        "turn",
        "text",
        "tool_calls",
        "structured",
        "usage",
        "stop_reason",
        "model",
    }
    assert response.payload["usage"]["input_tokens"] == 3 and response.payload["model"] == "m-1"
    request = kinds(events, K.MODEL_REQUEST)[0].payload
    assert request["tools"] == ["adder"] and request["output"] == "text"


async def test_budget_exceeded_cancels_the_run_cleanly(autojump_clock: object) -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "orchestrator_agent":
            return ModelTurn(
                structured={"items": [f"q{k}" for k in range(20)]}, usage=usage(10, 0.01)
            )
        if request.agent == "worker_agent":
            return ModelTurn(text="w", usage=usage(10, 0.01))
        return passing_review(request)

    model = ScriptedModel(script, delay=1.0)
    pipeline = compile_dict(fanout_spec())
    result, events = await go(pipeline, model, max_cost_usd=0.035)
    assert result.status == "cancelled"
    assert "max_cost_usd=0.035" in (result.reason or "")
    assert len(kinds(events, K.BUDGET_EXCEEDED)) == 1
    assert [e.kind for e in events[-3:]] == [K.RUN_CANCELLED, K.RUN_FINISHED, K.LOG_SEALED]
    assert result.usage.cost_usd > 0.035
    assert any(i.status == "aborted" and "ended before" in (i.reason or "") for i in result.items)


async def test_model_calls_are_limited_run_wide(autojump_clock: object) -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "orchestrator_agent":
            return ModelTurn(structured={"items": [f"q{k}" for k in range(12)]})
        if request.agent == "worker_agent":
            return ModelTurn(text="w")
        return passing_review(request)

    model = ScriptedModel(script, delay=1.0)
    result, events = await go(compile_dict(fanout_spec()), model, max_model_calls=3)
    assert result.ok
    assert model.peak == 3
    orchestrator = next(r for r in model.requests if r.agent == "orchestrator_agent")
    assert orchestrator.output == "items"
    payloads = [e.payload["payload"] for e in kinds(events, K.ITEM_CREATED)]
    assert payloads[:2] == ["q0", "q1"]


async def test_an_answer_given_with_other_tool_calls_is_answered_and_asked_again() -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "writer_agent":
            return ModelTurn(text="draft")
        if request.turn == 1:
            call = ToolCall("c1", "adder", {"a": 1, "b": 2})
            return ModelTurn(
                text="  ", tool_calls=(call,), structured={"passed": True}, structured_call_id="v1"
            )
        return ModelTurn(structured={"passed": True}, structured_call_id="v2")

    model = ScriptedModel(script)
    result, _ = await go(hello(reviewer={"tools": ["adder"]}), model)
    assert result.ok, result.reason
    second = [r for r in model.requests if r.agent == "reviewer_agent"][1]
    assistant, answers = second.messages[1], second.messages[2]
    assert [b["type"] for b in assistant["content"]] == ["tool_use", "tool_use"]  # no blank text
    assert assistant["content"][1] == {
        "type": "tool_use",
        "id": "v1",
        "name": "submit_verdict",
        "input": {"passed": True},
    }
    assert [(b["tool_use_id"], b["is_error"]) for b in answers["content"]] == [
        ("c1", False),
        ("v1", True),
    ]
    assert "submit your final verdict again" in answers["content"][1]["content"]


async def test_a_reask_without_a_call_id_echoes_the_answer_as_text() -> None:
    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "writer_agent":
            return ModelTurn(text="draft")
        if request.turn == 1:
            return ModelTurn(structured={"passed": "maybe"})
        return ModelTurn(structured={"passed": True})

    model = ScriptedModel(script)
    result, _ = await go(hello(), model)
    assert result.ok
    reask = [r for r in model.requests if r.agent == "reviewer_agent"][1].messages
    assert reask[1]["content"] == [
        {"type": "text", "text": '[submit_verdict: {"passed": "maybe"}]'}
    ]
    assert reask[2]["content"][0]["type"] == "text"
