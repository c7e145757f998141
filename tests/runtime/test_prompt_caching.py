"""Prompt caching: requests marked with `cache_control`, cache tokens in usage, events and cost.

Real SDK, real HTTP, against the fake Messages API, which accounts cache tokens
as the real one documents (tests/fake_anthropic/server.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.errors import ModelRequestRejected
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.models.anthropic import AnthropicModel, build_message_params
from agentflow.runtime.models.base import STRUCTURED_TOOL_NAMES, ModelRequest, ModelTurn, ToolSchema
from agentflow.runtime.models.pricing import PriceTable
from agentflow.runtime.sinks.memory import MemorySink
from tests.fake_anthropic.server import (
    ErrorReply,
    FakeAnthropic,
    RecordedRequest,
    Scripted,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)

from .test_anthropic_e2e import HelloScript
from .test_engine_fakes import compile_dict, fanout_spec

KEY = "sk-ant-api03-CACHE-FAKE-KEY-never-in-the-log-5d21"
EPHEMERAL = {"type": "ephemeral"}
# About 3,000 tokens: above every model's minimum cacheable length.
LONG_SYSTEM = "You are a meticulous analyst. Follow the house style guide below.\n" + "\n".join(
    f"Rule {n}: cite the source of every figure, and say how it was measured." for n in range(170)
)
SHORT_SYSTEM = "You are a careful writer."
USER = [{"role": "user", "content": [{"type": "text", "text": "Explain trio."}]}]


def make_request(**overrides: Any) -> ModelRequest:
    fields: dict[str, Any] = {
        "agent": "writer_agent",
        "item": "main",
        "attempt": 1,
        "turn": 1,
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": LONG_SYSTEM,
        "messages": USER,
    }
    fields.update(overrides)
    return ModelRequest(**fields)


def cache_controls(body: Any) -> list[Any]:
    """Every `cache_control` value anywhere in a request body."""
    found: list[Any] = []
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "cache_control":
                found.append(value)
            else:
                found.extend(cache_controls(value))
    elif isinstance(body, list):
        for value in body:
            found.extend(cache_controls(value))
    return found


async def complete_all(
    fake: FakeAnthropic, requests: Sequence[ModelRequest], **model_kw: Any
) -> list[ModelTurn]:
    """Send `requests` concurrently through one AnthropicModel; the turns in request order."""
    turns: list[ModelTurn | None] = [None] * len(requests)
    async with AnthropicModel(api_key=KEY, base_url=fake.base_url, **model_kw) as model:

        async def one(index: int) -> None:
            turns[index] = await model.complete(requests[index])

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for index in range(len(requests)):
                    nursery.start_soon(one, index)
    assert all(turn is not None for turn in turns)
    return [turn for turn in turns if turn is not None]


# -- what is sent --------------------------------------------------------------------------


def test_a_long_system_prompt_is_sent_as_a_block_marked_for_caching() -> None:
    params = build_message_params(make_request())
    assert params["system"] == [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}]
    assert cache_controls(params) == [EPHEMERAL]  # one breakpoint: the system covers the tools


def test_a_short_prompt_is_sent_unmarked_as_it_cannot_be_cached() -> None:
    params = build_message_params(make_request(system=SHORT_SYSTEM))
    assert params["system"] == SHORT_SYSTEM
    assert cache_controls(params) == []


def test_without_a_system_prompt_the_last_tool_is_marked() -> None:
    tools = tuple(ToolSchema(f"tool_{n}", LONG_SYSTEM[:1500], {"type": "object"}) for n in range(4))
    params = build_message_params(make_request(system="", tools=tools, output="verdict"))
    assert [t["name"] for t in params["tools"]][-1] == STRUCTURED_TOOL_NAMES["verdict"]
    assert params["tools"][-1]["cache_control"] == EPHEMERAL
    assert cache_controls(params) == [EPHEMERAL]


def test_a_tool_loop_marks_the_end_of_the_conversation_without_touching_the_request() -> None:
    result_block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "calc", "input": {}}],
        },
        {"role": "user", "content": [result_block]},
    ]
    request = make_request(messages=messages, turn=2)
    params = build_message_params(request)
    assert params["messages"][-1]["content"] == [{**result_block, "cache_control": EPHEMERAL}]
    assert cache_controls(params) == [EPHEMERAL, EPHEMERAL]  # system, conversation end
    assert cache_controls(list(request.messages)) == []  # the runner's conversation is unchanged


def test_prompt_caching_off_sends_the_request_as_before() -> None:
    params = build_message_params(make_request(), prompt_caching=False)
    assert params["system"] == LONG_SYSTEM
    assert cache_controls(params) == []


# -- what is accounted ---------------------------------------------------------------------


async def test_the_second_call_reads_what_the_first_wrote_at_the_cache_prices() -> None:
    async with (
        open_fake_anthropic([text_reply("one"), text_reply("two")]) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
    ):
        first = await model.complete(make_request())
        second = await model.complete(make_request(item="item-2"))
    assert fake.requests[0].body["system"][0]["cache_control"] == EPHEMERAL
    written = first.usage.cache_creation_input_tokens
    assert written > 1024
    assert (first.usage.cache_read_input_tokens, first.usage.input_tokens) == (0, 12)
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == written
    assert second.usage.input_tokens == 12  # the uncached rest only
    # claude-sonnet-4-6: $3 input, $15 output; writes 1.25x input, reads 0.1x input
    assert first.usage.cost_usd == pytest.approx((12 * 3 + 7 * 15 + written * 3.75) / 1e6)
    assert second.usage.cost_usd == pytest.approx((12 * 3 + 7 * 15 + written * 0.3) / 1e6)
    assert second.usage.cost_usd < first.usage.cost_usd / 5


async def test_concurrent_calls_sharing_a_prefix_write_it_once_and_read_it_after() -> None:
    requests = [make_request(item=f"item-{n}") for n in range(8)]
    # Each response begins after a pause (time to first token): the cache entry is
    # readable only then, so calls sent at once would all write it.
    replies = [text_reply(f"answer {n}", delay_s=0.05) for n in range(8)]
    async with open_fake_anthropic(replies) as fake:
        turns = await complete_all(fake, requests)
    writes = [
        t.usage.cache_creation_input_tokens for t in turns if t.usage.cache_creation_input_tokens
    ]
    reads = [t.usage.cache_read_input_tokens for t in turns if t.usage.cache_read_input_tokens]
    assert len(writes) == 1 and writes[0] > 1024
    assert reads == [writes[0]] * 7


async def test_when_the_first_call_fails_another_writes_the_cache() -> None:
    served: list[str] = []

    def script(request: RecordedRequest) -> Scripted:
        served.append(request.body["messages"][0]["content"][0]["text"])
        if len(served) == 1:
            return ErrorReply(400, "invalid_request_error", "bad first request")
        return text_reply("ok", delay_s=0.05)

    requests = [make_request(item=f"item-{n}") for n in range(4)]
    async with (
        open_fake_anthropic(script) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
    ):
        with pytest.raises(ModelRequestRejected):
            await model.complete(requests[0])
        turns = await complete_all(fake, requests[1:])
    assert sum(1 for t in turns if t.usage.cache_creation_input_tokens) == 1
    assert sum(1 for t in turns if t.usage.cache_read_input_tokens) == 2


async def test_calls_waiting_on_a_first_call_that_backs_off_go_ahead_without_it() -> None:
    first = True

    def script(request: RecordedRequest) -> Scripted:
        nonlocal first
        if first:
            first = False
            return ErrorReply(529, "overloaded_error", "Overloaded", {"retry-after": "600"})
        return text_reply("ok", delay_s=0.05)

    requests = [make_request(item=f"item-{n}") for n in range(4)]
    done: list[ModelTurn] = []
    async with (
        open_fake_anthropic(script) as fake,
        AnthropicModel(
            api_key=KEY, base_url=fake.base_url, max_retries=1, max_retry_after_s=600
        ) as model,
    ):

        async def waiter(request: ModelRequest) -> None:
            done.append(await model.complete(request))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(model.complete, requests[0])  # leads, then backs off 600 s
                await trio.sleep(0)
                for request in requests[1:]:
                    nursery.start_soon(waiter, request)
                while len(done) < 3:
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
    assert sum(1 for t in done if t.usage.cache_creation_input_tokens) == 1
    assert sum(1 for t in done if t.usage.cache_read_input_tokens) == 2


async def test_a_marked_prefix_below_the_minimum_is_not_cached() -> None:
    async with (
        open_fake_anthropic(
            [text_reply("one"), text_reply("two")], cache_min_tokens=100_000
        ) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
    ):
        turns = [await model.complete(make_request()) for _ in range(2)]
    assert cache_controls(fake.requests[0].body) == [EPHEMERAL]
    for turn in turns:
        assert turn.usage.cache_creation_input_tokens == turn.usage.cache_read_input_tokens == 0


async def test_the_fake_can_count_input_tokens_as_the_uncached_rest_of_the_request() -> None:
    async with (
        open_fake_anthropic([text_reply("x")] * 3, count_input_tokens=True) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
    ):
        first = await model.complete(make_request())
        second = await model.complete(make_request())
    async with (
        open_fake_anthropic([text_reply("x")], count_input_tokens=True) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url, prompt_caching=False) as model,
    ):
        uncached = await model.complete(make_request())
    whole = uncached.usage.input_tokens
    assert whole > first.usage.cache_creation_input_tokens > 1024
    assert first.usage.input_tokens + first.usage.cache_creation_input_tokens == whole
    assert second.usage.input_tokens + second.usage.cache_read_input_tokens == whole
    assert second.usage.input_tokens == first.usage.input_tokens < 100


async def test_with_caching_off_nothing_is_cached() -> None:
    requests = [make_request(item=f"item-{n}") for n in range(3)]
    async with open_fake_anthropic([text_reply("x")] * 3) as fake:
        turns = await complete_all(fake, requests, prompt_caching=False)
    assert all(cache_controls(r.body) == [] for r in fake.requests)
    assert all(t.usage.cache_creation_input_tokens == 0 for t in turns)
    assert all(t.usage.cache_read_input_tokens == 0 for t in turns)


# -- a whole run ---------------------------------------------------------------------------

ITEMS = 6


def _by_agent(request: RecordedRequest) -> Scripted:
    system = request.body.get("system")
    text = system[0]["text"] if isinstance(system, list) else str(system)
    if text.startswith("Plan"):
        items = [f"question {n}" for n in range(ITEMS)]
        return tool_reply(STRUCTURED_TOOL_NAMES["items"], {"items": items})
    if text.startswith("Check"):
        return tool_reply(STRUCTURED_TOOL_NAMES["verdict"], {"passed": True, "issues": []})
    return text_reply("an answer", delay_s=0.05)  # a first token that takes a while


async def test_a_fan_out_writes_the_workers_prompt_once_and_reads_it_for_every_other_item(
    tmp_path: Path,
) -> None:
    pipeline = compile_dict(
        fanout_spec(),
        {
            "orchestrator_agent": "Plan the work: {{ input }}",
            "worker_agent": LONG_SYSTEM,
            "qa_agent": "Check the answer.",
        },
    )
    sink = MemorySink()
    async with (
        open_fake_anthropic(_by_agent) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
    ):
        with trio.fail_after(30):
            result = await run_pipeline(
                pipeline,
                "research trio",
                handlers=None,
                model=model,
                sinks=[sink],
                options=RunOptions(backoff_scale=0.0, seed=1),
            )
    assert result.ok, result.reason
    responses = [e for e in sink.events if e.kind is EventKind.MODEL_RESPONSE]
    worker = [e.payload["usage"] for e in responses if e.agent == "worker_agent"]
    assert len(worker) == ITEMS
    writes = [u["cache_creation_input_tokens"] for u in worker if u["cache_creation_input_tokens"]]
    reads = [u["cache_read_input_tokens"] for u in worker if u["cache_read_input_tokens"]]
    assert len(writes) == 1 and reads == writes * (ITEMS - 1)
    others = [e.payload["usage"] for e in responses if e.agent != "worker_agent"]
    assert all(
        u["cache_creation_input_tokens"] == u["cache_read_input_tokens"] == 0 for u in others
    )
    # the run's totals and cost count the cache tokens at the cache prices
    assert result.usage.cache_creation_input_tokens == writes[0]
    assert result.usage.cache_read_input_tokens == writes[0] * (ITEMS - 1)
    price = PriceTable.default().price_for(responses[0].payload["model"])
    assert price is not None
    assert (price.cache_write, price.cache_read) == pytest.approx(
        (price.input * 1.25, price.input * 0.1)
    )
    expected = sum(
        u["input_tokens"] * price.input
        + u["output_tokens"] * price.output
        + u["cache_creation_input_tokens"] * price.cache_write
        + u["cache_read_input_tokens"] * price.cache_read
        for u in (e.payload["usage"] for e in responses)
    )
    assert result.usage.cost_usd == pytest.approx(expected / 1e6)
    assert all(KEY not in line for line in sink.lines)
    assert all(r.credential == KEY for r in fake.requests)


# -- the CLI switch ------------------------------------------------------------------------


@pytest.mark.parametrize("switch", [[], ["--no-prompt-cache"]])
async def test_agentflow_run_caches_by_default_and_not_with_no_prompt_cache(
    tmp_path: Path, switch: list[str]
) -> None:
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "prompts").mkdir()
    for agent in ("writer_agent", "reviewer_agent"):
        text = (root / "pipelines" / "prompts" / f"{agent}.md").read_text()
        (tmp_path / "prompts" / f"{agent}.md").write_text(f"{text}\n\n{LONG_SYSTEM}\n")
    pipeline = tmp_path / "hello.yaml"
    pipeline.write_text((root / "pipelines" / "hello_world.yaml").read_text())
    script = HelloScript(
        writer=[text_reply("Trio runs tasks in nurseries.")],
        reviewer=[tool_reply("submit_verdict", {"passed": True, "issues": []})],
    )
    async with open_fake_anthropic(script) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.base_url}
        argv = [str(Path(sys.executable).parent / "agentflow"), "run", str(pipeline), "trio"]
        argv += ["--jsonl", str(tmp_path / "run.jsonl"), "--no-ui", "--quiet"]
        argv += ["--model", "anthropic", *switch]
        with trio.fail_after(120):  # a safety net: a hang fails instead of blocking the suite
            done = await trio.run_process(
                argv, cwd=tmp_path, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert len(fake.requests) == 2
    marks = [cache_controls(r.body) for r in fake.requests]
    assert marks == ([[], []] if switch else [[EPHEMERAL], [EPHEMERAL]])
