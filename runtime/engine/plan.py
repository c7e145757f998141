"""What the engine resolves once per run (or once per pipeline) before the hot path.

`AgentPlan` holds everything an invocation needs about its agent (trigger
members and their moves, dispatch, QA policy) so no spec lookups happen per event;
`ItemState` is one work item's mutable progress; `resolve_handlers` binds an
app's handler object to agent ids.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel

from ..agents import AgentOutput, ChildResult, WorkItem
from ..errors import PipelineDefinitionError
from ..pipeline import CompiledPipeline
from ..spec import AgentSpec, OnFailSpec, PipelineSpec, RouteCase
from .agent_runner import output_kind, run_default_agent, run_typed_agent
from .context import AgentContext
from .human import run_human_step
from .jsonpath import Step, parse_path

__all__ = [
    "AgentPlan",
    "Deferred",
    "Handler",
    "ItemState",
    "RoutePlan",
    "build_plans",
    "resolve_handlers",
    "runs_default_body",
    "trigger_member",
]

Handler = Callable[[AgentContext], Awaitable[AgentOutput | BaseModel]]
Trigger = tuple[Any, str, dict[str, tuple[Any, Any, Any, bool]]]
_EVENTS = ("on_start", "on_complete", "on_pass", "on_fail", "on_abort")

# id(pipeline) -> (pipeline, trigger value -> member, state member -> value). Pipelines
# are module-level constants, so keeping them alive here costs nothing; the identity
# check guards against a reused id.
_STATICS: dict[int, tuple[CompiledPipeline, dict[str, Any], dict[Any, Any]]] = {}


def _statics(pipeline: CompiledPipeline) -> tuple[dict[str, Any], dict[Any, Any]]:
    cached = _STATICS.get(id(pipeline))
    if cached is None or cached[0] is not pipeline:
        triggers = {str(member.value): member for member in pipeline.trigger_type}
        states = {member: member.value for member in pipeline.state_type}
        if len(_STATICS) >= 64:
            _STATICS.clear()
        cached = _STATICS[id(pipeline)] = (pipeline, triggers, states)
    return cached[1], cached[2]


def trigger_member(pipeline: CompiledPipeline, value: str) -> Any | None:
    """The Trigger member whose value is `value` (e.g. "aggregation.on_complete"), or None.

    `CompiledPipeline.trigger` without the Enum call (a cached dict lookup).
    """
    return _statics(pipeline)[0].get(value)


# (id(pipeline), default limit) -> (pipeline, plans): plans hold no per-run state.
_PLANS: dict[tuple[int, int], tuple[CompiledPipeline, dict[str, AgentPlan]]] = {}


def build_plans(pipeline: CompiledPipeline, max_concurrency: int) -> dict[str, AgentPlan]:
    """One `AgentPlan` per agent (cached per pipeline and default concurrency limit).

    `max_concurrency` applies to fan-outs whose dispatch sets no limit of its own.
    """
    key = (id(pipeline), max_concurrency)
    cached = _PLANS.get(key)
    if cached is None or cached[0] is not pipeline:
        triggers, states = _statics(pipeline)
        tagged = _fan_outs_sharing_items(pipeline.spec)
        plans = {
            agent.id: AgentPlan(
                pipeline, agent, max_concurrency, triggers, states, agent.id in tagged
            )
            for agent in pipeline.spec.agents
        }
        if len(_PLANS) >= 64:
            _PLANS.clear()
        cached = _PLANS[key] = (pipeline, plans)
    return cached[1]


def _fan_outs_sharing_items(spec: PipelineSpec) -> frozenset[str]:
    """The fan-out agents that may run on one item beside another fan-out agent (a
    broadcast to two fan-outs, a reduce that fans out again): their children's ids
    name the agent (`item-<agent>-<k>`), as `item-<k>` would name two items."""
    agents = {agent.id: agent for agent in spec.agents}
    fan_outs = {
        agent.id: agent.dispatch.target
        for agent in spec.agents
        if agent.dispatch is not None and agent.dispatch.strategy == "parallel_fan_out"
    }
    if len(fan_outs) < 2:
        return frozenset()
    # Each item starts at the entry agent (`main`) or at a fan-out's target (a child).
    starts = {spec.entry_agent, *(t for t in fan_outs.values() if t is not None)}
    shared: set[str] = set()
    for start in starts:
        seen, pending = {start}, [start]
        while pending:  # the agents that run on the same item as `start`
            agent = agents.get(pending.pop())
            if agent is None:
                continue
            dispatch = agent.dispatch
            nexts: list[str | None] = [agent.on_fail.target if agent.on_fail else None]
            if dispatch is not None:
                nexts += [dispatch.join, dispatch.reduce]
                if dispatch.strategy != "parallel_fan_out":
                    nexts += [dispatch.target, *dispatch.targets]
                    cases = [*dispatch.cases.values(), dispatch.default]
                    nexts += [case.target for case in cases if case is not None]
            for name in nexts:
                if name is not None and name in agents and name not in seen:
                    seen.add(name)
                    pending.append(name)
        on_item = seen & fan_outs.keys()
        if len(on_item) > 1:
            shared |= on_item
    return frozenset(shared)


def runs_default_body(handler: object) -> bool:
    """Whether `handler` is the default agent body: `run_default_agent`, or a method a
    generated module's `DefaultHandlers` defines (a subclass override is the app's own)."""
    from ..engine.agent_runner import run_default_agent

    if handler is run_default_agent:
        return True
    function = getattr(handler, "__func__", handler)
    return str(getattr(function, "__qualname__", "")).startswith("DefaultHandlers.")


def resolve_handlers(pipeline: CompiledPipeline, handlers: object) -> dict[str, Handler]:
    """One coroutine per agent: `getattr(handlers, agent_id)`; None means all defaults
    (`run_typed_agent` with its output model for an agent with `output:`).

    Raises:
        PipelineDefinitionError: `handlers` lacks a method for an agent.
    """
    resolved: dict[str, Handler] = {}
    output_models: Mapping[str, type[BaseModel]] = pipeline.output_models
    for agent in pipeline.spec.agents:
        if handlers is None:
            if agent.handler is not None:
                raise PipelineDefinitionError(
                    f"agent '{agent.id}' runs the function {agent.handler}: pass the "
                    "generated module's DefaultHandlers() (it imports the function), not "
                    "handlers=None"
                )
            if agent.pipeline is not None:
                raise PipelineDefinitionError(
                    f"agent '{agent.id}' runs the sub-pipeline {agent.pipeline}: pass the "
                    "generated module's DefaultHandlers() (it imports the child's module), not "
                    "handlers=None"
                )
            output_model = output_models.get(agent.id)
            if agent.human is not None and output_model is not None:
                resolved[agent.id] = functools.partial(run_human_step, output_model=output_model)
                continue
            resolved[agent.id] = (
                run_default_agent
                if output_model is None
                else functools.partial(run_typed_agent, output_model=output_model)
            )
            continue
        method = getattr(handlers, agent.id, None)
        if not callable(method):
            raise PipelineDefinitionError(
                f"handlers object {type(handlers).__name__} has no method '{agent.id}'; add "
                f"`async def {agent.id}(self, ctx: AgentContext) -> AgentOutput` (the generated "
                "module's Handlers class has a default for every agent)"
            )
        resolved[agent.id] = method
    return resolved


class RoutePlan(NamedTuple):
    """A router's dispatch: the output field it reads, its cases, its default."""

    on: str
    cases: Mapping[str, RouteCase]
    default: RouteCase | None


