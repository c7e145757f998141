"""DSL v2 joins on the engine: `join:` on a broadcast (docs/semantics.md, "Joins")."""

from __future__ import annotations

from typing import Any, Literal

import trio
from pydantic import BaseModel, ConfigDict

from agentflow.runtime.agents import AgentOutput, BranchFailure, QAIssue, TextOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.dispatcher import UNFINISHED
from agentflow.runtime.engine.runner import run_pipeline
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.usage import Usage

from .test_engine_fakes import kinds, run, text
from .test_engine_route import Scripted, agent, payloads, pipeline, route, seq


class StoryOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    words: int


def broadcast(*targets: str, join: str | None = "combiner") -> dict[str, Any]:
    block: dict[str, Any] = {"strategy": "parallel_broadcast", "targets": list(targets)}
    if join is not None:
        block["join"] = join
    return block


def join_pipeline(*, story_fails: bool = False) -> tuple[Any, Scripted]:
    """topic -> [joke, story, poem] joined by combiner -> final."""
    compiled = pipeline(
        agent("topic", broadcast("joke", "story", "poem")),
        agent("joke"),
        agent("story"),
        agent("poem"),
        agent("combiner", seq("final"), transitions={"on_complete": "complete"}),
        agent("final"),
        outputs={"story": StoryOutput},
    )

    def story(ctx: AgentContext) -> StoryOutput:
        if story_fails:
            raise ValueError("no plot")
        return StoryOutput(title="cats", words=300)

    handlers = Scripted(
        topic=lambda ctx: text("cats"),
        joke=lambda ctx: text("a cat joke"),
        story=story,
        poem=lambda ctx: text("a cat poem"),
        combiner=lambda ctx: text("combined"),
        final=lambda ctx: text("final"),
    )
    return compiled, handlers


async def test_the_join_runs_once_after_every_branch_and_sees_each_targets_output() -> None:
    compiled, handlers = join_pipeline()
    result, events = await run(compiled, None, handlers)

    assert result.ok, result.reason
    agents = [c[0] for c in handlers.calls]
    assert agents[0] == "topic" and agents[-2:] == ["combiner", "final"]
    assert sorted(agents[1:4]) == ["joke", "poem", "story"]
    started = [e for e in kinds(events, K.AGENT_STARTED, K.AGENT_COMPLETED)]
    combiner_start = next(
        i for i, e in enumerate(started) if e.agent == "combiner" and e.kind == K.AGENT_STARTED
    )
    branch_ends = [
        i for i, e in enumerate(started) if e.agent in ("joke", "story", "poem")
    ]  # every branch started and completed before the join started
    assert max(branch_ends) < combiner_start
    assert started[combiner_start].payload == {"upstream": "topic"}
    (ctx,) = handlers.of("combiner")
    assert ctx.upstream is not None and ctx.upstream.text == "cats"
    assert dict(ctx.joined) == {
        "joke": TextOutput(text="a cat joke"),
        "story": StoryOutput(title="cats", words=300),
        "poem": TextOutput(text="a cat poem"),
    }
    assert ctx.prompt_variables()["joined"] == {
        "joke": {"text": "a cat joke"},
        "story": {"title": "cats", "words": 300},
        "poem": {"text": "a cat poem"},
    }
    # The join continues the item's path with its own dispatch; other agents see no join.
    (final,) = handlers.of("final")
    assert final.upstream is not None and final.upstream.text == "combined"
    assert dict(final.joined) == {} and final.prompt_variables()["joined"] == {}
    # The join is an ordinary agent for the state machine.
    deferred = kinds(events, K.TRANSITION_DEFERRED)
    assert [(e.agent, e.payload["trigger"]) for e in deferred] == [
        ("combiner", "combiner.on_complete")
    ]


async def test_a_failed_branch_is_shown_to_the_join_as_a_failure_and_the_item_goes_on() -> None:
    compiled, handlers = join_pipeline(story_fails=True)
    result, events = await run(compiled, None, handlers)

    assert result.ok, result.reason
    (main,) = result.items
    assert (main.status, main.reason, main.output) == ("completed", None, "final")
    failed = kinds(events, K.AGENT_FAILED)
    assert [(e.agent, e.payload) for e in failed] == [
        ("story", {"error": "ValueError", "message": "no plot"})
    ]
    assert kinds(events, K.ITEM_ABORTED) == []
    (ctx,) = handlers.of("combiner")
    assert ctx.joined["story"] == BranchFailure(error="ValueError: no plot")
    assert ctx.joined["joke"] == TextOutput(text="a cat joke")
    assert ctx.prompt_variables()["joined"]["story"] == {
        "failed": True,
        "error": "ValueError: no plot",
    }
    assert "failed" not in ctx.prompt_variables()["joined"]["joke"]


def qa_join_pipeline(max_attempts: int) -> Any:
    """topic -> [writer, reviewer (QA, retries topic)] joined by combiner."""
    return pipeline(
        agent("topic", broadcast("writer", "reviewer")),
        agent("writer"),
        agent(
            "reviewer",
            on_fail={"action": "feedback_and_retry", "target": "topic"},
            retry={"max_attempts": max_attempts, "backoff_ms": 0},
            transitions={"on_abort": "failed"},
        ),
        agent("combiner"),
    )


def qa_join_handlers(passes_on: int) -> Scripted:
    def reviewer(ctx: AgentContext) -> AgentOutput:
        ok = ctx.attempt >= passes_on
        issues = [] if ok else [QAIssue(message="weak")]
        return AgentOutput(passed=ok, text=f"review {ctx.attempt}", issues=issues)

    return Scripted(
        topic=lambda ctx: text(f"topic {ctx.attempt}"),
        writer=lambda ctx: text(f"draft {ctx.attempt}"),
        reviewer=reviewer,
        combiner=lambda ctx: text("combined"),
    )


