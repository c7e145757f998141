"""The agent graph of a pipeline: dispatch and feedback edges, QA loops, cycles,
reachability and dominators.

Pure functions of a `PipelineSpec`, shared by the checks, `--explain`, `--graph`
and `bounds.py` (worst-case call counts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from agentflow.runtime.spec import (
    RESERVED_TARGETS,
    STRUCTURED_REASKS,
    AgentSpec,
    FieldSpec,
    NamedField,
    PipelineSpec,
)

__all__ = [
    "CycleFound",
    "Edge",
    "QALoop",
    "bounded_case_edges",
    "can_reach",
    "dispatch_cycles",
    "dispatch_edges",
    "dispatch_targets",
    "feedback_edges",
    "max_attempts",
    "max_model_calls",
    "parallel_meetings",
    "qa_loops",
    "same_item_graph",
    "topological",
    "unbounded_graph",
]

EdgeKind = Literal[
    "sequential", "parallel_fan_out", "parallel_broadcast", "route", "join", "reduce", "feedback"
]


@dataclass(frozen=True, slots=True)
class Edge:
    """A dispatch edge (kind = strategy), a join or reduce edge (broadcaster or fan-out
    agent -> the agent run once after its targets), or a QA feedback edge (QA agent ->
    its target). A route edge names its `case` ("default" for the default); a route
    case to `end` or `abort` is no edge."""

    source: str
    target: str
    kind: EdgeKind
    case: str | None = None
    max_iterations: int | None = None
    """The case's bound (route edges only): the edge may be taken this often per item."""


def dispatch_edges(spec: PipelineSpec) -> list[Edge]:
    """Every dispatch edge, agents in listed order: targets in listed order (route cases
    in YAML order, then the default), then the join or reduce edge."""
    edges: list[Edge] = []
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        if dispatch.strategy == "route":
            cases = list(dispatch.cases.items())
            if dispatch.default is not None:
                cases.append(("default", dispatch.default))
            edges.extend(
                Edge(agent.id, case.target, "route", key, case.max_iterations)
                for key, case in cases
                if case.target not in RESERVED_TARGETS
            )
            continue
        targets = dispatch.targets if dispatch.strategy == "parallel_broadcast" else ()
        if dispatch.strategy != "parallel_broadcast" and dispatch.target is not None:
            targets = (dispatch.target,)
        edges.extend(Edge(agent.id, t, dispatch.strategy) for t in targets)
        if dispatch.strategy == "parallel_broadcast" and dispatch.join is not None:
            edges.append(Edge(agent.id, dispatch.join, "join"))
        if dispatch.strategy == "parallel_fan_out" and dispatch.reduce is not None:
            edges.append(Edge(agent.id, dispatch.reduce, "reduce"))
    return edges


def bounded_case_edges(spec: PipelineSpec) -> list[Edge]:
    """The route edges whose case has `max_iterations` (what may close a loop)."""
    return [e for e in dispatch_edges(spec) if e.max_iterations is not None]


def unbounded_graph(spec: PipelineSpec) -> dict[str, list[str]]:
    """The dispatch graph without the bounded route cases: every cycle left in it is
    unbounded (DSL v2 section 4: each cycle must pass through a bounded case)."""
    graph: dict[str, list[str]] = {agent.id: [] for agent in spec.agents}
    for edge in dispatch_edges(spec):
        if edge.max_iterations is None and edge.target not in graph.get(edge.source, ()):
            graph.setdefault(edge.source, []).append(edge.target)
    return graph


def feedback_edges(spec: PipelineSpec) -> list[Edge]:
    """QA agent -> `on_fail.target` for every `feedback_and_retry` QA agent."""
    return [
        Edge(a.id, a.on_fail.target, "feedback")
        for a in spec.agents
        if a.on_fail is not None
        and a.on_fail.action == "feedback_and_retry"
        and a.on_fail.target is not None
    ]


def max_attempts(agent: AgentSpec, spec: PipelineSpec) -> int:
    """The QA agent's attempt budget per work item: its `retry`, else the defaults'."""
    return (agent.retry or spec.defaults.retry).max_attempts


