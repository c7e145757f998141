"""AnthropicModel against the real SDK, real HTTP and a fake Messages API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from agentflow.runtime.agents import QAVerdict
from agentflow.runtime.errors import ModelError, ModelRequestRejected
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.base import ModelRequest, ToolSchema
from agentflow.runtime.models.pricing import PriceTable
from tests.fake_anthropic.server import (
    ErrorReply,
    FakeAnthropic,
    HangReply,
    Reply,
    Scripted,
    StreamErrorReply,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)

KEY = "sk-ant-api03-FAKE-KEY-must-never-leak-7f3a9c"

READ_TOOL = ToolSchema(
    name="read_file",
    description="Read a file from the workspace.",
    input_schema={"type": "object", "properties": {"path": {"type": "string"}}},
)


def make_request(**overrides: Any) -> ModelRequest:
    fields: dict[str, Any] = {
        "agent": "writer_agent",
        "item": "main",
        "attempt": 1,
        "turn": 1,
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": "You are a careful writer.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Explain trio."}]}],
    }
    fields.update(overrides)
    return ModelRequest(**fields)


class Retries:
    """Records on_retry calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, float]] = []

    def __call__(self, error: str, attempt: int, delay_s: float) -> None:
        self.calls.append((error, attempt, delay_s))


def model_for(fake: FakeAnthropic, retries: Retries | None = None, **kw: Any) -> AnthropicModel:
    kw.setdefault("backoff_base_s", 0.01)
    return AnthropicModel(api_key=KEY, base_url=fake.base_url, on_retry=retries, **kw)


@asynccontextmanager
async def serving(
    script: Sequence[Scripted],
    retries: Retries | None = None,
    *,
    expected_key: str | None = None,
    **model_kw: Any,
) -> AsyncIterator[tuple[FakeAnthropic, AnthropicModel]]:
    """A fake server with `script`, and an AnthropicModel pointed at it."""
    async with (
        open_fake_anthropic(script, expected_key=expected_key) as fake,
        model_for(fake, retries, **model_kw) as model,
    ):
        yield fake, model


async def test_plain_answer_streams_text_in_several_deltas() -> None:
    answer = "Trio is a structured-concurrency library for Python."
    async with open_fake_anthropic([text_reply(answer, chunk_size=8)]) as fake:
        deltas: list[str] = []
        async with model_for(fake) as model:
            turn = await model.complete(make_request(), deltas.append)
    assert turn.text == answer
    assert len(deltas) >= 5 and "".join(deltas) == answer
    assert turn.tool_calls == () and turn.structured is None
    assert turn.stop_reason == "end_turn" and turn.model == "claude-sonnet-4-6"
    body = fake.requests[0].body
    assert body["system"] == "You are a careful writer."
    assert body["stream"] is True and body["max_tokens"] == 256
    assert "tools" not in body and "tool_choice" not in body and "temperature" not in body
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_usage_and_cost_are_computed_from_the_price_table() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 3000,
    }
    async with serving([text_reply("ok", usage=usage)]) as (_fake, model):
        turn = await model.complete(make_request())
    assert turn.usage.input_tokens == 1000 and turn.usage.output_tokens == 500
    assert turn.usage.cache_creation_input_tokens == 200
    assert turn.usage.cache_read_input_tokens == 3000
    assert turn.usage.model_calls == 1
    # sonnet-4: $3 in, $15 out, $3.75 cache write, $0.30 cache read per million
    expected = (1000 * 3 + 500 * 15 + 200 * 3.75 + 3000 * 0.3) / 1e6
    assert turn.usage.cost_usd == pytest.approx(expected)


async def test_temperature_is_sent_only_when_set() -> None:
    async with serving([text_reply("a"), text_reply("b")]) as (fake, model):
        await model.complete(make_request(temperature=0.2))
        await model.complete(make_request())
    assert fake.requests[0].body["temperature"] == 0.2
    assert "temperature" not in fake.requests[1].body


