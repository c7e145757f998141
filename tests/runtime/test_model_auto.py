"""run(model=None): live Claude when a key is set, else a clear failure before the run starts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from agentflow.runtime.agents import AgentOutput, QAIssue
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.models.conversation import conversation_problems
from agentflow.runtime.models.factory import NoModelError
from agentflow.runtime.sinks.memory import MemorySink
from tests.fake_anthropic.server import (
    ErrorReply,
    RecordedRequest,
    Scripted,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-ant-api03-AUTO-FAKE-KEY-never-logged-5e6f"


def hello() -> Any:
    path = ROOT / "generated" / "hello_world.py"
    spec = importlib.util.spec_from_file_location("auto_hello_world", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # hello's filesystem tool writes under the cwd
    return monkeypatch


async def test_no_key_fails_before_the_run_starts_and_says_how_to_fix_it(
    env: pytest.MonkeyPatch,
) -> None:
    sink = MemorySink()
    with pytest.raises(NoModelError) as caught:
        await hello().run("topic", sinks=[sink])
    message = str(caught.value)
    assert "agent 'writer_agent' runs from its prompt" in message
    for fix in ("ANTHROPIC_API_KEY", "model=ReplayModel(path)", "model=DryRunModel()"):
        assert fix in message
    assert sink.events == []  # not even run_started


async def test_the_same_holds_for_run_pipeline_with_no_handlers(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(NoModelError, match="writer_agent"):
        await run_pipeline(hello().COMPILED, "topic", handlers=None)


async def test_an_app_that_overrides_one_agent_still_needs_a_model_for_the_other(
    env: pytest.MonkeyPatch,
) -> None:
    module = hello()

    class Mine(module.DefaultHandlers):  # type: ignore[misc, name-defined]
        async def writer_agent(self, ctx: AgentContext) -> AgentOutput:
            return AgentOutput(text="my draft")

    with pytest.raises(NoModelError, match="agent 'reviewer_agent' runs from its prompt"):
        await module.run("topic", handlers=Mine())


async def test_an_app_that_overrides_every_agent_needs_no_model(env: pytest.MonkeyPatch) -> None:
    module = hello()

    class Mine(module.DefaultHandlers):  # type: ignore[misc, name-defined]
        async def writer_agent(self, ctx: AgentContext) -> AgentOutput:
            return AgentOutput(text="my draft")

        async def reviewer_agent(self, ctx: AgentContext) -> AgentOutput:
            return AgentOutput(passed=True, issues=[QAIssue(message="fine", severity="info")])

    result = await module.run("topic", handlers=Mine(), options=RunOptions(backoff_scale=0))
    assert result.ok


def by_role(writer: list[Scripted], reviewer: list[Scripted]) -> Any:
    def answer(request: RecordedRequest) -> Scripted:
        return (reviewer if "tool_choice" in request.body else writer).pop(0)

    return answer


async def test_with_a_key_the_run_opens_live_claude_configured_by_the_pipeline(
    env: pytest.MonkeyPatch,
) -> None:
    busy = ErrorReply(503, "api_error", "busy", {"retry-after-ms": "1"})
    script = by_role(
        writer=[busy, busy, text_reply("Nurseries own their tasks.")],
        reviewer=[tool_reply("submit_verdict", {"passed": True, "summary": "ok"})],
    )
    sink = MemorySink()
    async with open_fake_anthropic(script, expected_key=KEY) as fake:
        env.setenv("ANTHROPIC_API_KEY", KEY)
        env.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        result = await hello().run("trio", sinks=[sink], options=RunOptions(backoff_scale=0))
    assert result.ok, result.reason
    assert sink.events[0].payload["model"] == "anthropic"
    assert len(fake.requests) == 4 and all(r.credential == KEY for r in fake.requests)
    assert all(conversation_problems(r.body["messages"]) == [] for r in fake.requests)
    retries = [e.payload for e in sink.events if e.kind is K.MODEL_ERROR]
    assert [(p["attempt"], p["retrying"]) for p in retries] == [(1, True), (2, True)]
    assert all(KEY not in line for line in sink.lines)


async def test_transport_retries_follow_defaults_retry_max_attempts(
    env: pytest.MonkeyPatch,
) -> None:
    busy = ErrorReply(503, "api_error", "busy", {"retry-after-ms": "1"})
    sink = MemorySink()
    async with open_fake_anthropic(lambda request: busy, expected_key=KEY) as fake:
        env.setenv("ANTHROPIC_API_KEY", KEY)
        env.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        module = hello()
        result = await module.run("trio", sinks=[sink], options=RunOptions(backoff_scale=0))
    max_attempts = module.PIPELINE.defaults.retry.max_attempts
    assert not result.ok
    assert len(fake.requests) == 1 + max_attempts  # the first try, then one retry per attempt
    retries = [e.payload["retrying"] for e in sink.events if e.kind is K.MODEL_ERROR]
    assert retries == [True] * max_attempts + [False]
    failed = [e for e in sink.events if e.kind is K.AGENT_FAILED]
    assert failed[0].payload["error"] == "ModelError" and "503" in failed[0].payload["message"]