def max_model_calls(agent: AgentSpec, spec: PipelineSpec) -> int:
    """Model calls one invocation may make.

    1, or `max_tool_rounds + 1` with tools; an agent with a structured answer
    (QA verdict, fan-out items, a typed `output:`) may be asked again
    `STRUCTURED_REASKS` times. A `handler:` agent runs a function: the framework
    makes no model call for it (whatever the function itself does is not counted).
    """
    if agent.handler is not None:
        return 0
    calls = (agent.max_tool_rounds or spec.defaults.max_tool_rounds) + 1 if agent.tools else 1
    if spec.output_kind(agent) != "text" or agent.output is not None:
        calls += STRUCTURED_REASKS
    return calls


def describe_type(spec: FieldSpec) -> str:
    """A field type in the DSL's own notation: `list[str]`, `optional[int]`, `{a: str}`."""
    if spec.kind == "enum":
        text = "enum[" + ", ".join(spec.values) + "]"
    elif spec.kind == "list" and spec.items is not None:
        text = f"list[{describe_type(spec.items)}]"
    elif spec.kind == "object":
        text = describe_shape(spec.fields)
    else:
        text = spec.kind
    return f"optional[{text}]" if spec.optional else text


def describe_shape(fields: tuple[NamedField, ...]) -> str:
    """`{category: enum[billing, bug], urgency: int}` (depth is bounded by MAX_SHAPE_DEPTH)."""
    return "{" + ", ".join(f"{f.name}: {describe_type(f.type)}" for f in fields) + "}"


def same_item_graph(spec: PipelineSpec) -> dict[str, list[str]]:
    """Dispatch edges that stay on the same work item (every edge but fan-outs; a
    join or reduce agent runs on the broadcaster's or fan-out agent's item). Two
    route cases to one agent give one edge."""
    graph: dict[str, list[str]] = {a.id: [] for a in spec.agents}
    for edge in dispatch_edges(spec):
        if edge.kind != "parallel_fan_out":
            targets = graph.setdefault(edge.source, [])
            if edge.kind != "route" or edge.target not in targets:
                targets.append(edge.target)
    return graph


@dataclass(frozen=True, slots=True)
class Meeting:
    """Two parallel branches of one item meet: `agent` is reached from the broadcast of
    `broadcaster` through its targets `first` and `second` (DSL v2 section 5)."""

    agent: str
    broadcaster: str
    first: str
    second: str
    branches: int
    """How many of the broadcast's branches reach `agent` (at least 2)."""