async def test_tool_use_maps_to_tool_calls_and_tool_results_are_sent() -> None:
    reply = tool_reply("read_file", {"path": "notes.md"}, text="Let me look.", tool_id="toolu_1")
    async with serving([reply, text_reply("Done.")]) as (fake, model):
        first = await model.complete(make_request(tools=[READ_TOOL]))
        assert first.text == "Let me look." and first.stop_reason == "tool_use"
        assert len(first.tool_calls) == 1
        call = first.tool_calls[0]
        assert (call.id, call.name, dict(call.input)) == (
            "toolu_1",
            "read_file",
            {"path": "notes.md"},
        )
        history = [
            *make_request().messages,
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "read_file",
                        "input": {"path": "notes.md"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "# notes"}
                ],
            },
        ]
        second = await model.complete(make_request(turn=2, tools=[READ_TOOL], messages=history))
    assert second.text == "Done."
    sent = fake.requests[0].body
    assert [t["name"] for t in sent["tools"]] == ["read_file"]
    assert "tool_choice" not in sent  # plain output with tools: the API's auto
    assert fake.requests[1].body["messages"][2]["content"][0]["tool_use_id"] == "toolu_1"


async def test_forced_verdict_tool_when_the_agent_has_no_other_tools() -> None:
    verdict = {"passed": False, "issues": [{"message": "too vague"}], "summary": "rewrite"}
    async with serving([tool_reply("submit_verdict", verdict)]) as (fake, model):
        turn = await model.complete(make_request(output="verdict"))
    sent = fake.requests[0].body
    assert sent["tool_choice"] == {"type": "tool", "name": "submit_verdict"}
    (tool,) = sent["tools"]
    assert tool["name"] == "submit_verdict"
    assert set(tool["input_schema"]["properties"]) == {"passed", "issues", "summary"}
    assert "$ref" not in str(tool["input_schema"]) and "$defs" not in str(tool["input_schema"])
    assert turn.tool_calls == ()  # the structured tool is not a tool call
    assert turn.structured == verdict
    assert QAVerdict.model_validate(turn.structured).issues[0].message == "too vague"