class AgentPlan:
    """Everything the hot path needs about one agent, resolved once per run.

    `join` / `reduce`: the agent a broadcast / fan-out runs once after its branches
    / children; `items`: the typed fan-out's list field; `route`: a router's cases;
    `gathers`: this agent is some broadcast's join or fan-out's reduce (it reads
    `ctx.joined` / `ctx.children`).
    """

    __slots__ = (
        "feedback_steps",
        "gathers",
        "id",
        "id_tag",
        "is_gate",
        "is_qa",
        "items",
        "join",
        "limit",
        "on_fail",
        "reduce",
        "retried",
        "route",
        "strategy",
        "targets",
        "triggers",
    )

    def __init__(
        self,
        pipeline: CompiledPipeline,
        agent: AgentSpec,
        limit: int,
        triggers: Mapping[str, Any],
        states: Mapping[Any, Any],
        shares_items: bool = False,
    ) -> None:
        aggregation = pipeline.spec.aggregation
        self.id = agent.id
        # What a fan-out puts before its children's numbers: its id when another
        # fan-out may run on the same item (`_fan_outs_sharing_items`), else nothing.
        self.id_tag = f"{agent.id}-" if shares_items else ""
        self.is_gate = aggregation is not None and agent.id in aggregation.gates
        self.is_qa = output_kind(pipeline, agent) == "verdict"
        self.on_fail: OnFailSpec | None = agent.on_fail
        path = agent.on_fail.feedback_path if agent.on_fail is not None else "$.issues"
        self.feedback_steps: tuple[Step, ...] = parse_path(path)
        dispatch = agent.dispatch
        self.strategy: str | None = dispatch.strategy if dispatch is not None else None
        self.targets: tuple[str, ...] = ()
        self.limit = limit
        self.join: str | None = None
        self.reduce: str | None = None
        self.items: str | None = None
        self.route: RoutePlan | None = None
        if dispatch is not None:
            self.targets = (dispatch.target,) if dispatch.target else dispatch.targets
            self.limit = dispatch.max_concurrency or limit
            self.join, self.reduce, self.items = dispatch.join, dispatch.reduce, dispatch.items
            if dispatch.strategy == "route":
                self.route = RoutePlan(dispatch.on or "route", dispatch.cases, dispatch.default)
        self.gathers = any(
            other.dispatch is not None and agent.id in (other.dispatch.join, other.dispatch.reduce)
            for other in pipeline.spec.agents
        )
        # Some QA agent's on_fail sends its items back to this agent: a retry re-runs it
        # with the input of its latest run, so that input is kept (`ItemState.inputs`).
        self.retried = any(
            other.on_fail is not None and other.on_fail.target == agent.id
            for other in pipeline.spec.agents
        )
        # event -> None when the agent declares no move for it, else (Trigger member,
        # its value, {source state name: (target, source value, target value, target is
        # terminal)}) with a row for every non-terminal source state TRANSITIONS lists for
        # the trigger. Keyed by the member's name: hashing an Enum member runs the
        # Python-level Enum.__hash__ (~0.25 us), a name's hash is cached.
        self.triggers: dict[str, Trigger | None] = {}
        for event in _EVENTS:
            trigger = triggers.get(f"{agent.id}.{event}")
            if trigger is None:
                self.triggers[event] = None
                continue
            moves = {
                source._name_: (
                    target,
                    states[source],
                    states[target],
                    target in pipeline.terminal,
                )
                for (source, via), target in pipeline.transitions.items()
                if via is trigger
            }
            self.triggers[event] = (trigger, str(trigger.value), moves)


