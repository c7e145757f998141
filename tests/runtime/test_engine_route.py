"""DSL v2 routes and bounded loops on the engine (docs/semantics.md, "Routes and loops").

Pipelines are built from dicts (runtime/spec.py) with their output models written
as the generated module writes them; handlers are scripted. The helpers here are
shared with test_engine_join.py and test_engine_reduce.py.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from agentflow.runtime.agents import AgentOutput, QAIssue, TextOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunResult
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.events.event import PipelineEvent
from agentflow.runtime.pipeline import CompiledPipeline
from agentflow.runtime.usage import Usage

from .test_engine_fakes import compile_dict, kinds, run, text

# -- helpers shared by the v2 control-flow engine tests ---------------------------------


def agent(agent_id: str, dispatch: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"id": agent_id, "prompt": "p.md", **more}
    if dispatch is not None:
        spec["dispatch"] = dispatch
    return spec


def route(cases: dict[str, Any], *, on: str = "route", default: Any = None) -> dict[str, Any]:
    """A route dispatch; a case given as a string is its target."""
    block: dict[str, Any] = {
        "strategy": "route",
        "on": on,
        "cases": {k: {"target": v} if isinstance(v, str) else v for k, v in cases.items()},
    }
    if default is not None:
        block["default"] = {"target": default} if isinstance(default, str) else default
    return block


def seq(target: str) -> dict[str, Any]:
    return {"strategy": "sequential", "target": target}


def pipeline(
    *agents: dict[str, Any],
    outputs: dict[str, type[BaseModel]] | None = None,
    **extra: Any,
) -> CompiledPipeline:
    """A pipeline with the default state machine (running -> complete | failed)."""
    spec: dict[str, Any] = {
        "name": "v2-flow",
        "defaults": {"retry": {"max_attempts": 3, "backoff_ms": 0}},
        "state_machine": {
            "initial": "running",
            "terminal": ["complete", "failed"],
            "states": [{"id": "running"}, {"id": "complete"}, {"id": "failed"}],
        },
        "implicit_state_machine": "aggregation" not in extra,
        "agents": list(agents),
        **extra,
    }
    return dataclasses.replace(compile_dict(spec), output_models=outputs or {})


class Scripted:
    """One scripted coroutine per agent, answering anything (typed outputs included);
    `calls` records (agent, item, attempt) in call order, `contexts` the contexts."""

    def __init__(self, **scripts: Callable[[AgentContext], Any]) -> None:
        self._scripts = scripts
        self.calls: list[tuple[str, str, int]] = []
        self.contexts: list[AgentContext] = []

    def __getattr__(self, name: str) -> Callable[[AgentContext], Any]:
        if name.startswith("_") or name not in self._scripts:
            raise AttributeError(name)
        script = self._scripts[name]

        async def handler(ctx: AgentContext) -> Any:
            self.calls.append((ctx.agent, ctx.item.id, ctx.attempt))
            self.contexts.append(ctx)
            result = script(ctx)
            return await result if inspect.isawaitable(result) else result

        return handler

    def of(self, agent_id: str) -> list[AgentContext]:
        return [c for c in self.contexts if c.agent == agent_id]


def payloads(events: list[PipelineEvent], kind: K) -> list[dict[str, Any]]:
    return [e.payload for e in kinds(events, kind)]


def statuses(result: RunResult) -> dict[str, str]:
    return {i.id: i.status for i in result.items}


# -- routes -------------------------------------------------------------------------


class TriageOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: Literal["billing", "bug", "question", "spam"]
    note: str = ""


def triage_pipeline(default: str | None = None) -> CompiledPipeline:
    cases: dict[str, Any] = {
        "billing": "billing_agent",
        "bug": "bug_agent",
        "question": "end",
        "spam": "abort",
    }
    if default is not None:
        del cases["bug"]
    return pipeline(
        agent(
            "triage",
            route(cases, on="category", default=default),
            transitions={"on_complete": "running", "on_abort": "failed"},
        ),
        agent("billing_agent"),
        agent("bug_agent"),
        outputs={"triage": TriageOutput},
    )


def triage_handlers(category: str) -> Scripted:
    return Scripted(
        triage=lambda ctx: TriageOutput(category=category, note="n"),  # type: ignore[arg-type]
        billing_agent=lambda ctx: text("refunded"),
        bug_agent=lambda ctx: text(f"filed: {ctx.upstream.text if ctx.upstream else ''}"),
    )


async def test_a_router_runs_the_case_its_typed_output_names_with_the_routers_output() -> None:
    handlers = triage_handlers("bug")
    result, events = await run(triage_pipeline(), "ticket", handlers)

    assert result.ok, result.reason
    assert handlers.calls == [("triage", "main", 1), ("bug_agent", "main", 1)]
    assert payloads(events, K.ROUTE_CHOSEN) == [
        {"on": "category", "value": "bug", "case": "bug", "to": "bug_agent"}
    ]
    chosen = kinds(events, K.ROUTE_CHOSEN)[0]
    assert (chosen.agent, chosen.item, chosen.attempt) == ("triage", "main", 1)
    (bug_ctx,) = handlers.of("bug_agent")
    assert bug_ctx.upstream is not None
    assert bug_ctx.upstream.data == {"category": "bug", "note": "n"}
    started = [e for e in kinds(events, K.AGENT_STARTED) if e.agent == "bug_agent"]
    assert started[0].payload == {"upstream": "triage"}
    assert result.items[0].output == 'filed: {"category": "bug", "note": "n"}'


async def test_an_end_case_ends_the_item_successfully_with_the_routers_output() -> None:
    handlers = triage_handlers("question")
    result, events = await run(triage_pipeline(), "ticket", handlers)

    assert result.ok, result.reason
    assert result.final_state == "complete"
    assert handlers.calls == [("triage", "main", 1)]
    assert payloads(events, K.ROUTE_CHOSEN) == [
        {"on": "category", "value": "question", "case": "question", "to": "end"}
    ]
    (main,) = result.items
    assert (main.status, main.reason) == ("completed", None)
    assert main.output == '{"category": "question", "note": "n"}'


async def test_an_abort_case_aborts_the_item_naming_the_router_and_case() -> None:
    handlers = triage_handlers("spam")
    result, events = await run(triage_pipeline(), "ticket", handlers)

    assert result.status == "failed"
    assert result.final_state == "failed"  # the router's on_abort fired
    (main,) = result.items
    assert main.status == "aborted"
    assert main.reason == "router 'triage' chose case 'spam' (abort)"
    assert [e.kind for e in events if e.agent == "triage"] == [
        K.AGENT_STARTED,
        K.AGENT_COMPLETED,
        K.TRANSITION,  # on_complete, before the route is chosen
        K.ROUTE_CHOSEN,
        K.ITEM_ABORTED,
        K.TRANSITION_DEFERRED,
        K.TRANSITION,  # the deferred on_abort move, taken when the run ends
    ]


async def test_a_value_no_case_names_takes_the_default_case() -> None:
    handlers = triage_handlers("bug")
    result, events = await run(triage_pipeline(default="billing_agent"), "t", handlers)

    assert result.ok, result.reason
    assert payloads(events, K.ROUTE_CHOSEN) == [
        {"on": "category", "value": "bug", "case": "default", "to": "billing_agent"}
    ]
    assert [c[0] for c in handlers.calls] == ["triage", "billing_agent"]


class CheckOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: bool


@pytest.mark.parametrize(("ok", "ran"), [(True, "ship"), (False, "fix")])
async def test_a_bool_field_routes_by_its_true_and_false_cases(ok: bool, ran: str) -> None:
    compiled = pipeline(
        agent("check", route({"true": "ship", "false": "fix"}, on="ok")),
        agent("ship"),
        agent("fix"),
        outputs={"check": CheckOutput},
    )
    handlers = Scripted(
        check=lambda ctx: CheckOutput(ok=ok), ship=lambda c: text("s"), fix=lambda c: text("f")
    )
    result, events = await run(compiled, None, handlers)

    assert result.ok, result.reason
    assert [c[0] for c in handlers.calls] == ["check", ran]
    assert payloads(events, K.ROUTE_CHOSEN) == [
        {"on": "ok", "value": ok, "case": str(ok).lower(), "to": ran}
    ]


async def test_routes_are_chosen_per_item_on_fanned_out_children() -> None:
    compiled = pipeline(
        agent("split", {"strategy": "parallel_fan_out", "target": "triage"}),
        agent("triage", route({"billing": "billing_agent", "bug": "end"}, on="category")),
        agent("billing_agent"),
        outputs={"triage": TriageOutput},
    )
    handlers = Scripted(
        split=lambda ctx: AgentOutput(items=["billing", "bug", "billing"]),
        triage=lambda ctx: TriageOutput(category=ctx.item.payload),
        billing_agent=lambda ctx: text("refunded"),
    )
    result, _ = await run(compiled, None, handlers)

    assert result.ok, result.reason
    assert sorted(c[1] for c in handlers.calls if c[0] == "billing_agent") == [
        "item-1",
        "item-3",
    ]
    outputs = {i.id: i.output for i in result.items}
    assert outputs["item-2"] == '{"category": "bug", "note": ""}'
    assert outputs["item-1"] == "refunded"


# -- bounded loops --------------------------------------------------------------------


class ReplanOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: Literal["more", "done"]


def loop_pipeline(
    max_iterations: int, on_exhausted: str = "abort", *, qa: bool = False
) -> CompiledPipeline:
    """planner -> executor [-> checker (QA)] -> replanner; replanner: more -> executor
    (bounded), done -> end."""
    more = {"target": "executor", "max_iterations": max_iterations, "on_exhausted": on_exhausted}
    agents = [
        agent("planner", seq("executor")),
        agent("executor", seq("checker" if qa else "replanner")),
        agent(
            "replanner",
            route({"more": more, "done": "end"}),
            transitions={"on_abort": "failed"},
        ),
    ]
    if qa:
        agents.append(
            agent(
                "checker",
                seq("replanner"),
                on_fail={"action": "feedback_and_retry", "target": "executor"},
            )
        )
    return pipeline(*agents, outputs={"replanner": ReplanOutput})


def loop_handlers(routes: Callable[[AgentContext], str]) -> Scripted:
    return Scripted(
        planner=lambda ctx: text("plan"),
        executor=lambda ctx: text(f"step {ctx.attempt}"),
        replanner=lambda ctx: ReplanOutput(route=routes(ctx)),  # type: ignore[arg-type]
    )


async def test_a_loop_case_is_taken_max_iterations_times_then_on_exhausted_end_ends_the_item() -> (
    None
):
    handlers = loop_handlers(lambda ctx: "more")
    result, events = await run(loop_pipeline(3, "end"), None, handlers)

    assert result.ok, result.reason
    assert [c[:3] for c in handlers.calls] == [
        ("planner", "main", 1),
        ("executor", "main", 1),
        ("replanner", "main", 1),
        ("executor", "main", 2),
        ("replanner", "main", 2),
        ("executor", "main", 3),
        ("replanner", "main", 3),
        ("executor", "main", 4),
        ("replanner", "main", 4),
    ]
    base = {"on": "route", "value": "more", "case": "more", "max_iterations": 3}
    assert payloads(events, K.ROUTE_CHOSEN) == [
        {**base, "to": "executor", "iteration": 1},
        {**base, "to": "executor", "iteration": 2},
        {**base, "to": "executor", "iteration": 3},
        {**base, "to": "end", "iteration": 4, "exhausted": True},
    ]
    attempts = [e.attempt for e in kinds(events, K.ROUTE_CHOSEN)]
    assert attempts == [1, 2, 3, 4]  # attempts keep counting the router's invocations
    (main,) = result.items
    assert (main.status, main.attempts) == (
        "completed",
        {"planner": 1, "executor": 4, "replanner": 4},
    )
    assert main.output == '{"route": "more"}'  # the latest output: the router's


async def test_history_grows_per_iteration_and_upstream_is_the_routers_output() -> None:
    handlers = loop_handlers(lambda ctx: "more" if ctx.attempt < 3 else "done")
    result, _ = await run(loop_pipeline(5), None, handlers)

    assert result.ok, result.reason
    executors = handlers.of("executor")
    assert [len(c.history.get("executor", ())) for c in executors] == [0, 1, 2]
    assert executors[2].history["executor"] == (
        TextOutput(text="step 1"),
        TextOutput(text="step 2"),
    )
    assert [c.upstream.text if c.upstream else None for c in executors] == [
        "plan",
        '{"route": "more"}',
        '{"route": "more"}',
    ]
    assert [len(c.history.get("replanner", ())) for c in handlers.of("replanner")] == [0, 1, 2]


async def test_an_exhausted_loop_aborts_the_item_naming_router_case_and_bound() -> None:
    handlers = loop_handlers(lambda ctx: "more")
    result, events = await run(loop_pipeline(2), None, handlers)

    assert result.status == "failed"
    assert result.final_state == "failed"
    (main,) = result.items
    assert main.status == "aborted"
    assert main.reason == (
        "router 'replanner' chose case 'more' again after 2 iteration(s): "
        "max_iterations 2 exhausted"
    )
    assert payloads(events, K.ROUTE_CHOSEN)[-1] == {
        "on": "route",
        "value": "more",
        "case": "more",
        "to": "abort",
        "iteration": 3,
        "max_iterations": 2,
        "exhausted": True,
    }
    deferred = kinds(events, K.TRANSITION_DEFERRED)
    assert [(e.agent, e.payload["trigger"]) for e in deferred] == [
        ("replanner", "replanner.on_abort")
    ]


async def test_iterations_are_counted_per_item_and_per_router_and_case() -> None:
    """Two bounded cases of one router count separately; each fanned-out item has its
    own counters."""
    compiled = pipeline(
        agent("split", {"strategy": "parallel_fan_out", "target": "worker"}),
        agent("worker", seq("judge")),
        agent(
            "judge",
            route(
                {
                    "more": {"target": "worker", "max_iterations": 2, "on_exhausted": "end"},
                    "done": {"target": "worker", "max_iterations": 1, "on_exhausted": "end"},
                }
            ),
        ),
        outputs={"judge": ReplanOutput},
    )
    # per item: more, done, more, done(exhausted: end)
    script = ["more", "done", "more", "done"]
    handlers = Scripted(
        split=lambda ctx: AgentOutput(items=["a", "b"]),
        worker=lambda ctx: text(f"{ctx.item.payload}{ctx.attempt}"),
        judge=lambda ctx: ReplanOutput(route=script[ctx.attempt - 1]),  # type: ignore[arg-type]
    )
    result, events = await run(compiled, None, handlers)

    assert result.ok, result.reason
    for item in ("item-1", "item-2"):
        chosen = [e.payload for e in kinds(events, K.ROUTE_CHOSEN) if e.item == item]
        assert [(p["case"], p["iteration"], p["to"]) for p in chosen] == [
            ("more", 1, "worker"),
            ("done", 1, "worker"),
            ("more", 2, "worker"),
            ("done", 2, "end"),
        ]
    assert {i.id: i.attempts.get("worker") for i in result.items} == {
        "main": None,
        "item-1": 4,
        "item-2": 4,
    }


async def test_a_loop_of_1000_iterations_does_not_grow_the_stack() -> None:
    handlers = loop_handlers(lambda ctx: "more")
    result, events = await run(loop_pipeline(1000, "end"), None, handlers)

    assert result.ok, result.reason
    assert result.items[0].attempts == {"planner": 1, "executor": 1001, "replanner": 1001}
    last = payloads(events, K.ROUTE_CHOSEN)[-1]
    assert (last["iteration"], last["to"], last["exhausted"]) == (1001, "end", True)


async def test_a_qa_agents_attempts_inside_a_loop_stay_per_item_across_iterations() -> None:
    """The checker fails once per iteration; with max_attempts 3 its third failure (in
    the third iteration) aborts the item although each iteration failed only once."""

    def checker(ctx: AgentContext) -> AgentOutput:
        fixed = ctx.upstream is not None and ctx.upstream.text == "fixed"
        return AgentOutput(passed=fixed, issues=[] if fixed else [QAIssue(message="again")])

    handlers = Scripted(
        planner=lambda ctx: text("plan"),
        executor=lambda ctx: text("fixed" if ctx.feedback else "draft"),
        checker=checker,
        replanner=lambda ctx: ReplanOutput(route="more"),
    )
    result, events = await run(loop_pipeline(5, qa=True), None, handlers)

    assert result.status == "failed"
    (main,) = result.items
    assert main.reason == "QA agent 'checker' failed 3 times; max_attempts 3 exhausted"
    # iteration 1: fail, retry, pass; iteration 2: fail, retry, pass; iteration 3: fail
    assert [p["iteration"] for p in payloads(events, K.ROUTE_CHOSEN)] == [1, 2]
    assert main.attempts["executor"] == 5
    assert main.attempts["checker"] == 5


async def test_a_budget_exceeded_inside_a_loop_ends_the_run() -> None:
    def executor(ctx: AgentContext) -> AgentOutput:
        assert ctx.services is not None
        ctx.services.budget.charge(Usage(input_tokens=40))
        return text("step")

    handlers = Scripted(
        planner=lambda ctx: text("plan"),
        executor=executor,
        replanner=lambda ctx: ReplanOutput(route="more"),
    )
    result, events = await run(loop_pipeline(50), None, handlers, max_total_tokens=100)

    assert result.status == "cancelled"
    assert result.reason is not None and "max_total_tokens=100" in result.reason
    assert result.items[0].attempts["executor"] == 3  # 120 tokens > 100 on the third step
    assert len(kinds(events, K.BUDGET_EXCEEDED)) == 1
    assert kinds(events, K.ROUTE_CHOSEN)[-1].payload["iteration"] == 2


async def test_a_value_no_case_handles_without_a_default_aborts_the_item() -> None:
    """Only a hand-built pipeline gets here: the compiler requires every value to have a
    case, or a default; a router without an output model routes on `AgentOutput.data`."""
    compiled = pipeline(
        agent("triage", route({"billing": "billing_agent"})), agent("billing_agent")
    )
    handlers = Scripted(
        triage=lambda ctx: AgentOutput(text="?", data={"route": "refund"}),
        billing_agent=lambda ctx: text("never"),
    )
    result, events = await run(compiled, None, handlers)

    assert result.status == "failed"
    assert result.items[0].reason == (
        "router 'triage' answered route='refund', which no case handles, and it has no default"
    )
    assert kinds(events, K.ROUTE_CHOSEN) == []


async def test_an_item_that_ends_before_its_gate_is_completed_and_not_counted_by_aggregation() -> (
    None
):
    compiled = pipeline(
        agent("split", {"strategy": "parallel_fan_out", "target": "triage"}),
        agent("triage", route({"billing": "gate", "bug": "end"}, on="category")),
        agent("gate", on_fail={"action": "abort"}),
        outputs={"triage": TriageOutput},
        aggregation={
            "strategy": "all_pass",
            "gates": ["gate"],
            "on_complete": {"transition": "complete"},
            "on_any_abort": {"transition": "failed"},
        },
    )
    handlers = Scripted(
        split=lambda ctx: AgentOutput(items=["billing", "bug"]),
        triage=lambda ctx: TriageOutput(category=ctx.item.payload),
        gate=lambda ctx: AgentOutput(passed=True),
    )
    result, events = await run(compiled, None, handlers)

    assert result.ok, result.reason
    assert statuses(result) == {"main": "completed", "item-1": "passed", "item-2": "completed"}
    (aggregation,) = payloads(events, K.AGGREGATION)
    assert (aggregation["passed"], aggregation["decision"]) == (1, "on_complete")


class OddOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: Literal["default", "other"]


async def test_a_case_named_default_and_the_default_case_count_their_iterations_apart() -> None:
    compiled = pipeline(
        agent("worker", seq("judge")),
        agent(
            "judge",
            route(
                {"default": {"target": "worker", "max_iterations": 1, "on_exhausted": "end"}},
                default={"target": "worker", "max_iterations": 1},
            ),
        ),
        outputs={"judge": OddOutput},
    )
    script = ["default", "other", "default"]
    handlers = Scripted(
        worker=lambda ctx: text("w"),
        judge=lambda ctx: OddOutput(route=script[ctx.attempt - 1]),  # type: ignore[arg-type]
    )
    result, events = await run(compiled, None, handlers)

    assert result.ok, result.reason
    assert [(p["value"], p["case"], p["iteration"], p["to"]) for p in payloads(
        events, K.ROUTE_CHOSEN
    )] == [
        ("default", "default", 1, "worker"),
        ("other", "default", 1, "worker"),
        ("default", "default", 2, "end"),
    ]  # fmt: skip
