"""Transport benchmark: a Claude fan-out over real HTTP, agentflow vs the raw SDK.

The fake Messages API (tests/fake_anthropic/server.py) runs in its own process
and streams each worker answer over 1-2 s (its events spaced evenly; item n
takes 1 + (n mod 11) / 10 s), so the client's CPU is measured alone. The
client, in this process, makes the same calls two ways:

    agentflow  a 1,000-item fan-out at max_concurrency 64: run_pipeline with
               AnthropicModel (real SDK, streaming, events, rate limiter on);
               1 plan call + 1,000 worker calls.
    raw-sdk    the same 1,000 worker requests with AsyncAnthropic's
               messages.stream on trio, 64 at a time (a trio.CapacityLimiter).

Ideal: the makespan of the answers' durations on 64 slots taken in order (a
slot takes the next item the moment it frees); agentflow's plan call streams
at once and is not counted. Prints measured/ideal and the client's CPU
milliseconds per call (time.process_time over the fan-out, imports excluded),
and what one lone call costs over its nominal duration (the request's round
trip and the fake's first event, due one event-interval in), which every call
pays and the ideal leaves out.

Usage:  .venv/bin/python bench/bench_transport.py [--items 1000] [--concurrency 64]
            [--modes agentflow,raw-sdk]
"""

from __future__ import annotations

import argparse
import heapq
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "sk-ant-bench-transport-key"
ANSWER = "Trio nurseries scope concurrent tasks: a parent waits for its children."  # 71 chars
CHUNK = 6  # characters per text delta: 12 deltas (the last one 5 characters)
# message_start, ping, block start, the deltas, block stop, message_delta, message_stop: 18.
# (Until 2026-12-02 this was `len(ANSWER) // CHUNK`, 11 deltas: each answer then took 18/17
# of its nominal duration and every measured/ideal here was 5.9% too high.)
EVENTS = 6 + -(-len(ANSWER) // CHUNK)
_QUESTION = re.compile(r"question (\d+)")


def duration_s(item: int) -> float:
    """How long the fake streams item `item`'s answer."""
    return 1.0 + (item % 11) / 10


def serve(items: int) -> None:
    """Run the fake API until killed; print its base URL first."""
    from tests.fake_anthropic.fanout import fanout_script
    from tests.fake_anthropic.server import FakeAnthropic, RecordedRequest, Scripted, text_reply

    plan = fanout_script(items)

    def answer(request: RecordedRequest) -> Scripted:
        found = _QUESTION.search(str(request.body.get("system")))
        if found is None:
            return plan(request)
        delay = duration_s(int(found.group(1))) / EVENTS
        usage = {"input_tokens": 40, "output_tokens": 18}
        return text_reply(ANSWER, delay_s=delay, chunk_size=CHUNK, usage=usage)

    fake = FakeAnthropic(answer)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(fake.serve)
            print(url, flush=True)

    trio.run(run)


def _cpu_s(pid: int) -> float:
    """The CPU seconds process `pid` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ideal_s(items: int, slots: int) -> float:
    """The makespan of items 0..items-1, in order, on `slots` slots."""
    free = [0.0] * slots
    for item in range(items):
        start = heapq.heappop(free)
        heapq.heappush(free, start + duration_s(item))
    return max(free)


async def agentflow_fanout(base_url: str, items: int, concurrency: int) -> tuple[float, float]:
    from agentflow.runtime.engine.runner import RunOptions, run_pipeline
    from agentflow.runtime.models.anthropic import AnthropicModel
    from tests.fake_anthropic.fanout import fanout_pipeline

    model = AnthropicModel(api_key=KEY, base_url=base_url, max_retries=0)
    async with model:
        cpu, wall = time.process_time(), time.perf_counter()
        result = await run_pipeline(
            fanout_pipeline(concurrency, max_tokens=256),
            "transport",
            handlers=None,
            model=model,
            options=RunOptions(),
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.ok, result.reason
    assert result.usage.model_calls == items + 1
    return wall, cpu


async def raw_sdk_fanout(base_url: str, items: int, concurrency: int) -> tuple[float, float]:
    from anthropic import AsyncAnthropic

    limiter = trio.CapacityLimiter(concurrency)
    done = 0

    async with AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0) as client:

        async def call(item: int) -> None:
            nonlocal done
            async with limiter:
                params: dict[str, Any] = {
                    "model": "claude-sonnet-4-6",
                    "max_tokens": 256,
                    "system": f"Answer the question in one paragraph: question {item}",
                    "messages": [{"role": "user", "content": f"question {item}"}],
                }
                async with client.messages.stream(**params) as stream:
                    async for _ in stream:
                        pass
                    message = await stream.get_final_message()
                assert message.stop_reason == "end_turn"
                done += 1

        cpu, wall = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for item in range(items):
                nursery.start_soon(call, item)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert done == items
    return wall, cpu


async def lone_call_overhead_s(base_url: str) -> float:
    """The best of 3 lone calls' time over their nominal duration (item 0: 1 s)."""
    from anthropic import AsyncAnthropic

    best = float("inf")
    async with AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0) as client:
        for _ in range(3):
            started = time.perf_counter()
            async with client.messages.stream(
                model="claude-sonnet-4-6",
                max_tokens=256,
                system="Answer the question in one paragraph: question 0",
                messages=[{"role": "user", "content": "question 0"}],
            ) as stream:
                await stream.get_final_message()
            best = min(best, time.perf_counter() - started - duration_s(0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--modes", default="agentflow,raw-sdk")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.items)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--items", str(args.items)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        ideal = ideal_s(args.items, args.concurrency)
        print(
            f"{args.items} calls streamed over 1-2 s each (mean "
            f"{sum(duration_s(i) for i in range(args.items)) / args.items:.2f} s), "
            f"{args.concurrency} at once; ideal makespan {ideal:.2f} s"
        )
        lone = trio.run(lone_call_overhead_s, base_url)
        print(f"one lone call takes {lone * 1000:.0f} ms more than its nominal duration")
        print(
            "| client | calls | wall s | ideal s | measured/ideal | client CPU ms/call "
            "| fake API CPU busy |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for mode in args.modes.split(","):
            server_cpu = _cpu_s(server.pid)
            if mode == "agentflow":
                wall, cpu = trio.run(agentflow_fanout, base_url, args.items, args.concurrency)
                calls, best = args.items + 1, ideal  # the plan's answer streams at once
            else:
                wall, cpu = trio.run(raw_sdk_fanout, base_url, args.items, args.concurrency)
                calls, best = args.items, ideal
            server_busy = (_cpu_s(server.pid) - server_cpu) / wall
            print(
                f"| {mode} | {calls} | {wall:.2f} | {best:.2f} | {wall / best:.3f} | "
                f"{cpu / calls * 1000:.2f} | {server_busy:.0%} |"
            )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
