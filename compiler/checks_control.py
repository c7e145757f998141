"""Semantic checks of DSL v2 part 2's control flow: routes, bounded loops, joins, reduces,
typed fan-out items (DSL-V2.md sections 4 and 5).

A router routes on an enum or bool field of its typed output (`on`, by default the
`route` field of the implicit output lower.py gives a router without `output:`); its
case keys are that field's values, its targets agents, `end` or `abort`. A case with
`max_iterations` must close a cycle; that every cycle has such a case is
`check_dispatch_cycles`' rule, and two parallel branches meeting `check_parallel_paths`'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from agentflow.runtime.spec import RESERVED_TARGETS, AgentSpec, NamedField, RouteCase

from .checks_base import CheckContext, agent_paths
from .diagnostics import Diagnostic, did_you_mean
from .flow import can_reach, describe_type, dispatch_edges, unbounded_graph
from .parse import Path

__all__ = ["check_fan_out_cycles", "check_gathers", "check_route"]

_BOOL_CASES = ("true", "false")
"""The case keys of a route on a bool field."""
_DEFAULT_CASE = "default"
"""What a run calls a router's `default` (route_chosen's "case", the dry run's --route)."""


def check_route(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Reserved ids; route keys only with `strategy: route`; each router's field, case
    keys, exhaustiveness, targets and loop bounds."""
    built: list[dict[str, list[str]]] = []

    def graph() -> dict[str, list[str]]:
        """The dispatch graph, built once, on the first router with a bounded case."""
        if not built:
            edges: dict[str, list[str]] = {}
            for edge in dispatch_edges(ctx.spec):
                edges.setdefault(edge.source, []).append(edge.target)
            built.append(edges)
        return built[0]

    for path, agent in agent_paths(ctx):
        if agent.id in RESERVED_TARGETS:
            yield ctx.at(
                (*path, "id"),
                f"agent id '{agent.id}' is reserved: a route case with target '{agent.id}' "
                f"{'ends' if agent.id == 'end' else 'aborts'} the item; rename the agent",
            )
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        where = (*path, "dispatch")
        if dispatch.strategy != "route":
            for key in ("on", "cases", "default"):
                if ctx.source.has((*where, key)):
                    yield _error_at_key(
                        ctx,
                        (*where, key),
                        f"'{key}' only applies to strategy route, not {dispatch.strategy}; "
                        "remove it or use 'strategy: route'",
                    )
            continue
        yield from _router_problems(ctx, agent, where, graph)


def _error_at_key(ctx: CheckContext, path: Path, message: str) -> Diagnostic:
    loc = ctx.source.key(path)
    return Diagnostic(loc.file, loc.line, loc.column, message)


def _router_problems(
    ctx: CheckContext, agent: AgentSpec, where: Path, graph: Callable[[], dict[str, list[str]]]
) -> Iterator[Diagnostic]:
    dispatch = agent.dispatch
    assert dispatch is not None
    for key in ("target", "targets"):
        if ctx.source.has((*where, key)):
            yield _error_at_key(
                ctx,
                (*where, key),
                f"strategy route sends each item to one of its cases' targets, not '{key}'; "
                "name the agent in a case (e.g. 'cases: {done: next_agent}')",
            )
    if dispatch.max_concurrency is not None:
        loc = ctx.source.key((*where, "max_concurrency"))
        yield Diagnostic(
            loc.file,
            loc.line,
            loc.column,
            "max_concurrency has no effect with route dispatch (one case runs); remove it",
            "warning",
        )
    if ctx.spec.output_kind(agent) == "verdict":
        yield ctx.at(
            (*where, "strategy"),
            f"agent '{agent.id}' gives a QA verdict (it has on_fail or is an aggregation gate), "
            "so it cannot route; route in a plain agent after it",
        )
        return
    if not dispatch.cases:
        yield ctx.at(
            (*where, "strategy"),
            "strategy route needs 'cases': each value of its 'on' field and where it goes "
            "(an agent, end or abort)",
        )
        return
    for key in dispatch.cases:
        if not key.strip():
            yield _error_at_key(
                ctx,
                (*where, "cases", key),
                "a case name is empty; name each case by a value of the field it routes on",
            )
            return
    yield from _case_targets(ctx, agent, where, graph)
    field = _route_field(agent)
    name = "route" if dispatch.on is None else dispatch.on
    if dispatch.default is not None and _DEFAULT_CASE in dispatch.cases:
        yield _error_at_key(
            ctx,
            (*where, "cases", _DEFAULT_CASE),
            f"case '{_DEFAULT_CASE}' beside 'default:' is ambiguous: a run names the default "
            f"'{_DEFAULT_CASE}' (route_chosen events, --route {agent.id}={_DEFAULT_CASE}); "
            f"rename the value '{_DEFAULT_CASE}' of '{name}'",
        )
    if field is None and agent.output is None and agent.human is not None:
        return  # checks_human: a human router declares its output
    if field is None:
        fields = [f.name for f in agent.output.fields] if agent.output is not None else []
        if ctx.source.has((*where, "on")):
            yield ctx.at(
                (*where, "on"),
                f"route on '{name}': the output of agent '{agent.id}' has no field '{name}'"
                f"{did_you_mean(name, fields)}; name its enum or bool field",
            )
        else:
            yield _error_at_key(
                ctx,
                (*where, "strategy"),
                f"agent '{agent.id}' declares 'output:', so name the enum or bool field it "
                f"routes on with 'on:' (its fields: {', '.join(fields)})",
            )
        return
    kind = field.type.kind
    if kind not in ("enum", "bool"):
        yield ctx.at(
            (*where, "on"),
            f"route on '{name}': field '{name}' is {describe_type(field.type)}, not an enum or "
            f"bool; route on an enum field (e.g. '{name}: {{enum: [a, b]}}') or a bool field",
        )
        return
    values = field.type.values if kind == "enum" else _BOOL_CASES
    unknown = False
    for key in dispatch.cases:
        if key in values:
            continue
        unknown = True
        what = f"bool field '{name}'" if kind == "bool" else f"'{name}'"
        listed = (
            "cases are 'true' and 'false'" if kind == "bool" else "values: " + ", ".join(values)
        )
        yield _error_at_key(
            ctx,
            (*where, "cases", key),
            f"case '{key}' is not a value of {what}{did_you_mean(key, values)}; its {listed}",
        )
    missing = [value for value in values if value not in dispatch.cases]
    optional = field.type.optional
    if dispatch.default is None and not unknown and (missing or optional):
        gap = ", ".join(f"'{value}'" for value in missing)
        if optional:
            gap = f"{gap} or a missing value" if gap else "a missing value"
        yield _error_at_key(
            ctx,
            (*where, "cases"),
            f"route on '{name}' has no case for {gap}: add a case for each value, or a 'default'",
        )
    elif dispatch.default is not None and not missing and not optional:
        implicit = not ctx.source.has((*where[:-1], "output"))
        yield _error_at_key(
            ctx,
            (*where, "default"),
            "'default' is never taken: "
            + (
                "a router without 'output:' answers one of its case names; "
                if implicit
                else f"the cases cover every value of '{name}'; "
            )
            + "remove it",
        )


def _route_field(agent: AgentSpec) -> NamedField | None:
    if agent.output is None or agent.dispatch is None:
        return None
    name = "route" if agent.dispatch.on is None else agent.dispatch.on
    return next((f for f in agent.output.fields if f.name == name), None)


def _case_targets(
    ctx: CheckContext, agent: AgentSpec, where: Path, graph: Callable[[], dict[str, list[str]]]
) -> Iterator[Diagnostic]:
    """Targets are agents, end or abort; max_iterations / on_exhausted only on a loop."""
    dispatch = agent.dispatch
    assert dispatch is not None
    leads_back: set[str] = set()
    if any(
        c.max_iterations is not None
        for c in [*dispatch.cases.values(), dispatch.default]
        if c is not None
    ):
        leads_back = can_reach(graph(), agent.id)
    cases: list[tuple[str, RouteCase, Path]] = [
        (key, case, (*where, "cases", key)) for key, case in dispatch.cases.items()
    ]
    if dispatch.default is not None:
        cases.append(("default", dispatch.default, (*where, "default")))
    choices = sorted(ctx.agent_ids | set(RESERVED_TARGETS))
    for key, case, path in cases:
        target_path = (*path, "target") if ctx.source.has((*path, "target")) else path
        name = "'default'" if key == "default" else f"case '{key}'"
        if case.target not in RESERVED_TARGETS and case.target not in ctx.agent_ids:
            yield ctx.at(
                target_path,
                f"route target '{case.target}' of {name} is not an agent, 'end' or 'abort'"
                f"{did_you_mean(case.target, choices)}",
            )
            continue
        if case.max_iterations is not None and case.target not in leads_back:
            why = (
                f"'{case.target}' ends the item's path"
                if case.target in RESERVED_TARGETS
                else f"its target '{case.target}' never leads to '{agent.id}' again"
            )
            yield _error_at_key(
                ctx,
                (*path, "max_iterations"),
                f"{name} does not loop back ({why}); remove max_iterations",
            )
        elif case.max_iterations is None and ctx.source.has((*path, "on_exhausted")):
            yield _error_at_key(
                ctx,
                (*path, "on_exhausted"),
                f"{name}: on_exhausted only applies with max_iterations (a case that loops "
                "back); remove it",
            )


def check_fan_out_cycles(ctx: CheckContext) -> Iterator[Diagnostic]:
    """No dispatch cycle passes through a fan-out: each pass would make new work items,
    and max_iterations counts per item, so no case could bound it. (A cycle with no
    bounded case at all is check_dispatch_cycles' to report.)"""
    edges = dispatch_edges(ctx.spec)
    if not any(edge.kind == "parallel_fan_out" for edge in edges):
        return
    graph: dict[str, list[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge.target)
    unbounded = unbounded_graph(ctx.spec)
    order = {agent.id: index for index, agent in enumerate(ctx.spec.agents)}
    for edge in edges:
        if edge.kind != "parallel_fan_out" or edge.target not in order:
            continue
        if edge.source in _closure(graph, edge.target) and edge.source not in _closure(
            unbounded, edge.target
        ):
            yield ctx.at(
                ("agents", order[edge.source], "dispatch", "target"),
                f"a dispatch cycle passes through the fan-out of '{edge.source}' (its target "
                f"'{edge.target}' leads back to it): each pass would fan out new work items, "
                "and max_iterations counts per item, so nothing bounds it; end the loop "
                "before the fan-out",
            )


def _closure(graph: dict[str, list[str]], start: str) -> set[str]:
    """Agents reachable from `start` (itself included)."""
    seen = {start}
    stack = [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def check_gathers(ctx: CheckContext) -> Iterator[Diagnostic]:
    """`join` on broadcasts, `reduce` and `items` on fan-outs; their targets; joined
    targets do not dispatch; `items` names a list field of the typed output."""
    for path, agent in agent_paths(ctx):
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        where = (*path, "dispatch")
        strategy = dispatch.strategy
        if dispatch.join is not None:
            if strategy != "parallel_broadcast":
                yield _error_at_key(
                    ctx,
                    (*where, "join"),
                    f"'join' only applies to strategy parallel_broadcast (it runs once after "
                    f"every target), not {strategy}; remove it",
                )
            else:
                yield from _gather_target(ctx, agent, (*where, "join"), dispatch.join, "join")
                yield from _joined_targets_end(ctx, agent, dispatch.join)
        if dispatch.reduce is not None:
            if strategy != "parallel_fan_out":
                yield _error_at_key(
                    ctx,
                    (*where, "reduce"),
                    f"'reduce' only applies to strategy parallel_fan_out (it runs once on the "
                    f"parent item after every child item), not {strategy}; remove it",
                )
            else:
                yield from _gather_target(ctx, agent, (*where, "reduce"), dispatch.reduce, "reduce")
        if dispatch.items is not None:
            if strategy != "parallel_fan_out":
                yield _error_at_key(
                    ctx,
                    (*where, "items"),
                    f"'items' only applies to strategy parallel_fan_out, not {strategy}; remove it",
                )
            else:
                yield from _items_problems(ctx, agent, (*where, "items"), dispatch.items)


def _gather_target(
    ctx: CheckContext, agent: AgentSpec, path: Path, target: str, key: str
) -> Iterator[Diagnostic]:
    dispatch = agent.dispatch
    assert dispatch is not None
    if target not in ctx.agent_ids:
        yield ctx.at(
            path, f"{key} agent '{target}' is not an agent{did_you_mean(target, ctx.agent_ids)}"
        )
    elif target == agent.id:
        yield ctx.at(
            path,
            f"agent '{agent.id}' cannot be its own {key}; name the agent that runs once after "
            "its targets",
        )
    elif target in dispatch.targets or target == dispatch.target:
        yield ctx.at(
            path,
            f"{key} agent '{target}' is also a target of '{agent.id}'; the {key} must be "
            "another agent, run once after the targets finished",
        )


def _joined_targets_end(ctx: CheckContext, agent: AgentSpec, join: str) -> Iterator[Diagnostic]:
    """A joined broadcast's targets end their branch: the join continues the item."""
    dispatch = agent.dispatch
    assert dispatch is not None
    index = {a.id: i for i, a in enumerate(ctx.spec.agents)}
    for target in dict.fromkeys(dispatch.targets):
        if target not in index or target == join:
            continue
        branch = ctx.spec.agents[index[target]]
        if branch.dispatch is not None:
            yield _error_at_key(
                ctx,
                ("agents", index[target], "dispatch"),
                f"agent '{target}' is a target of the joined broadcast of '{agent.id}', so it "
                f"may not dispatch: the join '{join}' continues the item; move this dispatch "
                f"to '{join}'",
            )


def _items_problems(
    ctx: CheckContext, agent: AgentSpec, path: Path, items: str
) -> Iterator[Diagnostic]:
    if agent.output is None:
        yield ctx.at(
            path,
            f"'items: {items}' names a field of a typed output, but agent '{agent.id}' has no "
            "'output:'; declare one with a list field, or remove 'items' (the agent then "
            "answers a list of work items)",
        )
        return
    fields = {f.name: f for f in agent.output.fields}
    if items not in fields:
        yield ctx.at(
            path,
            f"'items: {items}': the output of agent '{agent.id}' has no field '{items}'"
            f"{did_you_mean(items, fields)}",
        )
    elif fields[items].type.kind != "list" or fields[items].type.optional:
        yield ctx.at(
            path,
            f"'items: {items}': field '{items}' is {describe_type(fields[items].type)}, not a "
            "list[...]; name the list field that holds the work items",
        )
