"""Model faults a broken network, proxy or server produces, against the real SDK over real HTTP.

A stream that stops early (no `message_stop`, no stop reason, inside a tool's
JSON input) is a retryable transport fault, never an answer; a 200 that is not
an event stream is a clear, retryable error naming what came back; a response
past the byte limit is cut off; the numeric knobs that pace retries are bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentflow.compiler.load import load_pipeline
from agentflow.runtime.engine.governor import RetryGovernor
from agentflow.runtime.errors import ModelError, ModelRequestRejected
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.models.anthropic import DEFAULT_MAX_RESPONSE_BYTES
from agentflow.runtime.spec import MAX_BACKOFF_MS, DefaultsSpec, RetrySpec
from tests.fake_anthropic.server import (
    CutStreamReply,
    FloodReply,
    RawReply,
    text_reply,
    tool_reply,
)
from tests.runtime.test_anthropic_e2e import PASS, HelloScript, run_hello
from tests.runtime.test_anthropic_model import READ_TOOL, Retries, make_request, serving

WHOLE = "The whole answer, with its end."
TOOL_INPUT = {"path": "notes/a-rather-long-file-name-for-the-cut.md"}


@pytest.mark.parametrize(
    "cut",
    [
        CutStreamReply(text_reply("Half an ans", chunk_size=4), drop_from="message_stop"),
        CutStreamReply(text_reply("Half an ans", chunk_size=4), drop_from="message_delta"),
        CutStreamReply(text_reply("Half an ans", chunk_size=4), drop_from="content_block_stop"),
        CutStreamReply(text_reply("Half an ans", chunk_size=4), after_deltas=2),
        CutStreamReply(text_reply("Half an ans"), drop_from="message_start"),
    ],
    ids=["no_message_stop", "no_stop_reason", "open_block", "mid_text", "empty_stream"],
)
async def test_a_stream_that_stops_early_is_retried_not_taken_as_the_answer(
    cut: CutStreamReply,
) -> None:
    retries = Retries()
    async with serving([cut, text_reply(WHOLE)], retries) as (fake, model):
        deltas: list[str] = []
        turn = await model.complete(make_request(), deltas.append)
    assert turn.text == WHOLE and turn.stop_reason == "end_turn"
    assert len(fake.requests) == 2
    [(error, attempt, _)] = retries.calls
    assert attempt == 1
    assert "the partial answer was discarded" in error, error
    assert "".join(deltas).endswith(WHOLE)


async def test_a_stream_that_always_stops_early_is_a_model_error_naming_the_cut() -> None:
    cut = CutStreamReply(text_reply("Half"), drop_from="message_stop")
    retries = Retries()
    async with serving([cut, cut], retries, max_retries=1) as (fake, model):
        with pytest.raises(ModelError) as info:
            await model.complete(make_request())
    assert not isinstance(info.value, ModelRequestRejected)
    assert "ended before message_stop" in str(info.value)
    assert len(fake.requests) == 2 and len(retries.calls) == 1


async def test_tool_input_cut_in_the_middle_never_becomes_a_tool_call() -> None:
    full = tool_reply("read_file", TOOL_INPUT, chunk_size=5, tool_id="toolu_whole")
    cut = CutStreamReply(
        tool_reply("read_file", TOOL_INPUT, chunk_size=5, tool_id="toolu_cut"), after_deltas=4
    )
    retries = Retries()
    async with serving([cut, full], retries) as (_fake, model):
        turn = await model.complete(make_request(tools=[READ_TOOL]))
    [call] = turn.tool_calls
    assert call.id == "toolu_whole" and call.input == TOOL_INPUT
    assert len(retries.calls) == 1 and "content block 0" in retries.calls[0][0]


async def test_a_run_never_executes_a_tool_with_cut_off_input(tmp_path: Path) -> None:
    write = {"op": "write", "path": "draft.md", "content": "The complete draft, every word."}
    script = HelloScript(
        writer=[
            CutStreamReply(tool_reply("filesystem", write, chunk_size=8), after_deltas=7),
            tool_reply("filesystem", write),
            text_reply("Drafted in draft.md."),
        ],
        reviewer=[tool_reply("submit_verdict", PASS)],
    )
    result, events, _requests, _lines = await run_hello(script, tmp_path)
    assert result.ok, result.reason
    kinds = [e.kind for e in events]
    first_error = kinds.index(EventKind.MODEL_ERROR)
    assert events[first_error].payload["retrying"] is True
    tool_calls = [e for e in events if e.kind is EventKind.TOOL_CALL]
    assert [e.payload["input"] for e in tool_calls] == [write]
    assert kinds.index(EventKind.TOOL_CALL) > first_error
    assert (tmp_path / "draft.md").read_text() == write["content"]


@pytest.mark.parametrize("output", ["text", "verdict"])
async def test_a_tool_call_cut_by_max_tokens_is_refused_not_run(output: str) -> None:
    # The API closes the stream normally, but a tool_use block cut by max_tokens
    # may hold partial input (a verdict without its blocking issues, half a path).
    name = "read_file" if output == "text" else "submit_verdict"
    cut = tool_reply(name, TOOL_INPUT if output == "text" else PASS, stop_reason="max_tokens")
    retries = Retries()
    async with serving([cut, text_reply(WHOLE)], retries) as (fake, model):
        with pytest.raises(ModelError) as info:
            await model.complete(make_request(tools=[READ_TOOL], output=output, max_tokens=64))
    assert not isinstance(info.value, ModelRequestRejected)
    message = str(info.value)
    assert "max_tokens (64)" in message and "was not run" in message, message
    assert len(fake.requests) == 1 and retries.calls == []  # the same request would stop again


async def test_text_cut_by_max_tokens_is_still_an_answer() -> None:
    async with serving([text_reply("A long answer that st", stop_reason="max_tokens")]) as (
        _fake,
        model,
    ):
        turn = await model.complete(make_request(max_tokens=8))
    assert turn.text == "A long answer that st" and turn.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        (RawReply(b'{"id": "msg_1", "type": "message", "content": []}'), "'application/json'"),
        (
            RawReply(b"<html><body>Captive portal: sign in</body></html>", "text/html"),
            "Captive portal",
        ),
        (RawReply(b"", "text/plain"), "'text/plain'"),
        (RawReply(b"\xff\xfe not text \x00", "application/octet-stream"), "not text"),
    ],
    ids=["json", "html", "empty", "binary"],
)
async def test_a_200_that_is_not_an_event_stream_is_a_clear_retryable_error(
    reply: RawReply, shown: str
) -> None:
    retries = Retries()
    async with serving([reply, text_reply(WHOLE)], retries) as (fake, model):
        turn = await model.complete(make_request())
    assert turn.text == WHOLE and len(fake.requests) == 2
    [(error, _, _)] = retries.calls
    assert "instead of an event stream" in error and shown in error, error


async def test_a_200_that_is_never_an_event_stream_fails_with_its_content_type() -> None:
    page = RawReply(b"<html>Bad gateway</html>", "text/html; charset=utf-8")
    async with serving([page, page], max_retries=1) as (_fake, model):
        with pytest.raises(ModelError) as info:
            await model.complete(make_request())
    message = str(info.value)
    assert message and "AssertionError" not in message
    assert "text/html" in message and "Bad gateway" in message


async def test_an_event_stream_content_type_with_no_events_is_retried() -> None:
    garbage = RawReply(b"hello\n\nthis is not sse\n\n", "text/event-stream")
    retries = Retries()
    async with serving([garbage, text_reply(WHOLE)], retries) as (_fake, model):
        turn = await model.complete(make_request())
    assert turn.text == WHOLE
    assert "no message_start" in retries.calls[0][0]


@pytest.mark.parametrize("one_line", [False, True], ids=["endless_deltas", "endless_line"])
async def test_a_response_past_the_byte_limit_is_cut_off_with_a_clear_error(
    one_line: bool,
) -> None:
    retries = Retries()
    flood = FloodReply(one_line=one_line)
    async with serving([flood, flood], retries, max_retries=1, max_response_bytes=200_000) as (
        fake,
        model,
    ):
        texts: list[str] = []
        with pytest.raises(ModelError, match="200000-byte limit") as info:
            await model.complete(make_request(timeout_s=30), texts.append)
    assert "max_response_bytes" in str(info.value)
    assert len(fake.requests) == 1 and retries.calls == []  # not retried: it would recur
    assert sum(map(len, texts)) <= 200_000


def test_the_default_byte_limit_fits_the_largest_real_answer() -> None:
    # 128,000 tokens, each in its own ~130-byte content_block_delta event.
    assert 128_000 * 130 < DEFAULT_MAX_RESPONSE_BYTES <= 64 * 1024 * 1024


# --- bounded knobs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetrySpec(backoff_ms=10**29),
        lambda: RetrySpec(backoff_ms=MAX_BACKOFF_MS + 1),
        lambda: RetrySpec(max_attempts=101),
        lambda: DefaultsSpec(max_tokens=128_001),
        lambda: DefaultsSpec(timeout_s=float("inf")),
        lambda: DefaultsSpec(timeout_s=float("nan")),
        lambda: DefaultsSpec(max_concurrency=10**9),
        lambda: DefaultsSpec(max_tool_rounds=10**9),
        lambda: DefaultsSpec(max_cost_usd=float("inf")),
    ],
)
def test_numeric_knobs_past_their_documented_bounds_are_refused(
    make: Callable[[], object],
) -> None:
    with pytest.raises(ValidationError):
        make()


def test_no_single_qa_wait_is_longer_than_the_backoff_cap() -> None:
    spec = load_pipeline(Path(__file__).resolve().parents[2] / "pipelines/hello_world.yaml").spec
    slowest = RetrySpec(max_attempts=100, backoff_ms=MAX_BACKOFF_MS)
    spec = spec.model_copy(
        update={
            "defaults": spec.defaults.model_copy(update={"retry": slowest}),
            "agents": tuple(a.model_copy(update={"retry": None}) for a in spec.agents),
        }
    )
    governor = RetryGovernor(spec, seed=1)
    for agent in spec.agents:
        delays = [governor.next_delay(agent.id, attempt) for attempt in range(1, 100)]
        assert max(delays) <= MAX_BACKOFF_MS / 1000
        assert delays[0] >= MAX_BACKOFF_MS / 2000  # the jitter still applies below the cap
