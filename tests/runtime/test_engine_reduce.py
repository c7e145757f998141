"""DSL v2 typed fan-outs (`items:`) and reduces on the engine (docs/semantics.md, "Reduces")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentflow.runtime.agents import AgentOutput, ChildResult, QAIssue, TextOutput, child_result
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.events.event import EventKind as K

from .test_engine_fakes import kinds, run, text
from .test_engine_route import Scripted, agent, pipeline, route, seq, statuses


class PlanOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subjects: list[str] | None


class JokeOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    joke: str
    score: int


def fan_out(*, reduce: str | None = "best", items: str | None = "subjects") -> dict[str, Any]:
    block: dict[str, Any] = {"strategy": "parallel_fan_out", "target": "writer"}
    if items is not None:
        block["items"] = items
    if reduce is not None:
        block["reduce"] = reduce
    return block


def map_reduce(**writer: Any) -> Any:
    """planner (typed, items: subjects) -> writer per subject; best reduces -> final."""
    return pipeline(
        agent("planner", fan_out()),
        agent("writer", **writer),
        agent("best", seq("final"), transitions={"on_complete": "complete"}),
        agent("final"),
        outputs={"planner": PlanOutput, "writer": JokeOutput},
    )


def writer_joke(ctx: AgentContext) -> JokeOutput:
    return JokeOutput(joke=f"a {ctx.item.payload} joke", score=len(str(ctx.item.payload)))


async def test_a_reduce_runs_once_on_the_parent_after_every_child_and_sees_them_in_order() -> None:
    handlers = Scripted(
        planner=lambda ctx: PlanOutput(subjects=["cats", "dogs", "owls"]),
        writer=writer_joke,
        best=lambda ctx: text("best: " + max(ctx.children, key=lambda c: c.id).id),
        final=lambda ctx: text("done"),
    )
    result, events = await run(map_reduce(), None, handlers)

    assert result.ok, result.reason
    assert [p.payload for p in kinds(events, K.ITEM_CREATED)] == [
        {"parent": "main", "index": k, "payload": s}
        for k, s in enumerate(["cats", "dogs", "owls"], 1)
    ]
    assert sorted((c.item.id, c.item.payload) for c in handlers.of("writer")) == [
        ("item-1", "cats"),
        ("item-2", "dogs"),
        ("item-3", "owls"),
    ]
    # Every child finished before the reduce started, on the parent item.
    order = [(e.kind, e.agent, e.item) for e in kinds(events, K.ITEM_FINISHED, K.AGENT_STARTED)]
    best_start = order.index((K.AGENT_STARTED, "best", "main"))
    assert {o[2] for o in order[:best_start] if o[0] == K.ITEM_FINISHED} == {
        "item-1",
        "item-2",
        "item-3",
    }
    assert [c[:2] for c in handlers.calls if c[0] in ("best", "final")] == [
        ("best", "main"),
        ("final", "main"),
    ]
    (ctx,) = handlers.of("best")
    assert ctx.upstream is not None and ctx.upstream.data == {"subjects": ["cats", "dogs", "owls"]}
    started = next(e for e in kinds(events, K.AGENT_STARTED) if e.agent == "best")
    assert started.payload == {"upstream": "planner"}
    assert ctx.children == (
        ChildResult(id="item-1", status="completed", output=writer_joke_for("cats"), reason=None),
        ChildResult(id="item-2", status="completed", output=writer_joke_for("dogs"), reason=None),
        ChildResult(id="item-3", status="completed", output=writer_joke_for("owls"), reason=None),
    )
    assert ctx.prompt_variables()["children"][0] == {
        "id": "item-1",
        "status": "completed",
        "output": {"joke": "a cats joke", "score": 4},
        "reason": None,
    }
    assert handlers.of("final")[0].children == ()  # only the reduce agent sees them
    assert statuses(result) == {
        "main": "completed",
        "item-1": "completed",
        "item-2": "completed",
        "item-3": "completed",
    }
    assert result.items[0].output == "done"


def writer_joke_for(subject: str) -> JokeOutput:
    return JokeOutput(joke=f"a {subject} joke", score=len(subject))


async def test_failed_and_aborted_children_reach_the_reduce_with_status_and_reason() -> None:
    """item-1 passes its gate, item-2 fails it (no on_fail: the verdict stands), item-3's
    writer raises (the child aborts); item-4's checker never ran: its output is the
    writer's, its status completed."""

    def writer(ctx: AgentContext) -> AgentOutput:
        subject = ctx.item.payload
        if subject == "boom":
            raise RuntimeError("no joke")
        route = "skip" if subject == "lazy" else "check"
        return AgentOutput(text=f"joke about {subject}", data={"route": route})

    def checker(ctx: AgentContext) -> AgentOutput:
        ok = ctx.item.payload == "good"
        return AgentOutput(
            passed=ok, text="checked", issues=[] if ok else [QAIssue(message="unfunny")]
        )

    compiled = pipeline(
        agent("planner", fan_out(items=None)),
        agent(
            "writer",
            route({"check": "checker", "skip": "end"}, on="route"),
        ),
        agent("checker"),
        agent("best"),
        aggregation={
            "strategy": "all_pass",
            "gates": ["checker"],
            "on_complete": {"transition": "complete"},
            "on_any_abort": {"transition": "failed"},
        },
    )
    handlers = Scripted(
        planner=lambda ctx: AgentOutput(items=["good", "bad", "boom", "lazy"]),
        writer=writer,
        checker=checker,
        best=lambda ctx: text(f"{len(ctx.children)} children"),
    )
    result, _ = await run(compiled, None, handlers)

    (ctx,) = handlers.of("best")
    assert ctx.children == (
        ChildResult(
            id="item-1", status="passed", output=TextOutput(text="joke about good"), reason=None
        ),
        ChildResult(
            id="item-2", status="failed", output=TextOutput(text="joke about bad"), reason=None
        ),
        ChildResult(
            id="item-3",
            status="aborted",
            output=None,
            reason="agent 'writer' failed: RuntimeError: no joke",
        ),
        ChildResult(
            id="item-4", status="completed", output=TextOutput(text="joke about lazy"), reason=None
        ),
    )
    # The children still count for the run's aggregation, as in v1.
    assert result.status == "failed"
    assert statuses(result)["main"] == "completed"


