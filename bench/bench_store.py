"""Run store overhead: the same workloads with the store off and on, in one process.

    A  hello world (4 agent invocations a run), RUNS runs (default 500): each run
       is recorded (`begin_run`), its events committed, then published.
    B  one fan-out of N items (default 10,000): 1 + 2N invocations.

"off" is today's path: the JSONL `FileSink` written inline by the hub. "on" adds
the run store (`EventHub(committer=...)`: commit, then publish) on SQLite in a
temp dir, and on PostgreSQL when a server URL is given (`--postgres URL`) or
Debian's PostgreSQL binaries can start a throwaway one (tests/store/pg_server.py).
CPU is the whole process's (`time.process_time`: the writer thread included),
best of 3 repetitions; wall time is shown beside it. The store's counters say
how many transactions the events took.

Usage:  .venv/bin/python bench/bench_store.py [--runs 500] [--items 10000]
                                             [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_runtime import FanoutHandlers, HelloHandlers, fanout_pipeline, hello_pipeline

from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.run_ids import new_run_id
from agentflow.runtime.pipeline import CompiledPipeline
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.store import RunStore

_OPTIONS = RunOptions(backoff_scale=0.0)


async def _one_run(
    pipeline: CompiledPipeline, handlers: object, log: Path, store: RunStore | None
) -> int:
    run_id = new_run_id()
    hub = EventHub(run_id=run_id, pipeline_hash=pipeline.source_sha256, keep_history=False)
    if store is not None:
        committer = await store.begin_run(
            run_id=run_id, pipeline=pipeline.spec.name, source_hash=pipeline.source_sha256,
            input="topic", options={},
        )  # fmt: skip
        hub.commit_to(committer)
    hub.add_sink(FileSink(log))
    async with hub.running():
        result = await run_pipeline(pipeline, "topic", handlers=handlers, hub=hub, options=_OPTIONS)
    assert result.ok, result.reason
    return hub.events_emitted


def workload_a(runs: int) -> Callable[[Path, RunStore | None], Awaitable[int]]:
    pipeline, handlers = hello_pipeline(), HelloHandlers()

    async def go(directory: Path, store: RunStore | None) -> int:
        events = 0
        for n in range(runs):
            events += await _one_run(pipeline, handlers, directory / f"a{n}.jsonl", store)
        return events

    return go


def workload_b(items: int) -> Callable[[Path, RunStore | None], Awaitable[int]]:
    pipeline, handlers = fanout_pipeline(), FanoutHandlers(items)

    async def go(directory: Path, store: RunStore | None) -> int:
        return await _one_run(pipeline, handlers, directory / "b.jsonl", store)

    return go


def _measure(
    work: Callable[[Path, RunStore | None], Awaitable[int]], store_url: str | None
) -> dict[str, Any]:
    best: dict[str, Any] | None = None
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            store = None
            if store_url is not None:
                store = RunStore.open(store_url.replace("{tmp}", tmp))
            before = store.stats.transactions if store else 0
            cpu, wall = time.process_time(), time.perf_counter()
            events = trio.run(work, directory, store)
            if store is not None:
                store.close()  # what is queued is committed: part of the cost
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            transactions = store.stats.transactions - before if store else 0
        sample = {"cpu": cpu, "wall": wall, "events": events, "transactions": transactions}
        if best is None or cpu < best["cpu"]:
            best = sample
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="runs of workload A")
    parser.add_argument("--items", type=int, default=10_000, help="items of workload B")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", help="a postgresql:// URL (default: a throwaway server)")
    args = parser.parse_args()
    backends: dict[str, str] = {}
    server = None
    for backend in args.backends.split(","):
        if backend == "sqlite":
            backends["sqlite"] = "{tmp}/agentflow.db"
        elif backend == "postgresql" and args.postgres:
            backends["postgresql"] = args.postgres
        elif backend == "postgresql":
            from tests.store.pg_server import find_pg_bin, start_pg_server

            pg_bin = find_pg_bin()
            if pg_bin is None:
                print("postgresql: no binaries (apt-get install postgresql); skipped")
                continue
            server = start_pg_server(pg_bin)
            backends["postgresql"] = server.url
    try:
        print(f"{'workload':<24}{'store':<12}{'cpu s':>8}{'wall s':>8}{'events':>8}"
              f"{'commits':>9}{'extra cpu':>11}")  # fmt: skip
        for name, work in (
            (f"A ({args.runs} runs)", workload_a(args.runs)),
            (f"B ({args.items:,} items)", workload_b(args.items)),
        ):
            off = _measure(work, None)
            rows = [("off", off)]
            for backend, url in backends.items():
                rows.append((backend, _measure(work, url)))
            for store, sample in rows:
                extra = "" if store == "off" else f"{sample['cpu'] / off['cpu'] - 1:+.0%}"
                print(f"{name:<24}{store:<12}{sample['cpu']:>8.2f}{sample['wall']:>8.2f}"
                      f"{sample['events']:>8}{sample['transactions']:>9}{extra:>11}")  # fmt: skip
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