async def test_verdict_with_other_tools_uses_tool_choice_any() -> None:
    verdict = {"passed": True}
    reply = Reply(
        content=(
            {"type": "tool_use", "id": "toolu_a", "name": "read_file", "input": {"path": "x"}},
            {"type": "tool_use", "id": "toolu_b", "name": "submit_verdict", "input": verdict},
        ),
        stop_reason="tool_use",
    )
    async with serving([reply]) as (fake, model):
        turn = await model.complete(make_request(output="verdict", tools=[READ_TOOL]))
    sent = fake.requests[0].body
    assert sent["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in sent["tools"]] == ["read_file", "submit_verdict"]
    assert [c.name for c in turn.tool_calls] == ["read_file"]
    assert turn.structured == verdict


async def test_work_items_tool_for_fan_out_agents() -> None:
    items = {"items": ["alpha", {"topic": "beta"}]}
    async with serving([tool_reply("submit_work_items", items)]) as (fake, model):
        turn = await model.complete(make_request(output="items"))
    assert fake.requests[0].body["tool_choice"] == {"type": "tool", "name": "submit_work_items"}
    assert turn.structured == items


async def test_malformed_verdict_is_returned_raw_for_the_runner_to_validate() -> None:
    bad = {"passed": "maybe", "issues": "none", "extra": 1}
    async with serving([tool_reply("submit_verdict", bad)]) as (_fake, model):
        turn = await model.complete(make_request(output="verdict"))
    assert turn.structured == bad
    with pytest.raises(ValueError):
        QAVerdict.model_validate(turn.structured)


async def test_429_retry_after_is_honoured() -> None:
    script: list[Scripted] = [
        ErrorReply(429, "rate_limit_error", "Rate limited", {"retry-after-ms": "150"}),
        text_reply("after the wait"),
    ]
    retries = Retries()
    async with serving(script, retries) as (fake, model):
        start = trio.current_time()
        turn = await model.complete(make_request())
        elapsed = trio.current_time() - start
    assert turn.text == "after the wait"
    assert len(fake.requests) == 2
    [(error, attempt, delay)] = retries.calls
    assert attempt == 1 and delay == pytest.approx(0.15)
    assert "429" in error and "Rate limited" in error
    assert elapsed >= 0.15  # it waited the server's retry-after (a load only adds to it)


async def test_retry_after_seconds_header_is_capped() -> None:
    script: list[Scripted] = [
        ErrorReply(429, "rate_limit_error", "slow", {"retry-after": "30"}),
        text_reply("ok"),
    ]
    retries = Retries()
    async with serving(script, retries, max_retry_after_s=0.05) as (_fake, model):
        assert (await model.complete(make_request())).text == "ok"
    assert retries.calls[0][2] == pytest.approx(0.05)


async def test_529_overloaded_is_retried() -> None:
    script: list[Scripted] = [
        ErrorReply(529, "overloaded_error", "Overloaded", {"retry-after-ms": "20"}),
        ErrorReply(529, "overloaded_error", "Overloaded", {"retry-after-ms": "20"}),
        text_reply("finally"),
    ]
    retries = Retries()
    async with serving(script, retries) as (fake, model):
        turn = await model.complete(make_request())
    assert turn.text == "finally" and len(fake.requests) == 3
    assert [a for _, a, _ in retries.calls] == [1, 2]
    assert all("overloaded_error" in e for e, _, _ in retries.calls)


async def test_500_then_success_uses_exponential_backoff() -> None:
    script: list[Scripted] = [
        ErrorReply(500, "api_error", "Internal error"),
        text_reply("recovered"),
    ]
    retries = Retries()
    async with serving(script, retries, backoff_base_s=0.04) as (_fake, model):
        turn = await model.complete(make_request())
    assert turn.text == "recovered"
    [(_, _, delay)] = retries.calls
    assert 0.03 <= delay <= 0.04  # base * jitter in [0.75, 1]


async def test_mid_stream_error_event_is_retried_by_the_model() -> None:
    script: list[Scripted] = [
        StreamErrorReply("overloaded_error", "Overloaded"),
        text_reply("clean answer"),
    ]
    retries = Retries()
    async with open_fake_anthropic(script) as fake:
        deltas: list[str] = []
        async with model_for(fake, retries) as model:
            turn = await model.complete(make_request(), deltas.append)
    assert turn.text == "clean answer"
    assert len(fake.requests) == 2
    [(error, attempt, _)] = retries.calls
    assert attempt == 1 and "stream interrupted by overloaded_error" in error
    # the partial text streamed before the error is followed by the retry's text
    assert "".join(deltas).endswith("clean answer") and "".join(deltas) != "clean answer"


async def test_mid_stream_error_gives_up_after_max_retries() -> None:
    script: list[Scripted] = [StreamErrorReply(), StreamErrorReply(), StreamErrorReply()]
    retries = Retries()
    async with serving(script, retries, max_retries=2) as (fake, model):
        with pytest.raises(ModelError, match="overloaded_error"):
            await model.complete(make_request())
    assert len(fake.requests) == 3 and len(retries.calls) == 2


async def test_a_hang_past_the_timeout_is_a_model_error_after_retries() -> None:
    retries = Retries()
    async with serving([HangReply(30), HangReply(30)], retries, max_retries=1) as (fake, model):
        start = trio.current_time()
        with pytest.raises(ModelError, match=r"timed out after 0\.3s") as info:
            await model.complete(make_request(timeout_s=0.3))
        elapsed = trio.current_time() - start
    assert not isinstance(info.value, ModelRequestRejected)
    assert len(fake.requests) == 2 and len(retries.calls) == 1
    assert elapsed >= 0.6  # each attempt ran to its 0.3 s deadline (no upper bound: load)


async def test_a_trickling_stream_hits_the_total_deadline_and_is_retried() -> None:
    # Each event arrives well within the SDK's per-read timeout, but the whole
    # answer would take ~2 s: the per-call deadline (0.25 s) must end each attempt.
    slow = Reply(content=({"type": "text", "text": "x" * 40},), chunk_size=1, delay_s=0.04)
    retries = Retries()
    texts: list[str] = []
    async with serving([slow, slow], retries, max_retries=1) as (fake, model):
        start = trio.current_time()
        with pytest.raises(ModelError, match=r"timed out after 0\.25s") as info:
            await model.complete(make_request(timeout_s=0.25), texts.append)
        elapsed = trio.current_time() - start
    assert not isinstance(info.value, ModelRequestRejected)
    assert texts, "the stream had started trickling before the deadline"
    assert len(fake.requests) == 2 and len(retries.calls) == 1
    assert "timed out" in retries.calls[0][0]
    assert elapsed >= 0.5  # each attempt ran to its 0.25 s deadline (no upper bound: load)


async def test_a_trickling_stream_within_the_deadline_completes() -> None:
    quick = Reply(content=({"type": "text", "text": "abcd"},), chunk_size=1, delay_s=0.01)
    async with serving([quick]) as (_, model):
        turn = await model.complete(make_request(timeout_s=5))
    assert turn.text == "abcd"


async def test_401_is_rejected_immediately_with_the_api_message_and_no_key() -> None:
    # The fake echoes the wrong credential in its message: the model must scrub it.
    retries = Retries()
    script = [text_reply("never")]
    async with serving(script, retries, expected_key="sk-ant-other") as (fake, model):
        with pytest.raises(ModelRequestRejected) as info:
            await model.complete(make_request())
    message = str(info.value)
    assert "401" in message and "invalid x-api-key" in message
    assert "ANTHROPIC_API_KEY" in message  # says how to fix it
    assert KEY not in message and KEY not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert len(fake.requests) == 1 and retries.calls == []
    assert KEY not in repr(model)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (422, "invalid_request_error"),
    ],
)
async def test_client_errors_are_rejected_without_retry(status: int, kind: str) -> None:
    script: list[Scripted] = [ErrorReply(status, kind, f"bad thing {status}"), text_reply("never")]
    async with serving(script) as (fake, model):
        with pytest.raises(ModelRequestRejected, match=f"bad thing {status}"):
            await model.complete(make_request())
    assert len(fake.requests) == 1