async def test_a_qa_branch_retry_flows_through_the_broadcast_and_only_the_final_pass_joins() -> (
    None
):
    handlers = qa_join_handlers(passes_on=2)
    result, events = await run(qa_join_pipeline(3), None, handlers)

    assert result.ok, result.reason
    assert [c for c in handlers.calls if c[0] in ("topic", "combiner")] == [
        ("topic", "main", 1),
        ("topic", "main", 2),
        ("combiner", "main", 1),
    ]
    assert len(kinds(events, K.RETRY_SCHEDULED)) == 1
    (ctx,) = handlers.of("combiner")
    assert dict(ctx.joined) == {
        "writer": TextOutput(text="draft 2"),
        "reviewer": TextOutput(text="review 2"),
    }
    assert ctx.upstream is not None and ctx.upstream.text == "topic 2"
    assert result.items[0].status == "passed"


async def test_a_qa_branch_that_exhausts_its_retries_aborts_the_item_without_the_join() -> None:
    handlers = qa_join_handlers(passes_on=99)
    result, _ = await run(qa_join_pipeline(2), None, handlers)

    assert result.status == "failed"
    (main,) = result.items
    assert main.status == "aborted"
    assert main.reason == "QA agent 'reviewer' failed 2 times; max_attempts 2 exhausted"
    assert handlers.of("combiner") == []


class LoopOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: Literal["again", "done"]


async def test_a_loop_through_a_joined_broadcast_runs_1000_iterations_without_recursion() -> None:
    compiled = pipeline(
        agent("topic", broadcast("a", "b")),
        agent("a"),
        agent("b"),
        agent(
            "combiner",
            route(
                {
                    "again": {"target": "topic", "max_iterations": 1000, "on_exhausted": "end"},
                    "done": "end",
                }
            ),
        ),
        outputs={"combiner": LoopOutput},
    )
    handlers = Scripted(
        topic=lambda ctx: text("t"),
        a=lambda ctx: text(f"a{ctx.attempt}"),
        b=lambda ctx: text(f"b{ctx.attempt}"),
        combiner=lambda ctx: LoopOutput(route="again"),
    )
    result, events = await run(compiled, None, handlers)

    assert result.ok, result.reason
    assert result.items[0].attempts == {"topic": 1001, "a": 1001, "b": 1001, "combiner": 1001}
    last = handlers.of("combiner")[-1]
    assert dict(last.joined) == {"a": TextOutput(text="a1001"), "b": TextOutput(text="b1001")}
    assert payloads(events, K.ROUTE_CHOSEN)[-1]["exhausted"] is True


async def test_a_failing_join_agent_aborts_the_item_like_any_agent() -> None:
    compiled, handlers = join_pipeline()

    def combiner(ctx: AgentContext) -> AgentOutput:
        raise RuntimeError("cannot combine")

    handlers._scripts["combiner"] = combiner
    result, events = await run(compiled, None, handlers)

    assert result.status == "failed"
    (main,) = result.items
    assert (main.status, main.reason) == (
        "aborted",
        "agent 'combiner' failed: RuntimeError: cannot combine",
    )
    assert handlers.of("final") == []
    assert [e.agent for e in kinds(events, K.ITEM_ABORTED)] == ["combiner"]


async def test_a_run_ending_error_in_a_joined_branch_ends_the_run_not_just_the_branch() -> None:
    """A budget exceeded in a branch is not a BranchFailure: the run ends, the join never
    runs, and the branch's sibling is cancelled."""
    compiled, handlers = join_pipeline()

    def story(ctx: AgentContext) -> StoryOutput:
        assert ctx.services is not None
        ctx.services.budget.charge(Usage(input_tokens=500))
        return StoryOutput(title="never", words=0)

    async def poem(ctx: AgentContext) -> AgentOutput:
        await trio.sleep(100)
        return text("never")

    handlers._scripts.update(story=story, poem=poem)
    with trio.fail_after(30):  # a safety net only: the budget cancels the sleeping poem
        result, events = await run(compiled, None, handlers, max_total_tokens=100)

    assert result.status == "cancelled"
    assert handlers.of("combiner") == []
    assert [e.agent for e in kinds(events, K.AGENT_FAILED)] == []  # budget_exceeded instead
    assert len(kinds(events, K.BUDGET_EXCEEDED)) == 1
    (main,) = result.items
    assert (main.status, main.reason) == ("aborted", UNFINISHED)


async def test_cancelling_a_run_inside_a_loop_ends_it_cancelled(autojump_clock: object) -> None:
    async def replanner(ctx: AgentContext) -> LoopOutput:
        if ctx.attempt == 3:
            await trio.sleep(100)
        return LoopOutput(route="again")

    compiled = pipeline(
        agent("topic", broadcast("a", "b")),
        agent("a"),
        agent("b"),
        agent("combiner", route({"again": {"target": "topic", "max_iterations": 9}})),
        outputs={"combiner": LoopOutput},
    )
    handlers = Scripted(
        topic=lambda ctx: text("t"),
        a=lambda ctx: text("a"),
        b=lambda ctx: text("b"),
        combiner=replanner,
    )
    sink = MemorySink()
    with trio.move_on_after(5) as scope:
        await run_pipeline(compiled, None, handlers=handlers, sinks=[sink])

    assert scope.cancelled_caught
    assert [e.kind for e in sink.events[-3:]] == [K.RUN_CANCELLED, K.RUN_FINISHED, K.LOG_SEALED]
    assert sink.events[-2].payload["status"] == "cancelled"
    assert [e.payload["iteration"] for e in kinds(sink.events, K.ROUTE_CHOSEN)] == [1, 2]
