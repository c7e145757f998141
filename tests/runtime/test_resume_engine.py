"""Resume (issue 11 item 3): a run interrupted at a deterministic point and resumed ends
exactly as an uninterrupted run, without calling again any handler whose invocation was
committed; the resumed log verifies and the JSONL export equals the store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trio
from pydantic import BaseModel, ConfigDict

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.run_result import RunResult
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.pipeline import CompiledPipeline
from agentflow.runtime.store import RunStore

from .resume_harness import Script, Scripted, check_log, resume, same_outcome, start_run
from .test_engine_fakes import compile_dict, fanout_spec, hello_spec, text, verdict
from .test_engine_join import join_pipeline
from .test_engine_reduce import PlanOutput, map_reduce, writer_joke
from .test_engine_route import agent, route, seq
from .test_engine_route import pipeline as flow


def _hello_scripts() -> dict[str, Script]:
    def reviewer(ctx: AgentContext) -> AgentOutput:
        return verdict(ctx.attempt >= 2, "too short")

    return {
        "writer_agent": lambda ctx: text(f"draft {ctx.attempt}"),
        "reviewer_agent": reviewer,
    }


@dataclass
class Trial:
    """An uninterrupted run (`expected`), and the same run interrupted then resumed."""

    expected: RunResult
    result: RunResult
    whole: Scripted  # the uninterrupted run's handler calls
    first: Scripted  # the interrupted run's
    second: Scripted  # the resume's
    committed: set[tuple[str, str, int]]  # invocations recorded before the interruption
    log: Path

    def check(self, store: RunStore) -> None:
        """Same outcome; no committed invocation called again; every invocation of the
        uninterrupted run made in one segment or the other; the log verifies."""
        same_outcome(self.result, self.expected)
        again = set(self.second.calls)
        assert not self.committed & again, sorted(self.committed & again)[:5]
        assert set(self.whole.calls) == set(self.first.calls) | again
        assert self.committed and self.second.calls  # it was cut, then went on
        check_log(store, RUN, self.log)


RUN = "run-000000000bbb"


async def trial(
    store: RunStore,
    tmp_path: Path,
    compiled: CompiledPipeline,
    scripts: Callable[[], dict[str, Script]],
    interrupt_at: int,
    run_input: object = "x",
) -> Trial:
    """Run `compiled` whole, then again interrupted at handler call `interrupt_at`, resumed."""
    whole = Scripted(scripts())
    expected = await start_run(
        store, compiled, whole, "run-000000000aaa", tmp_path / "a.jsonl", run_input
    )
    assert expected is not None
    first = Scripted(scripts(), interrupt_at=interrupt_at, scope=trio.CancelScope())
    log = tmp_path / "b.jsonl"
    cut = await start_run(store, compiled, first, RUN, log, run_input, scope=first.scope)
    assert cut is None  # interrupted
    assert store.run(RUN).status == "cancelled"
    committed = set(store.memo(RUN).steps)
    second = Scripted(scripts())
    result = await resume(store, compiled, second, RUN, log)
    return Trial(expected, result, whole, first, second, committed, log)


async def test_a_qa_loop_interrupted_mid_retry_resumes_to_the_same_result(
    tmp_path: Path,
) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        run = await trial(store, tmp_path, compile_dict(hello_spec()), _hello_scripts, 3)
        run.check(store)
        assert run.result.ok
        # writer 1, reviewer 1 were committed before the interruption: not called again.
        assert run.committed == {("writer_agent", "main", 1), ("reviewer_agent", "main", 1)}
        assert run.second.calls == [("writer_agent", "main", 2), ("reviewer_agent", "main", 2)]
        record = store.run(RUN)
        assert (record.status, record.final_state) == ("succeeded", "complete")


def _fanout_scripts() -> dict[str, Script]:
    def qa(ctx: AgentContext) -> AgentOutput:  # every 7th item fails once, then passes
        index = ctx.item.index or 0
        return verdict(index % 7 != 0 or ctx.attempt >= 2, "again")

    return {
        "orchestrator_agent": lambda ctx: AgentOutput(items=[f"task {n}" for n in range(1000)]),
        "worker_agent": lambda ctx: text(f"done {ctx.item.payload} #{ctx.attempt}"),
        "qa_agent": qa,
    }


async def test_a_fan_out_of_1000_items_interrupted_midway_resumes_to_the_same_result(
    tmp_path: Path,
) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        compiled = compile_dict(fanout_spec(max_concurrency=16))
        run = await trial(store, tmp_path, compiled, _fanout_scripts, interrupt_at=1200)
        run.check(store)
        assert run.result.ok and len(run.result.items) == 1001
        # Most of the work was committed before the cut and not done again.
        assert len(run.committed) > 1000
        assert len(run.second.calls) < len(run.whole.calls) - 1000


async def test_a_broadcast_to_two_qa_agents_resumes_to_the_same_result(tmp_path: Path) -> None:
    def scripts() -> dict[str, Script]:
        return {
            "orchestrator_agent": lambda ctx: AgentOutput(items=[f"t{n}" for n in range(12)]),
            "worker_agent": lambda ctx: text(f"w {ctx.item.payload} {ctx.attempt}"),
            "qa_a": lambda ctx: verdict(True),
            "qa_b": lambda ctx: verdict((ctx.item.index or 0) % 3 != 0 or ctx.attempt >= 2, "b"),
        }

    with RunStore.open(str(tmp_path / "store.db")) as store:
        compiled = compile_dict(fanout_spec(qa=("qa_a", "qa_b"), max_concurrency=3))
        run = await trial(store, tmp_path, compiled, scripts, interrupt_at=25)
        run.check(store)
        assert run.result.ok


class _LoopOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: Literal["again", "done"]


async def test_a_route_with_a_bounded_loop_resumes_inside_the_loop(tmp_path: Path) -> None:
    compiled = flow(
        agent(
            "router",
            route(
                {
                    "again": {"target": "worker", "max_iterations": 3, "on_exhausted": "end"},
                    "done": "end",
                }
            ),
            transitions={"on_complete": "running"},
        ),
        agent("worker", seq("router")),
        outputs={"router": _LoopOutput},
    )

    def scripts() -> dict[str, Script]:
        return {
            "router": lambda ctx: _LoopOutput(route="again"),
            "worker": lambda ctx: text(f"pass {ctx.attempt}"),
        }

    with RunStore.open(str(tmp_path / "store.db")) as store:
        run = await trial(store, tmp_path, compiled, scripts, interrupt_at=4)
        run.check(store)
        assert run.result.ok and run.result.items[0].attempts == {"router": 4, "worker": 3}


async def test_a_joined_broadcast_resumes_with_the_join_seeing_every_branch(
    tmp_path: Path,
) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        compiled, handlers = join_pipeline()
        scripts = handlers._scripts
        run = await trial(store, tmp_path, compiled, lambda: dict(scripts), interrupt_at=4)
        run.check(store)
        assert run.result.ok


async def test_a_fan_out_with_a_reduce_resumes_and_reduces_every_child(tmp_path: Path) -> None:
    def scripts() -> dict[str, Script]:
        return {
            "planner": lambda ctx: PlanOutput(subjects=["cats", "dogs", "owls", "bats"]),
            "writer": writer_joke,
            "best": lambda ctx: text(",".join(f"{c.id}:{c.status}" for c in ctx.children)),
            "final": lambda ctx: text(f"final {ctx.upstream.text if ctx.upstream else ''}"),
        }

    with RunStore.open(str(tmp_path / "store.db")) as store:
        run = await trial(store, tmp_path, map_reduce(), scripts, interrupt_at=4)
        run.check(store)
        assert run.result.ok
        assert ("best", "main", 1) in set(run.second.calls)  # the reduce ran in the resume


async def test_a_fan_out_interrupted_twice_resumes_twice_to_the_same_result(
    tmp_path: Path,
) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        compiled = compile_dict(fanout_spec(max_concurrency=8))
        whole = Scripted(_fanout_scripts())
        expected = await start_run(store, compiled, whole, "run-000000000aaa", tmp_path / "a.jsonl")
        assert expected is not None
        log = tmp_path / "b.jsonl"
        first = Scripted(_fanout_scripts(), interrupt_at=700, scope=trio.CancelScope())
        assert await start_run(store, compiled, first, RUN, log, scope=first.scope) is None
        second = Scripted(_fanout_scripts(), interrupt_at=600, scope=trio.CancelScope())
        with second.scope:
            await resume(store, compiled, second, RUN, log)
        assert store.run(RUN).status == "cancelled"
        committed = set(store.memo(RUN).steps)
        third = Scripted(_fanout_scripts())
        result = await resume(store, compiled, third, RUN, log)
        same_outcome(result, expected)
        assert not committed & set(third.calls)
        assert set(whole.calls) == set(first.calls) | set(second.calls) | set(third.calls)
        check_log(store, RUN, log)
        report = verify_log(log)
        assert report.segments == 3