async def test_the_key_is_absent_from_every_error_and_retry_message() -> None:
    script: list[Scripted] = [
        ErrorReply(429, "rate_limit_error", f"limit for key {KEY}", {"retry-after-ms": "1"}),
        StreamErrorReply("overloaded_error", f"overloaded ({KEY})"),
        ErrorReply(500, "api_error", f"oops {KEY}"),
    ]
    retries = Retries()
    async with serving(script, retries, max_retries=2) as (_fake, model):
        with pytest.raises(ModelError) as info:
            await model.complete(make_request())
    assert info.value.__context__ is None and info.value.__cause__ is None
    texts = [str(info.value), repr(info.value), *(e for e, _, _ in retries.calls)]
    assert len(texts) == 4
    assert all(KEY not in text for text in texts)
    assert all("[redacted]" in text for text in texts)


async def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ModelError, match="ANTHROPIC_API_KEY"):
        AnthropicModel()


async def test_env_vars_configure_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_fake_anthropic([text_reply("from env")]) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        async with AnthropicModel() as model:
            assert (await model.complete(make_request())).text == "from env"
    assert fake.requests[0].credential == KEY


async def test_custom_price_table_is_used() -> None:
    prices = PriceTable.default().with_overrides({"claude-sonnet-4-6": {"input": 10, "output": 20}})
    usage = {"input_tokens": 100_000, "output_tokens": 50_000}
    async with serving([text_reply("x", usage=usage)], prices=prices) as (_fake, model):
        turn = await model.complete(make_request())
    assert turn.usage.cost_usd == pytest.approx(1.0 + 1.0)


async def test_fake_server_answers_non_streaming_requests_too() -> None:
    from anthropic import AsyncAnthropic

    async with (
        open_fake_anthropic([tool_reply("read_file", {"path": "a"}, text="hi")]) as fake,
        AsyncAnthropic(api_key=KEY, base_url=fake.base_url, max_retries=0) as client,
    ):
        message = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.stop_reason == "tool_use" and message.usage.input_tokens == 12
    assert "stream" not in fake.requests[0].body
