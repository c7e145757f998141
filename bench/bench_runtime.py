"""Runtime overhead benchmark: the engine vs a plain-trio floor, JSONL audit sink on.

Handlers are zero-latency (one `trio.lowlevel.checkpoint()` each, no model), so
only framework cost counts. Each case runs in a fresh subprocess so its peak
RSS is its own.

    A  hello world: writer -> reviewer (fails) -> writer -> reviewer (passes),
       4 agent invocations a run, RUNS runs in one process.
    B  orchestrator fans out N items; each: worker, then QA; then aggregation.
       1 + 2N invocations; N = 100, 1,000, 10,000.
    C  route + loop (DSL v2): planner -> executor -> replanner, whose route
       case `execute` loops back to the executor (max_iterations 8) until the
       8th replanner answer routes `done` -> end; typed outputs throughout.
       1 + 2 * 8 = 17 invocations a run, RUNS / 4 runs in one process.
    D  map-reduce (DSL v2): a typed fan-out (`items: parts`) of N children, one
       mapper each, then `reduce` once on the parent. 1 + N + 1 invocations;
       N = 100, 1,000, 10,000.

The floor makes the same number of awaited coroutine calls (one checkpoint
each), with one task per item in a nursery for the fan-outs.

Times are the best of 3 repetitions (wall and CPU; the ratio uses CPU time,
steadier on a shared machine); the log-lines column checks the audit log got
every event.

Usage:  .venv/bin/python bench/bench_runtime.py [--runs 2000] [--cases A,B,C,D]
                                                [--profile A|B|C|D]

`--once CASE SIZE` runs one case once after its warm-up (SIZE 0: the warm-up
only), untimed: under `valgrind --tool=cachegrind`, the instructions of SIZE
less those of 0, per invocation, compare commits without timing noise.
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
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import trio
from pydantic import BaseModel, ConfigDict

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


LOOP_ITERATIONS = 8


class _Typed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlannerOutput(_Typed):
    goal: str
    steps: list[str]


class ExecutorOutput(_Typed):
    step: str
    result: str


class ReplannerOutput(_Typed):
    decision: Literal["execute", "done"]
    next_step: str


class SplitterOutput(_Typed):
    parts: list[str]


class MapperOutput(_Typed):
    finding: str


class ReducerOutput(_Typed):
    answer: str
    parts: int


def route_loop_pipeline() -> CompiledPipeline:
    """Case C: plan, then execute/replan in a bounded route loop until `done` -> end."""
    spec = PipelineSpec.model_validate(
        {
            "name": "route-loop",
            "state_machine": _states("running", "complete", "failed"),
            "implicit_state_machine": True,
            "agents": [
                {
                    "id": "planner",
                    "prompt": "p.md",
                    "dispatch": {"strategy": "sequential", "target": "executor"},
                },
                {
                    "id": "executor",
                    "prompt": "e.md",
                    "dispatch": {"strategy": "sequential", "target": "replanner"},
                },
                {
                    "id": "replanner",
                    "prompt": "r.md",
                    "dispatch": {
                        "strategy": "route",
                        "on": "decision",
                        "cases": {
                            "execute": {
                                "target": "executor",
                                "max_iterations": LOOP_ITERATIONS,
                                "on_exhausted": "abort",
                            },
                            "done": {"target": "end"},
                        },
                    },
                },
            ],
        }
    )
    compiled = compile_spec(spec, {"planner": "", "executor": "", "replanner": ""})
    models = {"planner": PlannerOutput, "executor": ExecutorOutput, "replanner": ReplannerOutput}
    return replace(compiled, output_models=models)


def map_reduce_pipeline() -> CompiledPipeline:
    """Case D: a typed fan-out over `parts`, one mapper per part, one reduce on the parent."""
    spec = PipelineSpec.model_validate(
        {
            "name": "map-reduce",
            "defaults": {"max_concurrency": 64},
            "state_machine": _states("running", "complete", "failed"),
            "implicit_state_machine": True,
            "agents": [
                {
                    "id": "splitter",
                    "prompt": "s.md",
                    "dispatch": {
                        "strategy": "parallel_fan_out",
                        "items": "parts",
                        "target": "mapper",
                        "reduce": "reducer",
                    },
                },
                {"id": "mapper", "prompt": "m.md"},
                {"id": "reducer", "prompt": "r.md"},
            ],
        }
    )
    compiled = compile_spec(spec, {"splitter": "", "mapper": "", "reducer": ""})
    models = {"splitter": SplitterOutput, "mapper": MapperOutput, "reducer": ReducerOutput}
    return replace(compiled, output_models=models)


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


class RouteLoopHandlers:
    """The replanner loops back `LOOP_ITERATIONS - 1` times, then routes `done`."""

    plan = PlannerOutput(goal="answer the question", steps=["look it up", "write it down"])
    step = ExecutorOutput(step="look it up", result="found the usual answer")
    again = ReplannerOutput(decision="execute", next_step="write it down")
    done = ReplannerOutput(decision="done", next_step="")

    async def planner(self, ctx: AgentContext) -> PlannerOutput:
        await trio.lowlevel.checkpoint()
        return self.plan

    async def executor(self, ctx: AgentContext) -> ExecutorOutput:
        await trio.lowlevel.checkpoint()
        return self.step

    async def replanner(self, ctx: AgentContext) -> ReplannerOutput:
        await trio.lowlevel.checkpoint()
        return self.done if ctx.attempt == LOOP_ITERATIONS else self.again


class MapReduceHandlers:
    finding = MapperOutput(finding="a finding of about the usual length for one part")

    def __init__(self, n: int) -> None:
        self.split = SplitterOutput(parts=[f"part {k}" for k in range(n)])

    async def splitter(self, ctx: AgentContext) -> SplitterOutput:
        await trio.lowlevel.checkpoint()
        return self.split

    async def mapper(self, ctx: AgentContext) -> MapperOutput:
        await trio.lowlevel.checkpoint()
        return self.finding

    async def reducer(self, ctx: AgentContext) -> ReducerOutput:
        await trio.lowlevel.checkpoint()
        return ReducerOutput(answer="the combined answer", parts=len(ctx.children))


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


async def engine_c(runs: int, log: Path) -> int:
    pipeline, handlers = route_loop_pipeline(), RouteLoopHandlers()
    options = RunOptions(backoff_scale=0.0)
    for _ in range(runs):
        result = await run_pipeline(
            pipeline, "task", handlers=handlers, sinks=[FileSink(log)], options=options
        )
        assert result.ok, result.reason
    return runs * (1 + 2 * LOOP_ITERATIONS)


async def floor_c(runs: int, log: Path) -> int:
    for _ in range(runs):
        for _ in range(1 + 2 * LOOP_ITERATIONS):
            await _call()
    return runs * (1 + 2 * LOOP_ITERATIONS)


async def engine_d(n: int, log: Path) -> int:
    result = await run_pipeline(
        map_reduce_pipeline(), "question", handlers=MapReduceHandlers(n), sinks=[FileSink(log)],
        options=RunOptions(backoff_scale=0.0),
    )  # fmt: skip
    assert result.ok and len(result.items) == n + 1, result.reason
    return n + 2


async def floor_d(n: int, log: Path) -> int:
    await _call()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(_call)
    await _call()
    return n + 2


CASES = {
    "engine_a": engine_a,
    "floor_a": floor_a,
    "engine_b": engine_b,
    "floor_b": floor_b,
    "engine_c": engine_c,
    "floor_c": floor_c,
    "engine_d": engine_d,
    "floor_d": floor_d,
}


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


def once(case: str, size: int) -> None:
    """Warm up as `child` does, then run `case` once at `size` (0: not at all)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "audit.jsonl"
        trio.run(CASES[case], 10, log)
        if size:
            log.unlink()
            trio.run(CASES[case], size, log)


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
    parser.add_argument("--once", nargs=2, metavar=("CASE", "SIZE"), help="run once, untimed")
    parser.add_argument("--cases", default="A,B,C,D", help="which cases to run")
    parser.add_argument("--profile", choices=["A", "B", "C", "D"], help="cProfile one engine case")
    args = parser.parse_args()
    if args.once:
        once(args.once[0], int(args.once[1]))
        return
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), False)))
        return
    sizes = [int(n) for n in args.sizes.split(",")]
    runs = {"A": [args.runs], "B": sizes, "C": [max(1, args.runs // 4)], "D": sizes}
    if args.profile:
        name = args.profile
        size = runs[name][0] if name in "AC" else 10000
        print(json.dumps(child(f"engine_{name.lower()}", size, True)))
        return
    rows = [(name, size) for name in args.cases.split(",") for size in runs[name]]
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
