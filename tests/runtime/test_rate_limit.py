"""The adaptive rate limiter on its own: headers parsed, pacing, retry-after, settling.

Time is trio's mock clock (`autojump_clock`): a wait shows as the clock moving,
never as a measured duration.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import trio

from agentflow.runtime.errors import AgentflowError
from agentflow.runtime.models.rate_limit import (
    BucketState,
    RateLimiter,
    parse_rate_limit_headers,
)
from agentflow.runtime.usage import Usage

WALL = 1_800_000_000.0


def stamp(seconds_from_wall: float) -> str:
    moment = datetime.fromtimestamp(WALL + seconds_from_wall, UTC)
    return moment.isoformat().replace("+00:00", "Z")


def headers(**buckets: tuple[int, int, float]) -> dict[str, str]:
    """`requests=(limit, remaining, reset_in_s)` -> the API's header names and values."""
    out: dict[str, str] = {}
    for name, (limit, remaining, reset_in) in buckets.items():
        prefix = f"anthropic-ratelimit-{name.replace('_', '-')}"
        out[f"{prefix}-limit"] = str(limit)
        out[f"{prefix}-remaining"] = str(remaining)
        out[f"{prefix}-reset"] = stamp(reset_in)
    return out


def live_headers(**buckets: tuple[int, int]) -> dict[str, str]:
    """Headers whose reset times are relative to the real wall clock (what observe() reads)."""
    out: dict[str, str] = {}
    for name, (limit, remaining) in buckets.items():
        prefix = f"anthropic-ratelimit-{name.replace('_', '-')}"
        out[f"{prefix}-limit"] = str(limit)
        out[f"{prefix}-remaining"] = str(remaining)
        reset = datetime.fromtimestamp(time.time() + 30, UTC).isoformat().replace("+00:00", "Z")
        out[f"{prefix}-reset"] = reset
    return out


def test_the_api_headers_are_parsed_into_buckets() -> None:
    raw = headers(requests=(50, 49, 1.2), input_tokens=(30_000, 29_000, 2.0))
    raw |= headers(output_tokens=(8_000, 6_976, 7.68), tokens=(38_000, 6_976, 7.68))
    parsed = parse_rate_limit_headers(raw, now_wall=WALL)
    assert parsed.keys() == {"requests", "input_tokens", "output_tokens"}  # tokens-*: the tightest
    assert parsed["requests"].limit == 50 and parsed["requests"].remaining == 49
    assert parsed["requests"].reset_in_s == pytest.approx(1.2)
    assert parsed["output_tokens"] == BucketState(8_000, 6_976, pytest.approx(7.68))


def test_tokens_headers_count_when_the_api_sends_no_per_direction_ones() -> None:
    parsed = parse_rate_limit_headers(headers(tokens=(40_000, 100, 3.0)), now_wall=WALL)
    assert parsed == {"tokens": BucketState(40_000, 100, pytest.approx(3.0))}


def test_malformed_or_missing_headers_count_as_absent() -> None:
    raw = {
        "anthropic-ratelimit-requests-limit": "fifty",
        "anthropic-ratelimit-requests-remaining": "-3",
        "anthropic-ratelimit-requests-reset": "tomorrow",
        "retry-after": "5",
    }
    assert parse_rate_limit_headers(raw, now_wall=WALL) == {}
    assert parse_rate_limit_headers({}, now_wall=WALL) == {}
    past = {"anthropic-ratelimit-requests-reset": stamp(-10.0)}
    assert parse_rate_limit_headers(past, now_wall=WALL)["requests"].reset_in_s == 0.0


def test_invalid_settings_are_refused_with_their_name() -> None:
    with pytest.raises(AgentflowError, match="max_requests_per_minute=0"):
        RateLimiter(max_requests_per_minute=0)
    with pytest.raises(AgentflowError, match="max_tokens_per_minute=-5"):
        RateLimiter(max_tokens_per_minute=-5)


async def test_without_any_known_limit_nothing_waits(autojump_clock: object) -> None:
    limiter = RateLimiter()
    start = trio.current_time()
    for _ in range(1000):
        limiter.settle(await limiter.acquire(input_tokens=10_000, max_tokens=4096), None)
    assert trio.current_time() == start
    assert limiter.waits == 0