class Deferred(NamedTuple):
    """A terminal move an agent event requested, held until the run decides."""

    event: str
    trigger: Any
    name: str
    agent: str
    target: Any


class ItemState:
    """One work item's progress through the run."""

    __slots__ = (
        "attempts",
        "children",
        "history",
        "inputs",
        "item",
        "iterations",
        "joined",
        "last",
        "output",
        "outputs",
        "parent",
        "reason",
        "status",
        "verdicts",
    )

    def __init__(self, item: WorkItem, parent: ItemState | None = None) -> None:
        self.item = item
        self.parent = parent  # the item a fan-out started this one from
        # Invariant: agent id -> its latest output on this item (`AgentContext.outputs`).
        self.outputs: dict[str, BaseModel] = {}
        # Invariant: agent id -> every output of it on this item, oldest first.
        self.history: dict[str, tuple[BaseModel, ...]] = {}
        # Invariant: agent id -> invocations of that agent on this item so far.
        self.attempts: dict[str, int] = {}
        # Invariant: QA agent id -> its latest verdict on this item.
        self.verdicts: dict[str, bool] = {}
        # Invariant: agent id -> (source agent, upstream output) of its latest invocation,
        # for the agents a QA retry may re-run (`AgentPlan.retried`) only.
        self.inputs: dict[str, tuple[str | None, AgentOutput | None]] = {}
        self.output = ""  # text of the latest non-QA output
        self.last: BaseModel | None = None  # the latest non-QA output (as in `outputs`)
        # (router, case key; None: the default case) -> times the case was taken on this
        # item (cases with max_iterations only).
        self.iterations: dict[tuple[str, str | None], int] | None = None
        # join agent -> what it sees (`ctx.joined`), set before each run of it on this item.
        self.joined: dict[str, Mapping[str, BaseModel]] | None = None
        # reduce agent -> what it sees (`ctx.children`), set before each run of it.
        self.children: dict[str, tuple[ChildResult, ...]] | None = None
        self.status: str | None = None  # set when aborted, or when the item finishes
        self.reason: str | None = None

    def release(self) -> None:
        """Drop what only a further invocation on this item would read: the item has
        finished. `last`, `output`, `attempts`, `verdicts` and the status stay (the run's
        result and a reduce read them); a 10,000-item fan-out then keeps ~1 KB an item
        less until its run ends (bench/RESULTS.md)."""
        self.outputs.clear()
        self.history.clear()
        self.inputs.clear()

    def visible_outputs(self) -> dict[str, BaseModel]:
        """The latest output per agent on this item or an ancestor, this item's first."""
        if self.parent is None:
            return dict(self.outputs)
        if not self.outputs:  # a child's first agent: its ancestors' outputs alone
            return self.parent.visible_outputs()
        return {**self.parent.visible_outputs(), **self.outputs}