def parallel_meetings(spec: PipelineSpec) -> list[Meeting]:
    """Each agent where two branches of a broadcast meet on the same item: reached by both,
    and not only through an agent they already met at (so one diamond is one meeting).
    A join or reduce agent is reached through its own edge, not through the branches;
    paths a route makes exclusive stay in one branch."""
    if not any(a.dispatch and a.dispatch.strategy == "parallel_broadcast" for a in spec.agents):
        return []
    graph = same_item_graph(spec)
    predecessors: dict[str, list[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            predecessors.setdefault(target, []).append(source)
    found: dict[str, Meeting] = {}
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None or dispatch.strategy != "parallel_broadcast":
            continue
        reached_by: dict[str, list[str]] = {}
        for target in dict.fromkeys(dispatch.targets):
            for node in _reachable(graph, target):
                reached_by.setdefault(node, []).append(target)
        met_before: list[str] = []
        for node, branches in reached_by.items():
            if len(branches) < 2 or node in found:
                continue
            if any(set(reached_by.get(p, ())) >= set(branches) for p in predecessors[node]):
                met_before.append(node)  # the branches met before it: report that agent
                continue
            found[node] = Meeting(node, agent.id, branches[0], branches[1], len(branches))
        # Branches that loop back upstream meet on a cycle, where every agent "met them
        # before": report one agent of such a cycle (the broadcaster if it is on it).
        if not met_before:
            continue
        covered = {n for m in found.values() for n in _reachable(graph, m.agent)}
        met_before.sort(key=lambda n: n != agent.id)
        for node in met_before:
            if node not in covered:
                branches = reached_by[node]
                found[node] = Meeting(node, agent.id, branches[0], branches[1], len(branches))
                covered.update(_reachable(graph, node))
    order = {a.id: i for i, a in enumerate(spec.agents)}
    return sorted(found.values(), key=lambda m: order.get(m.agent, len(order)))


def _reachable(graph: dict[str, list[str]], start: str) -> list[str]:
    """Agents reachable from `start` (itself included), in discovery order."""
    seen = {start}
    order = [start]
    stack = [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                order.append(nxt)
                stack.append(nxt)
    return order


@dataclass(frozen=True, slots=True)
class QALoop:
    """A feedback cycle: `target` -> ... -> `qa` by dispatch, then `qa` -> `target`."""

    qa: str
    target: str
    max_attempts: int
    paths: tuple[tuple[str, ...], ...]
    """Same-item dispatch paths from target to qa (empty: the checks reject that)."""


def can_reach(graph: dict[str, list[str]], goal: str) -> set[str]:
    """Agents with a dispatch path to `goal` (including `goal`)."""
    predecessors: dict[str, list[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            predecessors.setdefault(target, []).append(source)
    seen = {goal}
    stack = [goal]
    while stack:
        for source in predecessors.get(stack.pop(), ()):
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return seen


def _paths(graph: dict[str, list[str]], start: str, goal: str, limit: int = 20) -> list[list[str]]:
    """Up to `limit` simple paths from `start` to `goal`, in dispatch order.

    The walk only enters agents that can reach `goal`, so in a DAG every step it
    takes leads to a path: the cost is at most `limit` paths times their length,
    however many dead-end paths the graph has. (A step budget guards cyclic graphs.)
    """
    alive = can_reach(graph, goal)
    if start not in alive:
        return []
    found: list[list[str]] = []
    path = [start]
    on_path = {start}
    pending = [iter(graph.get(start, ()))]
    budget = 100_000
    while pending and len(found) < limit and budget > 0:
        if path[-1] == goal:
            found.append(list(path))
            nxt = None
        else:
            nxt = next((n for n in pending[-1] if n in alive and n not in on_path), None)
        budget -= 1
        if nxt is None:
            pending.pop()
            on_path.discard(path.pop())
            continue
        path.append(nxt)
        on_path.add(nxt)
        pending.append(iter(graph.get(nxt, ())))
    return found


def qa_loops(spec: PipelineSpec) -> list[QALoop]:
    """Every QA feedback loop with the attempt bound that breaks it."""
    graph = same_item_graph(spec)
    return [
        QALoop(
            qa=e.source,
            target=e.target,
            max_attempts=max_attempts(spec.agent(e.source), spec),
            paths=tuple(tuple(p) for p in _paths(graph, e.target, e.source)),
        )
        for e in feedback_edges(spec)
    ]


def dispatch_cycles(spec: PipelineSpec) -> list[list[str]]:
    """Groups of agents that dispatch to each other in a cycle (no retry bound breaks those).

    Tarjan's strongly connected components, with an explicit stack: a long chain
    must not exhaust Python's recursion limit.
    """
    order = {agent.id: position for position, agent in enumerate(spec.agents)}
    graph: dict[str, list[str]] = {agent_id: [] for agent_id in order}
    for edge in dispatch_edges(spec):
        graph.setdefault(edge.source, []).append(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in order:
        if root in index:
            continue
        enter(root)
        work = [(root, iter(graph.get(root, ())))]
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    enter(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in graph.get(node, []):
                        cycles.append(sorted(group, key=lambda a: order.get(a, 0)))
    return cycles


class CycleFound(Exception):
    """The agents reachable from a start form a dispatch cycle (the message names it)."""


def topological(graph: dict[str, list[str]], start: str) -> list[str]:
    """The agents reachable from `start`, each before every agent it dispatches to.

    An iterative depth-first search (no recursion a long chain could exhaust).

    Raises:
        CycleFound: the agents reachable from `start` form a cycle.
    """
    finished: list[str] = []
    state = {start: 1}  # 1: on the current path, 2: finished
    path = [start]
    pending = [iter(graph.get(start, ()))]
    while pending:
        for nxt in pending[-1]:
            seen = state.get(nxt)
            if seen == 1:
                raise CycleFound(" -> ".join([*path[path.index(nxt) :], nxt]))
            if seen is None:
                state[nxt] = 1
                path.append(nxt)
                pending.append(iter(graph.get(nxt, ())))
                break
        else:
            pending.pop()
            node = path.pop()
            state[node] = 2
            finished.append(node)
    finished.reverse()
    return finished


def dispatch_targets(agent: AgentSpec) -> Iterable[str]:
    """The agents `agent` dispatches its output to (a route: its cases' agents, each once)."""
    dispatch = agent.dispatch
    if dispatch is None:
        return ()
    if dispatch.strategy == "parallel_broadcast":
        return dispatch.targets
    if dispatch.strategy == "route":
        cases = [*dispatch.cases.values(), *([dispatch.default] if dispatch.default else [])]
        return tuple(dict.fromkeys(c.target for c in cases if c.target not in RESERVED_TARGETS))
    return (dispatch.target,) if dispatch.target else ()


def immediate_dominators(spec: PipelineSpec) -> dict[str, str | None]:
    """Each agent reachable from the entry -> the agent that runs right before it on every
    dispatch path (its immediate dominator; None for the entry).

    Every dispatch edge counts (a fan-out's children are items whose ancestor ran the
    parent; a join or reduce agent follows its broadcaster or fan-out agent; route
    cases are alternative paths). Loops are handled: an agent dominates another when
    every path from the entry to it passes through the first, so a loop body does not
    dominate the router it returns to. Cooper, Harvey and Kennedy's iterative
    algorithm over the reverse postorder (one pass for a DAG, a few for loops), with
    no recursion.
    """
    graph: dict[str, list[str]] = {a.id: [] for a in spec.agents}
    for edge in dispatch_edges(spec):
        graph.setdefault(edge.source, []).append(edge.target)
    start = spec.entry_agent
    order = _reverse_postorder(graph, start)
    position = {agent: index for index, agent in enumerate(order)}
    predecessors: dict[str, list[str]] = {agent: [] for agent in order}
    for source in order:
        for target in graph.get(source, ()):
            predecessors[target].append(source)
    idom: dict[str, str] = {start: start}
    changed = True
    while changed:
        changed = False
        for agent in order[1:]:
            found: str | None = None
            for pred in predecessors[agent]:
                if pred not in idom:
                    continue  # not processed yet (a loop's back edge on the first pass)
                if found is None:
                    found = pred
                    continue
                a, b = found, pred
                while a != b:  # walk the later one up its chain until the two chains meet
                    while position[a] > position[b]:
                        a = idom[a]
                    while position[b] > position[a]:
                        b = idom[b]
                found = a
            if found is not None and idom.get(agent) != found:
                idom[agent] = found
                changed = True
    return {agent: (None if agent == start else idom[agent]) for agent in order}


def _reverse_postorder(graph: dict[str, list[str]], start: str) -> list[str]:
    """The agents reachable from `start`, in reverse postorder of a depth-first search."""
    finished: list[str] = []
    seen = {start}
    path = [start]
    pending = [iter(graph.get(start, ()))]
    while pending:
        for nxt in pending[-1]:
            if nxt not in seen:
                seen.add(nxt)
                path.append(nxt)
                pending.append(iter(graph.get(nxt, ())))
                break
        else:
            pending.pop()
            finished.append(path.pop())
    finished.reverse()
    return finished


def dominates(idom: dict[str, str | None], runs_first: str, reader: str) -> bool:
    """True if `runs_first` runs before `reader` on every path (strictly: not itself)."""
    node = idom.get(reader)
    while node is not None:
        if node == runs_first:
            return True
        node = idom.get(node)
    return False
