"""Claude fan-outs at the rate limit: real SDK, real HTTP, a fake API that enforces limits.

The fake (tests/fake_anthropic/limits.py) enforces requests and input/output
tokens per period with token buckets, sends the `anthropic-ratelimit-*`
headers and answers 429 + `retry-after` when a request does not fit. Its
limits count per 1 s instead of per minute, and the limiter is told so
(`period_s=1`). Assertions are counts (429s, requests, violations) and
order, never durations; `fail_after` is only a safety net.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import trio

from agentflow.runtime.engine.runner import RunOptions, RunResult, run_pipeline
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.rate_limit import RateLimiter
from agentflow.runtime.sinks.memory import MemorySink
from tests.fake_anthropic.fanout import fanout_pipeline, fanout_script
from tests.fake_anthropic.limits import RateLimits
from tests.fake_anthropic.server import (
    ErrorReply,
    FakeAnthropic,
    RecordedRequest,
    Scripted,
    open_fake_anthropic,
)

KEY = "sk-ant-api03-RATE-LIMIT-FAKE-KEY-0b7e"
SAFETY_S = 60.0  # a hang fails the test instead of blocking the suite


async def run_fanout(
    fake: FakeAnthropic,
    limiter: RateLimiter,
    *,
    concurrency: int = 64,
    max_tokens: int = 1024,
    max_retries: int = 3,
) -> tuple[RunResult, list[Any]]:
    sink = MemorySink()
    model = AnthropicModel(
        api_key=KEY, base_url=fake.base_url, rate_limiter=limiter, max_retries=max_retries
    )
    async with model:
        with trio.fail_after(SAFETY_S):
            result = await run_pipeline(
                fanout_pipeline(concurrency, max_tokens=max_tokens),
                "rate limits",
                handlers=None,
                model=model,
                sinks=[sink],
                options=RunOptions(backoff_scale=0),
            )
    return result, sink.events


def of_kind(events: list[Any], kind: EventKind) -> list[Any]:
    return [e for e in events if e.kind == kind]


def most_over_the_rate(limits: RateLimits, limit: float, *, tokens: bool = False) -> float:
    """How far the arrivals ever ran ahead of `limit` a period plus one full bucket.

    Measured from the first arrival: arrival k may have used at most the bucket's
    `limit` plus what it refilled since. Transport jitter moves single arrivals a
    little; pacing that ignores the limit runs ahead by many requests.
    """
    arrivals = [(at, tokens_in) for at, outcome, tokens_in in limits.log if outcome == "admitted"]
    first = arrivals[0][0]
    used = 0.0
    worst = -math.inf
    for at, tokens_in in arrivals:
        used += tokens_in if tokens else 1
        worst = max(worst, used - (limit + limit / limits.period_s * (at - first)))
    return worst


async def test_a_200_item_fan_out_at_the_limit_gets_only_a_handful_of_429s() -> None:
    limits = RateLimits(requests=50, input_tokens=4_000, output_tokens=30_000, period_s=1.0)
    script = fanout_script(200, delay_s=0.002)
    async with open_fake_anthropic(script, count_input_tokens=True, limits=limits) as fake:
        limiter = RateLimiter(period_s=1.0)
        result, events = await run_fanout(fake, limiter)
    assert result.ok, result.reason
    assert limits.admitted == 201  # the plan and 200 answers, each served once
    assert limits.rejected <= 5, f"{limits.rejected} 429s"  # a handful
    assert len(fake.requests) == limits.admitted + limits.rejected
    retries = [e for e in of_kind(events, EventKind.MODEL_ERROR) if e.payload["retrying"]]
    assert len(retries) == limits.rejected  # each 429 is retried, visibly
    waits = of_kind(events, EventKind.RATE_LIMITED)
    assert waits and len(waits) == limiter.waits  # calls that waited did so visibly
    assert {e.payload["limit"] for e in waits} <= {
        "requests",
        "input_tokens",
        "output_tokens",
        "retry-after",
        "queue",
    }
    first = waits[0]
    assert first.agent == "worker_agent" and first.payload["turn"] == 1
    assert first.payload["wait_s"] >= 0
    assert limiter.refusals == limits.rejected


async def test_the_api_headers_alone_pace_a_fan_out_the_limiter_knew_nothing_of() -> None:
    # Only output tokens bind (max_tokens 1,024 charged up front, 7 used): a
    # limiter that paced requests alone would burst 64 calls into a 20-call bucket.
    limits = RateLimits(output_tokens=20_480, period_s=1.0)
    async with open_fake_anthropic(
        fanout_script(120, delay_s=0.002), count_input_tokens=True, limits=limits
    ) as fake:
        result, _ = await run_fanout(fake, RateLimiter(period_s=1.0))
    assert result.ok, result.reason
    assert limits.admitted == 121
    assert limits.rejected <= 5, f"{limits.rejected} 429s"  # a handful


async def test_explicit_requests_per_minute_are_respected_without_headers() -> None:
    # The fake does not enforce (or tell) its limit: it only counts requests over it.
    limits = RateLimits(requests=20, period_s=1.0, send_headers=False, enforce=False)
    async with open_fake_anthropic(
        fanout_script(60), count_input_tokens=True, limits=limits
    ) as fake:
        limiter = RateLimiter(max_requests_per_minute=20, period_s=1.0)
        result, _ = await run_fanout(fake, limiter)
    assert result.ok, result.reason
    assert limits.admitted == 61
    assert most_over_the_rate(limits, 20) <= 1.0, limits.violations


async def test_explicit_tokens_per_minute_are_respected_without_headers() -> None:
    # 600 input + output tokens a period on the client (a request: ~60); the fake
    # counts input tokens only, so the input alone never runs ahead of 600.
    limits = RateLimits(input_tokens=600, period_s=1.0, send_headers=False, enforce=False)
    async with open_fake_anthropic(
        fanout_script(30), count_input_tokens=True, limits=limits
    ) as fake:
        limiter = RateLimiter(max_tokens_per_minute=600, period_s=1.0)
        result, _ = await run_fanout(fake, limiter, max_tokens=16)
    assert result.ok, result.reason
    assert limits.admitted == 31
    assert most_over_the_rate(limits, 600, tokens=True) <= 0, limits.violations


def failing_every(nth: int, items: int) -> Callable[[RecordedRequest], Scripted]:
    """The fan-out's answers, but question n with n % nth == 0 is refused (400, not
    retried) and with n % nth == 1 always breaks (500, retried until the tries run out)."""
    answer = fanout_script(items)

    def reply(request: RecordedRequest) -> Scripted:
        found = re.search(r"question (\d+)", str(request.body.get("system")))
        if found is None:
            return answer(request)
        question = int(found.group(1))
        if question % nth == 0:
            return ErrorReply(400, "invalid_request_error", "bad request")
        if question % nth == 1:
            return ErrorReply(500, "api_error", "server broke")
        return answer(request)

    return reply


async def test_failing_calls_do_not_stall_the_limiter() -> None:
    limits = RateLimits(requests=15, output_tokens=15_000, period_s=1.0)
    async with open_fake_anthropic(
        failing_every(5, 40), count_input_tokens=True, limits=limits
    ) as fake:
        limiter = RateLimiter(period_s=1.0)
        result, _ = await run_fanout(fake, limiter, max_retries=2)
    assert not result.ok  # some items failed, and the run still ended
    statuses = [i.status for i in result.items if i.id != "main"]
    assert len(statuses) == 40
    assert statuses.count("completed") == 24  # 40 - 8 refused - 8 broken
    assert limiter.in_flight == 0  # every ticket was settled