async def test_a_requests_per_minute_cap_paces_calls_past_the_burst(autojump_clock: object) -> None:
    limiter = RateLimiter(max_requests_per_minute=10)
    waits: list[tuple[float, str]] = []
    start = trio.current_time()
    for _ in range(10):  # the bucket starts full: no wait
        await limiter.acquire(
            input_tokens=1, max_tokens=1, on_wait=lambda s, b: waits.append((s, b))
        )
    assert trio.current_time() == start and waits == []
    await limiter.acquire(input_tokens=1, max_tokens=1, on_wait=lambda s, b: waits.append((s, b)))
    assert waits == [(pytest.approx(6.0), "requests")]  # one request refills every 6 s
    assert trio.current_time() - start == pytest.approx(6.0)
    for _ in range(10):
        await limiter.acquire(input_tokens=1, max_tokens=1)
    assert trio.current_time() - start == pytest.approx(66.0)
    assert limiter.waits == 11


async def test_a_tokens_per_minute_cap_counts_input_and_output(autojump_clock: object) -> None:
    limiter = RateLimiter(max_tokens_per_minute=6_000)
    start = trio.current_time()
    await limiter.acquire(input_tokens=2_000, max_tokens=1_000)
    await limiter.acquire(input_tokens=2_000, max_tokens=1_000)
    assert trio.current_time() == start  # 6,000 charged: the bucket is empty
    assert limiter.wait_s(100, 200) == (pytest.approx(3.0), "tokens")  # 300 tokens at 100/s


async def test_the_headers_room_is_used_at_once_and_none_left_waits(autojump_clock: object) -> None:
    limiter = RateLimiter()
    first = await limiter.acquire(input_tokens=10, max_tokens=10)
    limiter.observe(first, live_headers(requests=(60, 3)))
    start = trio.current_time()
    for _ in range(3):  # the API says 3 more fit: none of them waits
        await limiter.acquire(input_tokens=10, max_tokens=10)
    assert trio.current_time() == start and limiter.waits == 0
    await limiter.acquire(input_tokens=10, max_tokens=10)  # the 4th waits one refill: 1 s
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_a_waiting_call_goes_as_soon_as_new_headers_show_room(autojump_clock: object) -> None:
    limiter = RateLimiter()
    first = await limiter.acquire(input_tokens=10, max_tokens=10)
    limiter.observe(first, live_headers(requests=(1, 0)))  # empty: a refill takes 60 s
    went_at: list[float] = []

    async def call() -> None:
        await limiter.acquire(input_tokens=10, max_tokens=10)
        went_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.sleep(5)
        assert went_at == []
        limiter.observe(first, live_headers(requests=(100, 50)))  # a response: room now
    assert went_at == [pytest.approx(trio.current_time())]
    assert went_at[0] - 5 < 60


async def test_requests_sent_after_a_response_are_not_counted_twice(
    autojump_clock: object,
) -> None:
    limiter = RateLimiter()
    first = await limiter.acquire(input_tokens=10, max_tokens=10)
    sent_later = [await limiter.acquire(input_tokens=10, max_tokens=10) for _ in range(4)]
    # The API's view at the first response may not include the 4 sent after it.
    limiter.observe(first, live_headers(requests=(60, 5)))
    await limiter.acquire(input_tokens=10, max_tokens=10)  # 5 - 4 = 1 left: goes at once
    assert limiter.waits == 0
    assert limiter.wait_s(10, 10)[0] == pytest.approx(1.0)  # then none: one refill
    for ticket in sent_later:
        limiter.observe(ticket, live_headers(requests=(60, 0)))


async def test_retry_after_holds_every_call(autojump_clock: object) -> None:
    limiter = RateLimiter()
    refused = await limiter.acquire(input_tokens=10, max_tokens=10)
    limiter.refused(refused, {"retry-after": "2"}, 2.0)
    waits: list[tuple[float, str]] = []
    start = trio.current_time()
    await limiter.acquire(input_tokens=10, max_tokens=10, on_wait=lambda s, b: waits.append((s, b)))
    assert waits == [(pytest.approx(2.0), "retry-after")]
    assert trio.current_time() - start == pytest.approx(2.0)
    assert limiter.refusals == 1


async def test_a_refused_request_is_not_counted(autojump_clock: object) -> None:
    limiter = RateLimiter(max_requests_per_minute=2)
    await limiter.acquire(input_tokens=1, max_tokens=1)
    refused = await limiter.acquire(input_tokens=1, max_tokens=1)
    limiter.refused(refused, {}, None)  # no retry-after: only the refund
    start = trio.current_time()
    await limiter.acquire(input_tokens=1, max_tokens=1)
    assert trio.current_time() == start


