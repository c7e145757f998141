"""Ray executor vs local: a fan-out of ITEMS simulated invocations of SECONDS each.

Both runs use one trio orchestrator with the same fan-out limit (CONCURRENCY);
"local" runs every invocation in it, "ray" in threaded actors of a local Ray
cluster (`ray.init(num_cpus=2)`, ACTORS actors of CONCURRENCY/ACTORS threads).
The ideal wall time is the schedule's: ceil(ITEMS / CONCURRENCY) * SECONDS.
CPU is the benchmark process's plus every process it started (the Ray cluster:
gcs, raylet, workers), read from /proc before and after the run, per item.
Ray's startup (ray.init, then the actors answering) is reported on its own.

Usage:  .venv/bin/python bench/bench_ray.py [--items 2000] [--seconds 2]
                                            [--concurrency 200] [--actors 2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentflow.runtime.cli.compiled_loader import compile_and_import  # noqa: E402
from agentflow.runtime.engine.runner import RunOptions, run_pipeline  # noqa: E402
from agentflow.runtime.executors.local import LocalExecutor  # noqa: E402
from agentflow.runtime.pipeline import CompiledPipeline  # noqa: E402

PIPELINE = ROOT / "bench" / "raybench" / "fanout.yaml"
_TICKS = os.sysconf("SC_CLK_TCK")


def load() -> tuple[CompiledPipeline, object]:
    """The pipeline and its handlers, in this process and in each actor."""
    module = compile_and_import(PIPELINE)
    return module.compiled, module.default_handlers()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def tree_cpu() -> dict[int, float]:
    """CPU seconds of this process and each process it started, by pid."""
    return {pid: _cpu_s(pid) for pid in _descendants(os.getpid())}


def cpu_since(before: dict[int, float]) -> float:
    after = tree_cpu()
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def cpu_split(before: dict[int, float], actors: set[int]) -> tuple[float, float, float]:
    """CPU seconds since `before`: this process, the actors, the rest of Ray."""
    after = tree_cpu()
    spent = {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}
    mine = spent.get(os.getpid(), 0.0)
    in_actors = sum(cpu for pid, cpu in spent.items() if pid in actors)
    return mine, in_actors, sum(spent.values()) - mine - in_actors


async def measure(
    pipeline: CompiledPipeline, handlers: object, run_input: dict[str, Any], executor: Any,
    concurrency: int,
) -> dict[str, float]:  # fmt: skip
    before = tree_cpu()
    started = time.perf_counter()
    result = await run_pipeline(
        pipeline, run_input, handlers=handlers,
        options=RunOptions(executor=executor, max_concurrency=concurrency),
    )  # fmt: skip
    wall = time.perf_counter() - started
    assert result.ok, result.reason
    assert len(result.items) == run_input["items"] + 1
    actors = set(getattr(executor, "actor_pids", lambda: [])())
    mine, in_actors, rest = cpu_split(before, actors)
    return {
        "wall_s": wall, "cpu_s": mine + in_actors + rest, "driver_s": mine,
        "actors_s": in_actors, "ray_s": rest,
    }  # fmt: skip


async def main_async(args: argparse.Namespace) -> None:
    from agentflow.runtime.executors.ray_executor import RayExecutor

    pipeline, handlers = load()
    run_input = {"items": args.items, "seconds": args.seconds}
    ideal = math.ceil(args.items / args.concurrency) * args.seconds
    rows: list[tuple[str, dict[str, float]]] = []
    rows.append(
        ("local", await measure(pipeline, handlers, run_input, LocalExecutor(), args.concurrency))
    )
    executor = RayExecutor(
        pipeline, load, actors=args.actors,
        invocations_per_actor=math.ceil(args.concurrency / args.actors), num_cpus=2,
    )  # fmt: skip
    startup_cpu = tree_cpu()
    started = time.perf_counter()
    executor.start()  # on the main thread (ray.init elsewhere burns CPU: docs/scale.md)
    init_s = time.perf_counter() - started
    await executor.warm_up()
    startup_s = time.perf_counter() - started
    startup_cpu_s = cpu_since(startup_cpu)
    try:
        rows.append(
            ("ray", await measure(pipeline, handlers, run_input, executor, args.concurrency))
        )
    finally:
        await trio.to_thread.run_sync(executor.close)
    print(
        f"fan-out of {args.items} invocations of {args.seconds} s, concurrency "
        f"{args.concurrency}; ideal {ideal:.1f} s"
    )
    print(f"{'executor':<9} {'wall s':>8} {'wall/ideal':>11} {'CPU s':>8} {'CPU ms/item':>12}")
    for name, row in rows:
        print(
            f"{name:<9} {row['wall_s']:>8.2f} {row['wall_s'] / ideal:>11.3f} "
            f"{row['cpu_s']:>8.2f} {1000 * row['cpu_s'] / args.items:>12.2f}"
        )
    for name, row in rows:
        print(
            f"{name}: CPU s in this process {row['driver_s']:.2f}, in the actors "
            f"{row['actors_s']:.2f}, in the rest of Ray (raylet, gcs, ...) {row['ray_s']:.2f}"
        )
    print(
        f"ray startup (not in the run): ray.init {init_s:.2f} s, then {args.actors} actors "
        f"answering: {startup_s:.2f} s in all, {startup_cpu_s:.2f} CPU s; "
        f"re-submitted invocations: {executor.resubmitted}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--actors", type=int, default=2)
    trio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
