"""Semantic checks on the pipeline's flow: the state graph, dispatch, QA feedback, aggregation."""

from __future__ import annotations

from collections.abc import Iterator

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.jsonpath import InvalidJsonPath, parse_path
from agentflow.runtime.pipeline import declared_triggers
from agentflow.runtime.spec import PipelineSpec

from .checks_base import (
    CheckContext,
    agent_paths,
    broken_dispatches,
    dispatch_edges,
    downstream,
)
from .diagnostics import Diagnostic, did_you_mean
from .flow import can_reach, parallel_meetings, same_item_graph
from .flow import dispatch_edges as graph_edges
from .parse import Path

__all__ = [
    "FEEDBACK_FIELDS",
    "check_agent_reachability",
    "check_aggregation",
    "check_dispatch",
    "check_dispatch_cycles",
    "check_on_fail",
    "check_parallel_paths",
    "check_state_graph",
    "parse_feedback_path",
]

FEEDBACK_FIELDS: tuple[str, ...] = ("issues", "text", "items", "data")
"""`AgentOutput` fields a feedback_path may start with (they can hold issues or strings)."""


def check_state_graph(ctx: CheckContext) -> Iterator[Diagnostic]:
    """States: some exist, initial is not terminal, all reachable, a terminal one reachable."""
    machine = ctx.spec.state_machine
    if not machine.states:
        yield ctx.at(
            ("state_machine", "states"),
            "no states declared; list at least the initial and a terminal state",
        )
    if not machine.terminal:
        yield ctx.at(
            ("state_machine", "terminal"),
            "no terminal state declared, so a run can never finish; list at least one",
        )
    terminal = set(machine.terminal)
    if machine.initial in terminal:
        yield ctx.at(
            ("state_machine", "initial"),
            f"initial state '{machine.initial}' is also terminal, so no agent could ever move "
            "the run; pick a non-terminal initial state",
        )
        return
    if machine.initial not in ctx.state_ids or ctx.spec.implicit_state_machine:
        return  # the default machine ends through the runtime's own run.complete/run.failed
    targets = {target for _, target in declared_triggers(ctx.spec)}
    for index, state in enumerate(machine.states):
        if state.id != machine.initial and state.id not in targets:
            yield ctx.at(
                ("state_machine", "states", index, "id"),
                f"state '{state.id}' is unreachable from '{machine.initial}': no transition "
                "moves into it; add a transition to it or remove it",
            )
    if terminal and not (targets & terminal):
        yield ctx.at(
            ("state_machine", "terminal"),
            "no transition leads to a terminal state, so every run would be stuck; add e.g. "
            f"'on_pass: {machine.terminal[0]}' or an aggregation on_complete transition",
        )