async def test_unused_output_tokens_come_back_when_a_call_ends(autojump_clock: object) -> None:
    limiter = RateLimiter(max_tokens_per_minute=2_100)  # a cap the API does not report
    first = await limiter.acquire(input_tokens=10, max_tokens=1_000)
    second = await limiter.acquire(input_tokens=10, max_tokens=1_000)
    assert limiter.wait_s(10, 1_000)[0] == pytest.approx(60.0 * 930 / 2_100)
    limiter.settle(second, Usage(input_tokens=10, output_tokens=20))  # 980 unused, back
    limiter.settle(first, Usage(input_tokens=10, output_tokens=20))  # and 980 more
    assert limiter.wait_s(10, 1_000)[0] <= 0


async def test_what_the_api_reports_is_not_given_back_twice(autojump_clock: object) -> None:
    limiter = RateLimiter()
    first = await limiter.acquire(input_tokens=10, max_tokens=1_000)
    limiter.observe(first, live_headers(output_tokens=(60_000, 59_000)))
    second = await limiter.acquire(input_tokens=10, max_tokens=1_000)
    # The API has given back the first answer's unused 980 and says so:
    limiter.observe(second, live_headers(output_tokens=(60_000, 58_980)))
    limiter.settle(first, Usage(input_tokens=10, output_tokens=20))  # not again
    assert limiter.wait_s(10, 58_981)[0] > 0
    assert limiter.wait_s(10, 58_980)[0] <= 0


async def test_input_estimates_are_corrected_by_the_actual_count(autojump_clock: object) -> None:
    limiter = RateLimiter(max_tokens_per_minute=1_000)
    ticket = await limiter.acquire(input_tokens=900, max_tokens=100)  # all of it
    assert limiter.wait_s(500, 100)[0] > 0
    cached = Usage(input_tokens=50, cache_read_input_tokens=850, output_tokens=30)
    limiter.settle(ticket, cached)  # cache reads are free: 80 tokens used
    assert limiter.wait_s(500, 100)[0] <= 0


async def test_a_request_larger_than_a_limit_goes_once_the_bucket_is_full(
    autojump_clock: object,
) -> None:
    limiter = RateLimiter(max_tokens_per_minute=1_000)
    start = trio.current_time()
    await limiter.acquire(input_tokens=500, max_tokens=4_096)  # more than a minute's worth
    await limiter.acquire(input_tokens=500, max_tokens=4_096)  # never fits: waits for a full one
    assert trio.current_time() - start == pytest.approx(60.0 * 4_596 / 1_000)


async def test_calls_go_in_arrival_order_and_a_cancelled_waiter_leaves_the_queue(
    autojump_clock: object,
) -> None:
    limiter = RateLimiter(max_requests_per_minute=60)
    for _ in range(60):
        await limiter.acquire(input_tokens=1, max_tokens=1)
    order: list[int] = []
    doomed = trio.CancelScope()

    async def call(n: int, scope: trio.CancelScope | None = None) -> None:
        with scope or trio.CancelScope():
            await limiter.acquire(input_tokens=1, max_tokens=1)
            order.append(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, 0, doomed)
        await trio.sleep(0)
        for n in range(1, 5):
            nursery.start_soon(call, n)
            await trio.sleep(0)
        doomed.cancel()  # the first waiter gives up: the others still go
    assert order == [1, 2, 3, 4]


async def test_a_failed_call_gives_back_its_output_tokens(autojump_clock: object) -> None:
    limiter = RateLimiter(max_tokens_per_minute=2_000)
    ticket = await limiter.acquire(input_tokens=100, max_tokens=1_900)
    limiter.settle(ticket, None)  # failed: no answer, its input stays charged
    start = trio.current_time()
    await limiter.acquire(input_tokens=100, max_tokens=1_800)
    assert trio.current_time() == start
    limiter.settle(ticket, None)  # settling twice changes nothing


async def test_requests_sent_before_but_not_answered_yet_count_as_uncounted(
    autojump_clock: object,
) -> None:
    limiter = RateLimiter()
    in_transit = [await limiter.acquire(input_tokens=10, max_tokens=10) for _ in range(3)]
    overtaking = await limiter.acquire(input_tokens=10, max_tokens=10)
    # The last request reached the API first: its view may not hold the other 3.
    limiter.observe(overtaking, live_headers(requests=(60, 4)))
    await limiter.acquire(input_tokens=10, max_tokens=10)  # 4 - 3 = 1 left
    assert limiter.wait_s(10, 10)[0] == pytest.approx(1.0)
    assert len(in_transit) == 3
