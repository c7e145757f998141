"""Rate-limit benchmark: a large Claude fan-out against a fake API that enforces limits.

A real run (runner, AnthropicModel, the real anthropic SDK, real HTTP) against
the fake Messages API (in its own process, so it does not compete with the
client for one thread) with rate limits enforced as the real API does
(tests/fake_anthropic/limits.py: token buckets for requests, input tokens and
output tokens, `anthropic-ratelimit-*` headers, 429 + `retry-after`). The
limits count per `--period` seconds instead of a minute, so a 2,000-item
fan-out takes about 30-60 s; the limiter is told the same period.

The bound the limits allow: a token bucket of capacity B refilling at r per
second admits requests of total cost C (from full) no sooner than (C - B) / r.
The bound is the largest over the buckets, from the first worker request's
arrival; "measured" is the span from the first worker request's arrival to the
last one's (the pacing, not the answers' streaming). Output tokens are charged
`max_tokens` up front and refunded when a response ends (as the API does); the
bench keeps that bucket loose, so requests and input tokens set the bound.

Prints: items, period, limits, 429s, admitted requests, the bound, measured,
measured/bound, and the run's wall time.

Usage:  .venv/bin/python bench/bench_rate_limit.py [--items 2000] [--period 6]
            [--rpm 250] [--itpm 12000] [--otpm 200000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentflow.runtime.engine.runner import RunOptions, run_pipeline  # noqa: E402
from agentflow.runtime.events.event import EventKind  # noqa: E402
from agentflow.runtime.models.anthropic import AnthropicModel  # noqa: E402
from agentflow.runtime.models.rate_limit import RateLimiter  # noqa: E402
from agentflow.runtime.sinks.memory import MemorySink  # noqa: E402
from tests.fake_anthropic.fanout import fanout_pipeline, fanout_script  # noqa: E402
from tests.fake_anthropic.limits import RateLimits  # noqa: E402
from tests.fake_anthropic.server import FakeAnthropic  # noqa: E402

KEY = "sk-ant-bench-rate-limit-key"


def bound_s(costs: list[float], capacity: float, period_s: float) -> float:
    """How long a full bucket of `capacity` (refilling capacity/period_s) takes to admit `costs`."""
    return max(0.0, sum(costs) - capacity) * period_s / capacity


def serve(args: argparse.Namespace) -> None:
    """The fake API with the limits, in its own process; GET /stats gives its log."""
    limits = RateLimits(
        requests=args.rpm,
        input_tokens=args.itpm,
        output_tokens=args.otpm,
        period_s=args.period,
    )
    script = fanout_script(args.items, delay_s=args.delay, output_tokens=50)
    fake = FakeAnthropic(script, count_input_tokens=True, limits=limits)

    @fake.app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {"log": limits.log, "admitted": limits.admitted, "rejected": limits.rejected}

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            print(await nursery.start(fake.serve), flush=True)

    trio.run(run)


async def bench(args: argparse.Namespace, base_url: str) -> dict[str, float]:
    import httpx2

    sink = MemorySink()
    limiter = RateLimiter(period_s=args.period)
    model = AnthropicModel(api_key=KEY, base_url=base_url, rate_limiter=limiter)
    async with model:
        started = time.perf_counter()
        result = await run_pipeline(
            fanout_pipeline(args.concurrency, max_tokens=args.max_tokens),
            "rate limits",
            handlers=None,
            model=model,
            sinks=[sink],
            options=RunOptions(),
        )
        wall = time.perf_counter() - started
    assert result.ok, result.reason
    async with httpx2.AsyncClient() as client:
        stats = (await client.get(f"{base_url}/stats")).json()
    admitted = [(at, tokens) for at, outcome, tokens in stats["log"] if outcome == "admitted"]
    workers = admitted[1:]  # the first is the plan's request
    first, last = workers[0][0], workers[-1][0]
    bounds = {
        "requests": bound_s([1.0] * len(workers), args.rpm, args.period),
        "input_tokens": bound_s([float(t) for _, t in workers], args.itpm, args.period),
    }
    waits = [e for e in sink.events if e.kind == EventKind.RATE_LIMITED]
    return {
        "admitted": float(stats["admitted"]),
        "rejected": float(stats["rejected"]),
        "bound_s": max(bounds.values()),
        "bound_requests_s": bounds["requests"],
        "bound_input_s": bounds["input_tokens"],
        "measured_s": last - first,
        "wall_s": wall,
        "waits": float(len(waits)),
        "input_per_request": sum(t for _, t in workers) / len(workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--period", type=float, default=6.0, help="seconds the limits count over")
    parser.add_argument("--rpm", type=int, default=250, help="requests a period")
    parser.add_argument("--itpm", type=int, default=12_000, help="input tokens a period")
    parser.add_argument("--otpm", type=int, default=200_000, help="output tokens a period")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=64, help="the fan-out's limit")
    parser.add_argument("--delay", type=float, default=0.01, help="s between a reply's events")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", *sys.argv[1:]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        numbers = trio.run(bench, args, server.stdout.readline().strip())
    finally:
        server.kill()
        server.wait()
    print(
        f"fan-out of {args.items} items at concurrency {args.concurrency}; limits per "
        f"{args.period:g} s: {args.rpm} requests, {args.itpm:,} input tokens, "
        f"{args.otpm:,} output tokens (max_tokens {args.max_tokens})"
    )
    print(
        "| admitted | 429s | rate_limited events | bound s | measured s | measured/bound | wall s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {numbers['admitted']:.0f} | {numbers['rejected']:.0f} | {numbers['waits']:.0f} | "
        f"{numbers['bound_s']:.2f} | {numbers['measured_s']:.2f} | "
        f"{numbers['measured_s'] / numbers['bound_s']:.3f} | {numbers['wall_s']:.2f} |"
    )
    print(
        f"bound by requests {numbers['bound_requests_s']:.2f} s, by input tokens "
        f"{numbers['bound_input_s']:.2f} s ({numbers['input_per_request']:.1f} a request)"
    )


if __name__ == "__main__":
    main()