def check_dispatch(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Targets exist and are not the agent itself; target/targets fit the strategy."""
    for path, agent in agent_paths(ctx):
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        where = (*path, "dispatch")
        if dispatch.strategy == "route":
            continue  # checks_control.check_route
        if dispatch.strategy == "parallel_broadcast":
            if dispatch.target is not None:
                yield ctx.at(
                    (*where, "target"),
                    "parallel_broadcast sends to 'targets' (a list), not 'target'; use 'targets:'",
                )
            if not dispatch.targets:
                yield ctx.at(
                    (*where, "strategy"),
                    "parallel_broadcast needs 'targets' with at least one agent",
                )
        else:
            if dispatch.targets:
                yield ctx.at(
                    (*where, "targets"),
                    f"{dispatch.strategy} sends to one 'target', not 'targets'; use 'target:' (or "
                    "strategy parallel_broadcast)",
                )
            if dispatch.target is None and not dispatch.targets:
                yield ctx.at((*where, "strategy"), f"{dispatch.strategy} needs a 'target' agent")
            if dispatch.max_concurrency is not None and dispatch.strategy == "sequential":
                yield ctx.at(
                    (*where, "max_concurrency"),
                    "max_concurrency has no effect with sequential dispatch; remove it",
                    "warning",
                )
        refs = [((*where, "target"), dispatch.target)] if dispatch.target else []
        refs += [((*where, "targets", i), t) for i, t in enumerate(dispatch.targets)]
        for ref_path, target in refs:
            if target == agent.id:
                yield ctx.at(
                    ref_path,
                    f"agent '{agent.id}' dispatches to itself, which would never end; use on_fail "
                    "feedback_and_retry to re-run an agent",
                )
            elif target not in ctx.agent_ids:
                yield ctx.at(
                    ref_path,
                    f"dispatch target '{target}' is not an "
                    f"agent{did_you_mean(target, ctx.agent_ids)}",
                )


def check_dispatch_cycles(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Every dispatch cycle passes through a route case with max_iterations (DSL v2
    section 4); any other cycle would run forever."""
    order = {agent.id: index for index, agent in enumerate(ctx.spec.agents)}
    graph: dict[str, list[str]] = {agent_id: [] for agent_id in order}
    for edge in graph_edges(ctx.spec):
        if edge.max_iterations is not None or edge.target not in order:
            continue  # a bounded case; a missing agent is check_dispatch's / check_route's
        if edge.target != edge.source or edge.kind == "route":  # check_dispatch: self
            graph[edge.source].append(edge.target)
    graph = {source: list(dict.fromkeys(targets)) for source, targets in graph.items()}
    reported: set[tuple[str, ...]] = set()
    for cycle in _back_edge_cycles(graph, list(order)):
        start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
        canonical = cycle[start:] + cycle[:start]
        if canonical in reported:
            continue
        reported.add(canonical)
        names = " -> ".join((*canonical, canonical[0]))
        yield ctx.at(
            ("agents", order[canonical[0]], "dispatch"),
            f"dispatch cycle {names}: it would loop forever; bound it by adding "
            "max_iterations to a route case on the cycle (strategy: route), or re-run an "
            "agent with on_fail feedback_and_retry instead",
        )


def _back_edge_cycles(graph: dict[str, list[str]], roots: list[str]) -> Iterator[tuple[str, ...]]:
    """The cycle closed by each back edge of a depth-first search from `roots` in order.

    Iterative (an explicit stack): a long chain must not exhaust the recursion limit.
    """
    state: dict[str, int] = {}  # 1 = on the DFS path, 2 = done
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        position = {root: 0}
        pending = [iter(graph[root])]
        while pending:
            for nxt in pending[-1]:
                seen = state.get(nxt)
                if seen == 1:
                    yield tuple(path[position[nxt] :])
                elif seen is None:
                    state[nxt] = 1
                    position[nxt] = len(path)
                    path.append(nxt)
                    pending.append(iter(graph[nxt]))
                    break
            else:
                pending.pop()
                node = path.pop()
                del position[node]
                state[node] = 2


def _graph_ok(ctx: CheckContext) -> bool:
    """The dispatch graph is sound enough to judge reachability (else that is reported)."""
    entry = ctx.spec.entry
    entry_ok = bool(ctx.spec.agents) and (entry is None or entry in ctx.agent_ids)
    return entry_ok and ctx.graph_valid


def check_agent_reachability(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Every agent can be reached from the entry agent along dispatch edges (warning)."""
    if not _graph_ok(ctx):
        return
    reachable = downstream(ctx.spec, ctx.spec.entry_agent)
    for path, agent in agent_paths(ctx):
        if agent.id not in reachable:
            yield ctx.at(
                (*path, "id"),
                f"agent '{agent.id}' never runs: no dispatch path leads to it from the entry "
                f"agent '{ctx.spec.entry_agent}'",
                "warning",
            )


def check_parallel_paths(ctx: CheckContext) -> Iterator[Diagnostic]:
    """No agent is reached on one item by two parallel branches of a broadcast (it would
    run once per branch) unless it is the join (DSL v2 section 5); route cases are
    alternatives, so the paths they split into may meet. For a QA agent the message says
    what it would break: its verdicts and retries would count twice."""
    if not _graph_ok(ctx):
        return
    spec = ctx.spec
    for meeting in parallel_meetings(spec):
        agent = next((a for a in spec.agents if a.id == meeting.agent), None)
        if agent is None:
            continue
        index = spec.agents.index(agent)
        branches = f"through '{meeting.first}' and '{meeting.second}'"
        if spec.output_kind(agent) == "verdict":
            message = (
                f"QA agent '{agent.id}' is reached by {meeting.branches} dispatch paths from "
                f"'{meeting.broadcaster}' on the same work item, so it would judge each item "
                "once per path and its retries would be counted twice; dispatch to it from "
                "one agent only, or give each path its own QA agent"
            )
        elif agent.id == meeting.broadcaster:
            message = (
                f"agent '{agent.id}' is reached again by two parallel branches of its own "
                f"broadcast ({branches}), so it would run once per branch on the same work "
                "item, each run broadcasting again; loop back from one branch only, or from "
                "the broadcast's join"
            )
        else:
            message = (
                f"agent '{agent.id}' is reached by two parallel paths from the broadcast of "
                f"'{meeting.broadcaster}' ({branches}), so it would run once per path on the "
                f"same work item; make it the broadcast's join ('join: {agent.id}', and end "
                "the branches there) or give each path its own agent"
            )
        yield ctx.at(("agents", index, "id"), message)


def _could_be_upstream(spec: PipelineSpec, target: str, qa: str) -> bool:
    """`target` dispatches to `qa` on the same work item, or might once a broken
    dispatch (reported by check_dispatch) is fixed: `target` leads to a broken one."""
    if target in _upstream_same_item(spec, qa):
        return True
    broken = broken_dispatches(spec)
    if not broken:
        return False
    successors: dict[str, list[str]] = {}
    for source, to, strategy in dispatch_edges(spec):
        if strategy != "parallel_fan_out":
            successors.setdefault(source, []).append(to)
    seen = {target}
    stack = [target]
    while stack:
        node = stack.pop()
        if node in broken:
            return True
        for nxt in successors.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def _item_start_without(
    spec: PipelineSpec, graph: dict[str, list[str]], target: str, qa: str
) -> str | None:
    """A fan-out whose child items reach `qa` on a path without `target`, or None.

    A child item starts at its fan-out's target; `target` must run before `qa` on such
    an item too, else a retry there starts `target` fresh on the child (a loop that
    makes new items each time is never bounded by the per-item attempt count).
    `graph`: `same_item_graph(spec)`."""
    upstream_of_qa = can_reach(graph, qa)
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None or dispatch.strategy != "parallel_fan_out" or dispatch.target is None:
            continue
        start = dispatch.target
        if start in upstream_of_qa and _reaches_avoiding(graph, start, qa, target):
            return agent.id
    return None


def _reaches_avoiding(graph: dict[str, list[str]], start: str, goal: str, avoid: str) -> bool:
    """Whether a dispatch path leads from `start` to `goal` without passing `avoid`."""
    if start == avoid:
        return False
    seen, stack = {start}, [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for nxt in graph.get(node, ()):
            if nxt != avoid and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def _upstream_same_item(spec: PipelineSpec, agent_id: str) -> set[str]:
    """Agents that run before `agent_id` on the same work item (not through a fan-out)."""
    return can_reach(same_item_graph(spec), agent_id) - {agent_id}


def check_on_fail(ctx: CheckContext) -> Iterator[Diagnostic]:
    """on_fail: action fits target; the target is upstream on the same item; a valid path."""
    graph = same_item_graph(ctx.spec)
    for path, agent in agent_paths(ctx):
        on_fail = agent.on_fail
        if on_fail is None:
            if agent.retry is not None:
                yield ctx.at(
                    (*path, "retry"),
                    f"retry on '{agent.id}' has no effect: only a QA agent's on_fail "
                    "feedback_and_retry uses it",
                    "warning",
                )
            continue
        where = (*path, "on_fail")
        if on_fail.action == "abort":
            if on_fail.target is not None:
                yield ctx.at(
                    (*where, "target"),
                    "on_fail action 'abort' takes no target; remove 'target' or use "
                    "'feedback_and_retry'",
                )
            if ctx.source.has((*where, "feedback_path")):
                yield ctx.at(
                    (*where, "feedback_path"),
                    "feedback_path has no effect with action 'abort'; remove it",
                    "warning",
                )
        elif on_fail.target is None:
            yield ctx.at(
                (*where, "action"),
                "feedback_and_retry needs a 'target': the agent to re-run with the feedback",
            )
        target = on_fail.target
        if target is not None and on_fail.action == "feedback_and_retry":
            if target == agent.id:
                yield ctx.at(
                    (*where, "target"),
                    f"on_fail target '{target}' is the QA agent itself; name the upstream agent "
                    "whose work it checks",
                )
            elif target not in ctx.agent_ids:
                yield ctx.at(
                    (*where, "target"),
                    f"on_fail target '{target}' is not an "
                    f"agent{did_you_mean(target, ctx.agent_ids)}",
                )
            elif not _could_be_upstream(ctx.spec, target, agent.id):
                yield ctx.at(
                    (*where, "target"),
                    f"on_fail target '{target}' is not upstream of '{agent.id}' on the same work "
                    "item, so re-running it cannot produce new work for this QA agent; name an "
                    "agent that dispatches (directly or indirectly, not through a "
                    "parallel_fan_out) to it",
                )
            else:
                fan_out = _item_start_without(ctx.spec, graph, target, agent.id)
                if fan_out is not None:
                    yield ctx.at(
                        (*where, "target"),
                        f"on_fail target '{target}' is not upstream of '{agent.id}' on the child "
                        f"items of fan-out '{fan_out}', where '{agent.id}' also runs: a retry "
                        f"there would run '{target}' on the child item for the first time; name "
                        f"an agent upstream of '{agent.id}' on every item it runs on",
                    )
        problem = _feedback_path_problem(on_fail.feedback_path)
        if problem is not None:
            yield ctx.at((*where, "feedback_path"), problem)


def parse_feedback_path(path: str) -> list[str | int | None] | None:
    """`"$.issues[0]"` -> `["issues", 0]`; `[*]` is `None`. Returns None if malformed.

    The runtime's parser (`agentflow.runtime.engine.jsonpath.parse_path`), so what
    compiles is exactly what runs: `$`, then `.key`, `['key']`, `[n]`, `[*]`, `.*`.
    """
    try:
        return list(parse_path(path))
    except InvalidJsonPath:
        return None


def _feedback_path_problem(path: str) -> str | None:
    steps = parse_feedback_path(path)
    if steps is None:
        return (
            f"feedback_path '{path}' is not in the supported JSONPath subset "
            "('$' then '.key', '[n]' or '[*]' steps), e.g. '$.issues'"
        )
    if not steps:
        return None  # `$`: the QA agent's issues
    if not isinstance(steps[0], str):
        return f"feedback_path '{path}' must start with a field of the QA output, e.g. '$.issues'"
    first = steps[0]
    if first not in FEEDBACK_FIELDS:
        kind = "an AgentOutput field that holds no issues"
        if first not in AgentOutput.model_fields:
            kind = "not an AgentOutput field"
        return (
            f"feedback_path '{path}': '{first}' is {kind}"
            f"{did_you_mean(first, FEEDBACK_FIELDS)}; start with one of "
            + ", ".join(f"'{f}'" for f in FEEDBACK_FIELDS)
        )
    return None


def check_aggregation(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Gates are agents reachable from entry; min_pass fits the strategy and the gates."""
    aggregation = ctx.spec.aggregation
    if aggregation is None:
        return
    if not aggregation.gates:
        yield ctx.at(("aggregation", "gates"), "aggregation needs at least one gate agent")
    graph_ok = _graph_ok(ctx)
    reachable = downstream(ctx.spec, ctx.spec.entry_agent) if graph_ok else set(ctx.agent_ids)
    for index, gate in enumerate(aggregation.gates):
        path: Path = ("aggregation", "gates", index)
        if gate not in ctx.agent_ids:
            yield ctx.at(path, f"gate '{gate}' is not an agent{did_you_mean(gate, ctx.agent_ids)}")
        elif gate not in reachable:
            yield ctx.at(
                path,
                f"gate '{gate}' never runs (no dispatch path leads to it from "
                f"'{ctx.spec.entry_agent}'), so no item could pass it; dispatch to it or remove it",
            )
    min_pass = aggregation.min_pass
    if aggregation.strategy == "threshold":
        if min_pass is None:
            yield ctx.at(
                ("aggregation", "strategy"),
                "strategy 'threshold' needs 'min_pass': how many gates must pass",
            )
        elif min_pass > len(set(aggregation.gates)):
            yield ctx.at(
                ("aggregation", "min_pass"),
                f"min_pass {min_pass} is more than the {len(set(aggregation.gates))} gate(s), so "
                "no item could ever pass; lower it or add gates",
            )
    elif min_pass is not None:
        yield ctx.at(
            ("aggregation", "min_pass"),
            f"min_pass only applies to strategy 'threshold', not '{aggregation.strategy}'; remove "
            "it or use threshold",
        )
