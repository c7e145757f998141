"""Runtime overhead benchmark: the engine vs a plain-trio floor, JSONL audit sink on.

Handlers are zero-latency (one `trio.lowlevel.checkpoint()` each, no model), so
only framework cost counts. Each case runs in a fresh subprocess so its peak
RSS is its own.

    A  hello world: writer -> reviewer (fails) -> writer -> reviewer (passes),
       4 agent invocations a run, RUNS runs in one process.
    B  orchestrator fans out N items; each: worker, then QA; then aggregation.
       1 + 2N invocations; N = 100, 1,000, 10,000.

The floor makes the same number of awaited coroutine calls (one checkpoint
each), with one task per item in a nursery for the fan-out.

Times are the best of 3 repetitions (wall and CPU; the ratio uses CPU time,
steadier on a shared machine); the log-lines column checks the audit log got
every event.

Usage:  /work/venv/bin/python bench/bench_runtime.py [--runs 2000] [--profile A|B]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime.agents import AgentOutput, QAIssue
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.pipeline import CompiledPipeline, compile_spec
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.spec import PipelineSpec

_TEXT = AgentOutput(text="a draft of about the usual length for a short answer")
_FAIL = AgentOutput(passed=False, issues=[QAIssue(message="add a concrete example")])
_PASS = AgentOutput(passed=True)


def _states(*names: str) -> dict[str, Any]:
    return {
        "initial": names[0],
        "terminal": ["complete", "failed"],
        "states": [{"id": n} for n in names],
    }


def hello_pipeline() -> CompiledPipeline:
    spec = PipelineSpec.model_validate(
        {
            "name": "hello-world",
            "state_machine": _states("initialised", "running", "reviewing", "complete", "failed"),
            "agents": [
                {
                    "id": "writer_agent",
                    "prompt": "w.md",
                    "transitions": {"on_start": "running", "on_complete": "reviewing"},
                    "dispatch": {"strategy": "sequential", "target": "reviewer_agent"},
                },
                {
                    "id": "reviewer_agent",
                    "prompt": "r.md",
                    "retry": {"max_attempts": 2, "backoff_ms": 200},
                    "on_fail": {"action": "feedback_and_retry", "target": "writer_agent"},
                    "transitions": {
                        "on_pass": "complete",
                        "on_fail": "running",
                        "on_abort": "failed",
                    },
                },
            ],
            "aggregation": {
                "strategy": "all_pass",
                "gates": ["reviewer_agent"],
                "on_complete": {"transition": "complete"},
                "on_any_abort": {"transition": "failed"},
            },
        }
    )
    return compile_spec(spec, {"writer_agent": "", "reviewer_agent": ""})


def fanout_pipeline() -> CompiledPipeline:
    spec = PipelineSpec.model_validate(
        {
            "name": "fanout",
            "defaults": {"max_concurrency": 64},
            "state_machine": _states("initialised", "planning", "working", "complete", "failed"),
            "agents": [
                {
                    "id": "orchestrator_agent",
                    "prompt": "o.md",
                    "transitions": {"on_start": "planning", "on_complete": "working"},
                    "dispatch": {"strategy": "parallel_fan_out", "target": "worker_agent"},
                },
                {
                    "id": "worker_agent",
                    "prompt": "w.md",
                    "dispatch": {"strategy": "sequential", "target": "qa_agent"},
                },
                {
                    "id": "qa_agent",
                    "prompt": "q.md",
                    "on_fail": {"action": "feedback_and_retry", "target": "worker_agent"},
                    "transitions": {"on_pass": "complete", "on_abort": "failed"},
                },
            ],
            "aggregation": {
                "strategy": "all_pass",
                "gates": ["qa_agent"],
                "on_complete": {"transition": "complete"},
                "on_any_abort": {"transition": "failed"},
            },
        }
    )
    return compile_spec(spec, {"orchestrator_agent": "", "worker_agent": "", "qa_agent": ""})


class HelloHandlers:
    async def writer_agent(self, ctx: AgentContext) -> AgentOutput:
        await trio.lowlevel.checkpoint()
        return _TEXT

    async def reviewer_agent(self, ctx: AgentContext) -> AgentOutput:
        await trio.lowlevel.checkpoint()
        return _FAIL if ctx.attempt == 1 else _PASS


class FanoutHandlers:
    def __init__(self, n: int) -> None:
        self.plan = AgentOutput(text="plan", items=[f"sub-question {k}" for k in range(n)])

    async def orchestrator_agent(self, ctx: AgentContext) -> AgentOutput:
        await trio.lowlevel.checkpoint()
        return self.plan

    async def worker_agent(self, ctx: AgentContext) -> AgentOutput:
        await trio.lowlevel.checkpoint()
        return _TEXT

    async def qa_agent(self, ctx: AgentContext) -> AgentOutput:
        await trio.lowlevel.checkpoint()
        return _PASS


async def _call() -> None:
    await trio.lowlevel.checkpoint()


async def engine_a(runs: int, log: Path) -> int:
    pipeline, handlers = hello_pipeline(), HelloHandlers()
    options = RunOptions(backoff_scale=0.0)
    for _ in range(runs):
        result = await run_pipeline(
            pipeline, "topic", handlers=handlers, sinks=[FileSink(log)], options=options
        )
        assert result.ok, result.reason
    return runs * 4


async def floor_a(runs: int, log: Path) -> int:
    for _ in range(runs):
        for _ in range(4):
            await _call()
    return runs * 4


async def engine_b(n: int, log: Path) -> int:
    result = await run_pipeline(
        fanout_pipeline(), "question", handlers=FanoutHandlers(n), sinks=[FileSink(log)],
        options=RunOptions(backoff_scale=0.0),
    )  # fmt: skip
    assert result.ok and len(result.items) == n + 1, result.reason
    return 1 + 2 * n


async def floor_b(n: int, log: Path) -> int:
    async def item() -> None:
        await _call()
        await _call()

    await _call()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(item)
    return 1 + 2 * n


CASES = {"engine_a": engine_a, "floor_a": floor_a, "engine_b": engine_b, "floor_b": floor_b}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(case: str, size: int, profile: bool, reps: int = 3) -> dict[str, Any]:
    """Run one case `reps` times in this process; report the best wall and CPU time,
    invocations, and the extra peak RSS over the RSS before the first timed run."""
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "audit.jsonl"
        trio.run(CASES[case], 10, log)  # warm up imports and caches
        base = _rss_mb()
        profiler = cProfile.Profile() if profile else None
        for _ in range(1 if profile else reps):
            log.unlink(missing_ok=True)
            if profiler:
                profiler.enable()
            wall, cpu = time.perf_counter(), time.process_time()
            calls = trio.run(CASES[case], size, log)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            if profiler:
                profiler.disable()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        lines = sum(1 for _ in log.open()) if log.exists() else 0
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return {
        "case": case,
        "size": size,
        "seconds": min(walls),
        "cpu_seconds": min(cpus),
        "invocations": calls,
        "us_per_invocation": min(walls) / calls * 1e6,
        "cpu_us_per_invocation": min(cpus) / calls * 1e6,
        "extra_mb": max(0.0, peak - base),
        "log_lines": lines,
    }


def _spawn(case: str, size: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, str(size)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs for case A")
    parser.add_argument("--sizes", default="100,1000,10000", help="fan-out sizes for case B")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=["A", "B"], help="cProfile one engine case")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), False)))
        return
    if args.profile:
        case, size = ("engine_a", args.runs) if args.profile == "A" else ("engine_b", 10000)
        print(json.dumps(child(case, size, True)))
        return
    rows = [("A", args.runs)] + [("B", int(n)) for n in args.sizes.split(",")]
    print(
        f"{'case':<4} {'size':>6} {'engine us/inv':>13} {'(cpu)':>6} {'floor us/inv':>12} "
        f"{'(cpu)':>6} {'ratio':>5} {'engine s':>8} {'(cpu)':>6} {'engine MB':>9} "
        f"{'floor MB':>8} {'log lines':>9}"
    )
    for name, size in rows:
        engine = _spawn(f"engine_{name.lower()}", size)
        floor = _spawn(f"floor_{name.lower()}", size)
        ratio = engine["cpu_us_per_invocation"] / floor["cpu_us_per_invocation"]
        print(
            f"{name:<4} {size:>6} {engine['us_per_invocation']:>13.1f} "
            f"{engine['cpu_us_per_invocation']:>6.1f} {floor['us_per_invocation']:>12.2f} "
            f"{floor['cpu_us_per_invocation']:>6.2f} {ratio:>5.1f} {engine['seconds']:>8.3f} "
            f"{engine['cpu_seconds']:>6.3f} {engine['extra_mb']:>9.1f} {floor['extra_mb']:>8.1f} "
            f"{engine['log_lines']:>9}"
        )


if __name__ == "__main__":
    main()