async def test_a_fan_out_of_zero_items_runs_the_reduce_with_no_children() -> None:
    handlers = Scripted(
        planner=lambda ctx: PlanOutput(subjects=[]),
        writer=writer_joke,
        best=lambda ctx: text(f"{len(ctx.children)} children"),
        final=lambda ctx: text("done"),
    )
    result, events = await run(map_reduce(), None, handlers)

    assert result.ok, result.reason
    assert kinds(events, K.ITEM_CREATED) == []
    (ctx,) = handlers.of("best")
    assert ctx.children == ()
    assert ctx.prompt_variables()["children"] == []


async def test_items_elements_that_are_objects_reach_children_as_dicts() -> None:
    class Task(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str
        size: int

    class TasksOutput(BaseModel):
        model_config = ConfigDict(extra="forbid")
        tasks: list[Task]

    compiled = pipeline(
        agent("planner", fan_out(items="tasks", reduce=None)),
        agent("writer"),
        outputs={"planner": TasksOutput},
    )
    handlers = Scripted(
        planner=lambda ctx: TasksOutput(tasks=[Task(name="a", size=1), Task(name="b", size=2)]),
        writer=lambda ctx: text(ctx.item.payload["name"]),
    )
    result, events = await run(compiled, None, handlers)

    assert result.ok, result.reason
    assert sorted((c.item.payload for c in handlers.of("writer")), key=str) == [
        {"name": "a", "size": 1},
        {"name": "b", "size": 2},
    ]
    assert kinds(events, K.ITEM_CREATED)[1].payload["payload"] == {"name": "b", "size": 2}


async def test_a_typed_fan_out_whose_items_field_holds_no_list_aborts_its_item() -> None:
    handlers = Scripted(
        planner=lambda ctx: PlanOutput(subjects=None),
        writer=writer_joke,
        best=lambda ctx: text("never"),
        final=lambda ctx: text("never"),
    )
    result, _ = await run(map_reduce(), None, handlers)

    assert result.status == "failed"
    (main,) = result.items
    assert main.reason == (
        "fan-out agent 'planner' returned no list in its output field 'subjects' (items: subjects)"
    )
    assert handlers.of("best") == []


async def test_a_failing_reduce_aborts_the_parent_item() -> None:
    def best(ctx: AgentContext) -> AgentOutput:
        raise ValueError("cannot choose")

    handlers = Scripted(
        planner=lambda ctx: PlanOutput(subjects=["cats"]),
        writer=writer_joke,
        best=best,
        final=lambda ctx: text("never"),
    )
    result, _ = await run(map_reduce(), None, handlers)

    assert result.status == "failed"
    assert statuses(result) == {"main": "aborted", "item-1": "completed"}
    assert result.items[0].reason == "agent 'best' failed: ValueError: cannot choose"
    assert handlers.of("final") == []


class AgainOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: Literal["again", "done"]


async def test_a_fan_out_run_again_on_its_item_numbers_its_new_children_apart() -> None:
    """A loop re-runs the fan-out on `main`: the second run's children are `item-<k>#2`,
    and the reduce sees only the run it follows."""
    compiled = pipeline(
        agent("planner", fan_out()),
        agent("writer"),
        agent(
            "best",
            route({"again": {"target": "planner", "max_iterations": 1}, "done": "end"}),
        ),
        outputs={"planner": PlanOutput, "writer": JokeOutput, "best": AgainOutput},
    )
    handlers = Scripted(
        planner=lambda ctx: PlanOutput(subjects=["x"] * ctx.attempt),
        writer=writer_joke,
        best=lambda ctx: AgainOutput(route="again" if ctx.attempt == 1 else "done"),
    )
    result, _ = await run(compiled, None, handlers)

    assert result.ok, result.reason
    assert [i.id for i in result.items] == ["main", "item-1", "item-1#2", "item-2#2"]
    assert [i.parent for i in result.items] == [None, "main", "main", "main"]
    assert [[c.id for c in ctx.children] for ctx in handlers.of("best")] == [
        ["item-1"],
        ["item-1#2", "item-2#2"],
    ]


def test_child_result_is_a_valid_model() -> None:
    """The engine's unvalidated `child_result` equals, dumps and copies like a validated
    `ChildResult`."""
    output = JokeOutput(joke="j", score=1)
    for args in [
        ("item-1", "completed", output, None),
        ("item-2.3#2", "aborted", None, "agent 'writer' failed: X: y"),
        ("item-3", "passed", TextOutput(text="t"), None),
    ]:
        fast = child_result(*args)
        slow = ChildResult(id=args[0], status=args[1], output=args[2], reason=args[3])
        assert fast == slow
        assert fast.model_dump(mode="json") == slow.model_dump(mode="json")
        assert fast.model_dump_json() == slow.model_dump_json()
        assert fast.model_fields_set == slow.model_fields_set
