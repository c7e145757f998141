"""The hello-world pipeline end to end on AnthropicModel: real runner, real SDK, fake API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentflow.compiler.load import load_pipeline
from agentflow.runtime.engine.runner import RunOptions, RunResult, run_pipeline
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.conversation import conversation_problems
from agentflow.runtime.models.replay import ReplayModel
from agentflow.runtime.pipeline import CompiledPipeline, compile_spec
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.tools.filesystem import FilesystemTool
from tests.fake_anthropic.cassette import replies_from_cassette
from tests.fake_anthropic.server import (
    ErrorReply,
    RecordedRequest,
    Scripted,
    StreamErrorReply,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "pipelines" / "hello_world.yaml"
KEY = "sk-ant-api03-E2E-FAKE-KEY-never-in-the-log-91b2"

DRAFT_1 = "Trio runs tasks in nurseries."
DRAFT_2 = "Trio runs concurrent tasks inside nurseries, so no task outlives its parent."
FAIL = {"passed": False, "issues": [{"message": "too terse: say why nurseries matter"}]}
PASS = {"passed": True, "issues": [], "summary": "clear"}


def hello_world() -> CompiledPipeline:
    loaded = load_pipeline(HELLO)
    return compile_spec(
        loaded.spec,
        loaded.prompts,
        source_path=loaded.source_path,
        source_sha256=loaded.source_sha256,
    )


def is_review(request: RecordedRequest) -> bool:
    return "tool_choice" in request.body


class HelloScript:
    """Answers by role, not by order: a reviewer request gets the next verdict."""

    def __init__(self, writer: list[Scripted], reviewer: list[Scripted]) -> None:
        self.writer = writer
        self.reviewer = reviewer

    def __call__(self, request: RecordedRequest) -> Scripted:
        queue = self.reviewer if is_review(request) else self.writer
        return queue.pop(0)


async def run_hello(
    script: HelloScript, tmp_path: Path, **model_kw: Any
) -> tuple[RunResult, list[PipelineEvent], list[RecordedRequest], list[str]]:
    sink = MemorySink()
    async with open_fake_anthropic(script) as fake:
        model = AnthropicModel(api_key=KEY, base_url=fake.base_url, backoff_base_s=0.01, **model_kw)
        async with model:
            result = await run_pipeline(
                hello_world(),
                "Explain trio nurseries in two sentences.",
                handlers=None,
                model=model,
                tools={"filesystem": FilesystemTool(str(tmp_path), id="filesystem")},
                sinks=[sink],
                options=RunOptions(backoff_scale=0.0, seed=1),
            )
    assert_valid_conversations(fake.requests)
    return result, sink.events, fake.requests, sink.lines


def assert_valid_conversations(requests: list[RecordedRequest]) -> None:
    """Every conversation the runner sent would be accepted by the real Messages API."""
    for number, request in enumerate(requests):
        problems = conversation_problems(request.body["messages"])
        assert problems == [], f"request {number}: {problems}"


def kinds(events: list[PipelineEvent]) -> list[tuple[str, str | None, str | None, int | None]]:
    """(kind, agent, item, attempt), without model_text (its batching is timing-dependent)."""
    return [
        (str(e.kind), e.agent, e.item, e.attempt)
        for e in events
        if e.kind is not EventKind.MODEL_TEXT
    ]


async def test_hello_world_feedback_loop_against_the_fake_api(tmp_path: Path) -> None:
    script = HelloScript(
        writer=[text_reply(DRAFT_1), text_reply(DRAFT_2)],
        reviewer=[tool_reply("submit_verdict", FAIL), tool_reply("submit_verdict", PASS)],
    )
    result, events, requests, lines = await run_hello(script, tmp_path)
    assert result.ok, result.reason
    assert result.final_state == "complete"
    assert len(requests) == 4
    writer_1, review_1, writer_2, review_2 = requests
    # the writer is offered its filesystem tool and answers freely
    assert [t["name"] for t in writer_1.body["tools"]] == ["filesystem"]
    assert "tool_choice" not in writer_1.body
    # the reviewer is forced to call the verdict tool, and sees the draft
    assert review_1.body["tool_choice"] == {"type": "tool", "name": "submit_verdict"}
    assert DRAFT_1 in str(review_1.body["messages"])
    # the retry carries the reviewer's feedback; the second review sees the new draft
    assert "too terse" in str(writer_2.body["messages"]) + str(writer_2.body.get("system"))
    assert DRAFT_2 in str(review_2.body["messages"])
    verdicts = [e.payload["passed"] for e in events if e.kind is EventKind.QA_VERDICT]
    assert verdicts == [False, True]
    responses = [e for e in events if e.kind is EventKind.MODEL_RESPONSE]
    assert len(responses) == 4
    assert all(r.payload["usage"]["cost_usd"] > 0 for r in responses)
    assert result.usage.model_calls == 4
    assert result.usage.cost_usd == pytest.approx(
        sum(r.payload["usage"]["cost_usd"] for r in responses)
    )
    assert all(KEY not in line for line in lines)


async def test_api_faults_are_retried_inside_the_run(tmp_path: Path) -> None:
    script = HelloScript(
        writer=[
            ErrorReply(429, "rate_limit_error", "slow down", {"retry-after-ms": "10"}),
            StreamErrorReply("overloaded_error", "Overloaded"),
            text_reply(DRAFT_2),
        ],
        reviewer=[
            ErrorReply(529, "overloaded_error", "Overloaded"),
            tool_reply("submit_verdict", PASS),
        ],
    )
    result, events, requests, lines = await run_hello(script, tmp_path)
    assert result.ok, result.reason
    assert len(requests) == 5
    # transport retries never consume QA attempts
    assert {e.attempt for e in events if e.agent == "writer_agent"} == {1}
    assert all(KEY not in line for line in lines)


async def test_a_rejected_key_fails_the_run_without_leaking_it(tmp_path: Path) -> None:
    def reject(request: RecordedRequest) -> Scripted:
        return ErrorReply(401, "authentication_error", f"invalid x-api-key {request.credential}")

    sink = MemorySink()
    async with open_fake_anthropic(reject) as fake:
        async with AnthropicModel(api_key=KEY, base_url=fake.base_url) as model:
            result = await run_pipeline(
                hello_world(),
                "topic",
                handlers=None,
                model=model,
                tools={"filesystem": FilesystemTool(str(tmp_path), id="filesystem")},
                sinks=[sink],
                options=RunOptions(backoff_scale=0.0),
            )
        assert len(fake.requests) == 1  # rejected at once, not retried
    assert not result.ok
    failed = [e for e in sink.events if e.kind is EventKind.AGENT_FAILED]
    assert failed and "401" in str(failed[0].payload)
    assert all(KEY not in line for line in sink.lines)
    assert KEY not in str(result.model_dump())


async def replay_run(cassette: Path, tmp_path: Path) -> tuple[RunResult, list[PipelineEvent]]:
    sink = MemorySink()
    result = await run_pipeline(
        hello_world(),
        "Explain trio nurseries in two sentences.",
        handlers=None,
        model=ReplayModel(cassette),
        tools={"filesystem": FilesystemTool(str(tmp_path), id="filesystem")},
        sinks=[sink],
        options=RunOptions(backoff_scale=0.0, seed=1),
    )
    return result, sink.events


async def test_a_live_runs_audit_log_replays_to_the_same_events(tmp_path: Path) -> None:
    write = {"op": "write", "path": "draft.md", "content": DRAFT_1}
    script = HelloScript(
        writer=[
            tool_reply("filesystem", write, text="Saving a draft."),
            text_reply(DRAFT_1),
            text_reply(DRAFT_2),
        ],
        reviewer=[tool_reply("submit_verdict", FAIL), tool_reply("submit_verdict", PASS)],
    )
    live_dir, replay_dir = tmp_path / "live", tmp_path / "replay"
    live_dir.mkdir()
    replay_dir.mkdir()
    live, live_events, requests, lines = await run_hello(script, live_dir)
    assert live.ok, live.reason
    assert (live_dir / "draft.md").read_text() == DRAFT_1
    tool_result = requests[1].body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and not tool_result.get("is_error")

    audit_log = tmp_path / "run.jsonl"
    audit_log.write_text("".join(line if line.endswith("\n") else line + "\n" for line in lines))
    replayed, replay_events = await replay_run(audit_log, replay_dir)
    assert replayed.ok and replayed.final_state == live.final_state
    assert kinds(replay_events) == kinds(live_events)
    assert (replay_dir / "draft.md").read_text() == DRAFT_1
    assert replayed.usage.cost_usd == pytest.approx(live.usage.cost_usd)


CASSETTE = ROOT / "pipelines" / "hello_world.cassette.jsonl"


async def test_the_committed_cassette_gives_the_same_events_live_and_replayed(
    tmp_path: Path,
) -> None:
    replies = replies_from_cassette(CASSETTE)
    assert replies, "the cassette has no model_response lines"
    live_dir, replay_dir = tmp_path / "live", tmp_path / "replay"
    live_dir.mkdir()
    replay_dir.mkdir()
    sink = MemorySink()
    async with open_fake_anthropic(replies) as fake:
        async with AnthropicModel(api_key=KEY, base_url=fake.base_url) as model:
            live = await run_pipeline(
                hello_world(),
                "Explain trio nurseries in two sentences.",
                handlers=None,
                model=model,
                tools={"filesystem": FilesystemTool(str(live_dir), id="filesystem")},
                sinks=[sink],
                options=RunOptions(backoff_scale=0.0, seed=1),
            )
        assert fake.remaining == 0
    replayed, replay_events = await replay_run(CASSETTE, replay_dir)
    assert live.status == replayed.status and live.final_state == replayed.final_state
    assert kinds(sink.events) == kinds(replay_events)


async def test_a_transport_retry_is_one_model_error_event(tmp_path: Path) -> None:
    script = HelloScript(
        writer=[
            ErrorReply(429, "rate_limit_error", f"slow down {KEY}", {"retry-after-ms": "20"}),
            text_reply(DRAFT_2),
        ],
        reviewer=[tool_reply("submit_verdict", PASS)],
    )
    result, events, requests, lines = await run_hello(script, tmp_path)
    assert result.ok, result.reason
    assert len(requests) == 3
    errors = [e for e in events if e.kind is EventKind.MODEL_ERROR]
    assert len(errors) == 1
    error = errors[0]
    assert (error.agent, error.item, error.attempt) == ("writer_agent", "main", 1)
    assert error.payload["retrying"] is True and error.payload["attempt"] == 1
    assert error.payload["turn"] == 1 and error.payload["delay_s"] == pytest.approx(0.02)
    assert "429" in error.payload["error"] and "[redacted]" in error.payload["error"]
    # the event comes between the turn's request and its (successful) response
    order = [e.kind for e in events if e.agent == "writer_agent" and e.kind.startswith("model_")]
    assert [k for k in order if k is not EventKind.MODEL_TEXT] == [
        EventKind.MODEL_REQUEST,
        EventKind.MODEL_ERROR,
        EventKind.MODEL_RESPONSE,
    ]
    assert all(KEY not in line for line in lines)


async def test_a_final_transport_failure_is_reported_before_the_agent_fails(
    tmp_path: Path,
) -> None:
    down = ErrorReply(503, "api_error", "down for maintenance")
    script = HelloScript(writer=[down, down], reviewer=[])
    result, events, requests, lines = await run_hello(script, tmp_path, max_retries=1)
    assert not result.ok and len(requests) == 2
    tail = [e for e in events if e.kind in (EventKind.MODEL_ERROR, EventKind.AGENT_FAILED)]
    assert [(str(e.kind), e.payload.get("retrying")) for e in tail] == [
        ("model_error", True),
        ("model_error", False),
        ("agent_failed", None),
    ]
    final = tail[1].payload
    assert final["attempt"] == 2 and final["delay_s"] is None and "503" in final["error"]
    assert all(KEY not in line for line in lines)


async def test_an_invalid_verdict_is_answered_with_an_error_tool_result(tmp_path: Path) -> None:
    bad = {"passed": "maybe"}
    script = HelloScript(
        writer=[text_reply(DRAFT_1)],
        reviewer=[
            tool_reply("submit_verdict", bad, text="Reviewing.", tool_id="toolu_bad_1"),
            tool_reply("submit_verdict", PASS),
        ],
    )
    result, _, requests, _ = await run_hello(script, tmp_path)
    assert result.ok, result.reason
    reask = requests[2].body["messages"]
    assert [m["role"] for m in reask] == ["user", "assistant", "user"]
    assert reask[1]["content"] == [
        {"type": "text", "text": "Reviewing."},
        {"type": "tool_use", "id": "toolu_bad_1", "name": "submit_verdict", "input": bad},
    ]
    (answer,) = reask[2]["content"]
    assert answer["type"] == "tool_result" and answer["tool_use_id"] == "toolu_bad_1"
    assert answer["is_error"] is True and "could not be used" in answer["content"]
    assert "passed" in answer["content"]  # the validation error names the bad field
    assert requests[2].body["tool_choice"] == {"type": "tool", "name": "submit_verdict"}
