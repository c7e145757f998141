"""The agent graph of a pipeline: edges, QA loops, cycles and worst-case call counts.

Shared by `--explain`, `--graph` and the generated module's docstrings. Pure
functions of a `PipelineSpec`.

Worst-case counting (docs: `agentflowc --explain`). Agents run per work item.
Sequential and broadcast edges stay on the item; a fan-out edge starts N child
items (N is known only at run time). Within one item, an agent runs once per
dispatch path from the item's first agent. A QA agent `q` with
`feedback_and_retry` may send its target back at most `max_attempts(q) - 1`
times per item (its governor counts attempts per item, never reset), and each
time everything downstream of the target runs again. Two figures:

* every verdict fails (exact for the examples): a failing QA agent dispatches
  nothing; QA agents a broadcast joins fail together, so such a "site" re-runs
  its first loop's target min(max_attempts) - 1 times:
  runs(a) = paths(start -> a) + sum over sites s of (attempts(s) - 1) * paths(target(s) -> a)
  (an upper bound where two sites sit in parallel broadcast branches: the first
  to run out aborts the item, which stops the other branch early)
* any verdicts (the ceiling): every loop spends only its own attempts and
  passing verdicts let the agents after a QA agent run:
  runs(a) = paths(start -> a) + sum over q of (max_attempts(q) - 1) * paths(target(q) -> a)

Path counts come from one pass over the DAG in topological order (integers,
never enumerated), and no analysis recurses: 2**40 paths or a 1,000-agent chain
cost what the graph's size costs.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from agentflow.runtime.spec import (
    STRUCTURED_REASKS,
    AgentSpec,
    FieldSpec,
    NamedField,
    PipelineSpec,
)

__all__ = [
    "Edge",
    "Poly",
    "QALoop",
    "Scope",
    "WorstCase",
    "agent_summary",
    "can_reach",
    "dispatch_cycles",
    "dispatch_edges",
    "feedback_edges",
    "max_attempts",
    "max_model_calls",
    "path_counts",
    "pipeline_summary",
    "qa_loops",
    "same_item_graph",
    "worst_case",
]

EdgeKind = Literal["sequential", "parallel_fan_out", "parallel_broadcast", "feedback"]


@dataclass(frozen=True, slots=True)
class Edge:
    """A dispatch edge (kind = strategy) or a QA feedback edge (QA agent -> its target)."""

    source: str
    target: str
    kind: EdgeKind


def dispatch_edges(spec: PipelineSpec) -> list[Edge]:
    """Every dispatch edge, agents in listed order, broadcast targets in listed order."""
    edges: list[Edge] = []
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        targets = dispatch.targets if dispatch.strategy == "parallel_broadcast" else ()
        if dispatch.strategy != "parallel_broadcast" and dispatch.target is not None:
            targets = (dispatch.target,)
        edges.extend(Edge(agent.id, t, dispatch.strategy) for t in targets)
    return edges


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
    """Dispatch edges that stay on the same work item (every edge but fan-outs)."""
    graph: dict[str, list[str]] = {a.id: [] for a in spec.agents}
    for edge in dispatch_edges(spec):
        if edge.kind != "parallel_fan_out":
            graph.setdefault(edge.source, []).append(edge.target)
    return graph


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


@dataclass(frozen=True)
class Poly:
    """A polynomial in the fan-out sizes: {sorted symbols: coefficient}."""

    terms: dict[tuple[str, ...], int] = field(default_factory=dict)

    def __add__(self, other: Poly) -> Poly:
        terms = dict(self.terms)
        for mono, coef in other.terms.items():
            terms[mono] = terms.get(mono, 0) + coef
        return Poly({m: c for m, c in terms.items() if c})

    def times(self, coef: int, symbol: str | None = None) -> Poly:
        extra = (symbol,) if symbol else ()
        return Poly({tuple(sorted((*m, *extra))): c * coef for m, c in self.terms.items() if c})

    def evaluate(self, values: dict[str, int]) -> int:
        total = 0
        for mono, coef in self.terms.items():
            for symbol in mono:
                coef *= values[symbol]
            total += coef
        return total

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for mono in sorted(self.terms, key=lambda m: (len(m), m)):
            coef = self.terms[mono]
            factors = ([str(coef)] if coef != 1 or not mono else []) + list(mono)
            parts.append("·".join(factors))
        return " + ".join(parts)


@dataclass(frozen=True)
class Scope:
    """The agents one work item runs, from `start`; `via` is the fan-out agent that made it.

    `runs`: invocations when every QA verdict fails; `ceiling`: the most any mix
    of verdicts can cause (see `worst_case`).
    """

    start: str
    via: str | None
    symbol: str | None
    runs: dict[str, int]
    ceiling: dict[str, int] = field(default_factory=dict)

    def total(self, weight: Callable[[str], int] = lambda _: 1) -> int:
        return sum(n * weight(a) for a, n in self.runs.items())


@dataclass(frozen=True)
class WorstCase:
    """Worst-case agent invocations and model calls, or why there is no formula.

    `invocations` / `model_calls` are for the run where every QA verdict fails
    until its attempts run out; `ceiling_*` bound any mix of verdicts.
    """

    scopes: list[Scope]
    invocations: Poly | None
    model_calls: Poly | None
    symbols: dict[str, str]
    """symbol -> the fan-out agent whose items it counts."""
    unbounded: str | None = None
    ceiling_invocations: Poly | None = None
    ceiling_model_calls: Poly | None = None
    too_complex: str | None = None
    """Why no formula is printed for a bounded pipeline (it would be too long to read)."""


class _Unbounded(Exception):
    pass


class _TooComplex(Exception):
    pass


MAX_FORMULA_TERMS = 256
"""A worst-case formula with more terms than this is not printed (it is not readable)."""


def _topological(graph: dict[str, list[str]], start: str) -> list[str]:
    """The agents reachable from `start`, each before every agent it dispatches to.

    An iterative depth-first search (no recursion a long chain could exhaust).

    Raises:
        _Unbounded: the agents reachable from `start` form a cycle.
    """
    finished: list[str] = []
    state = {start: 1}  # 1: on the current path, 2: finished
    path = [start]
    pending = [iter(graph.get(start, ()))]
    while pending:
        for nxt in pending[-1]:
            seen = state.get(nxt)
            if seen == 1:
                raise _Unbounded(" -> ".join([*path[path.index(nxt) :], nxt]))
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


def _propagate(
    graph: dict[str, list[str]], order: list[str], seeds: dict[str, int]
) -> dict[str, int]:
    """Runs per agent when each seed agent is started `seeds[a]` times: sum over paths.

    One pass in topological order: linear in the graph, however many paths it has.
    """
    counts = dict.fromkeys(order, 0)
    for agent, times in seeds.items():
        counts[agent] += times
    for node in order:
        times = counts[node]
        if times:
            for nxt in graph.get(node, ()):
                counts[nxt] += times
    return counts


def path_counts(graph: dict[str, list[str]], start: str) -> dict[str, int]:
    """How many dispatch paths lead from `start` to each agent (a cycle is unbounded)."""
    return _propagate(graph, _topological(graph, start), {start: 1})


def _ceiling_runs(spec: PipelineSpec, graph: dict[str, list[str]], start: str) -> dict[str, int]:
    """Runs per agent for any verdicts: paths(start -> a) + sum over QA loops q of
    (max_attempts(q) - 1) * paths(target(q) -> a). Every retry spends one attempt of
    the QA agent that asked for it, and re-runs at most the target's paths."""
    order = _topological(graph, start)
    reached = set(order)
    seeds = {start: 1}
    for edge in feedback_edges(spec):
        if edge.source in reached and edge.target in reached:
            extra = max_attempts(spec.agent(edge.source), spec) - 1
            seeds[edge.target] = seeds.get(edge.target, 0) + extra
    return _propagate(graph, order, seeds)


def _failing_graph(spec: PipelineSpec) -> dict[str, list[str]]:
    """The same-item graph as a run where every verdict fails walks it: a failing QA
    agent never dispatches onward."""
    graph = same_item_graph(spec)
    for agent in spec.agents:
        if spec.output_kind(agent) == "verdict":
            graph[agent.id] = []
    return graph


def _retry_sites(spec: PipelineSpec, reached: list[str], start: str) -> list[tuple[str, ...]]:
    """The places where failing verdicts are handled together, as tuples of QA agents:
    each broadcast's QA targets (joined), and each QA agent started on its own."""
    known = {a.id: a for a in spec.agents}
    verdicts = {a.id for a in spec.agents if spec.output_kind(a) == "verdict"}
    sites: dict[tuple[str, ...], None] = {}
    for agent_id in reached:
        agent = known.get(agent_id)
        if agent is None:
            continue
        if agent_id == start and agent_id in verdicts:
            sites[(agent_id,)] = None
        dispatch = agent.dispatch
        if dispatch is None or agent_id in verdicts:
            continue
        if dispatch.strategy == "parallel_broadcast":
            joined = tuple(t for t in dispatch.targets if t in verdicts)
            if joined:
                sites[joined] = None
        elif dispatch.strategy == "sequential" and dispatch.target in verdicts:
            sites[(dispatch.target,)] = None
    return list(sites)


def _failing_runs(spec: PipelineSpec, graph: dict[str, list[str]], start: str) -> dict[str, int]:
    """Runs per agent when every QA verdict fails (`graph` is `_failing_graph`).

    A site's failing verdicts each spend one attempt of their QA agent; the site
    retries (the first retrying agent's target) until one of them runs out, then
    aborts the item. So a site re-runs its target min(max_attempts) - 1 times.
    """
    order = _topological(graph, start)
    reached = set(order)
    retry_to = {edge.source: edge.target for edge in feedback_edges(spec)}
    seeds = {start: 1}
    for site in _retry_sites(spec, order, start):
        loops = [q for q in site if q in retry_to]
        if not loops:
            continue
        target = retry_to[loops[0]]
        if target in reached:
            extra = min(max_attempts(spec.agent(q), spec) for q in loops) - 1
            seeds[target] = seeds.get(target, 0) + extra
    return _propagate(graph, order, seeds)


def _in_spec_order(spec: PipelineSpec, runs: dict[str, int]) -> dict[str, int]:
    position = {a.id: index for index, a in enumerate(spec.agents)}
    kept = [a for a, n in runs.items() if n and a in position]
    return {a: runs[a] for a in sorted(kept, key=position.__getitem__)}


def _check_size(poly: Poly) -> Poly:
    if len(poly.terms) > MAX_FORMULA_TERMS:
        raise _TooComplex(
            f"the fan-outs combine into a formula of more than {MAX_FORMULA_TERMS} terms"
        )
    return poly


def worst_case(spec: PipelineSpec) -> WorstCase:
    """Worst-case invocations and model calls per work item and per run.

    Linear in the graph per scope (a dynamic program over the dispatch DAG in
    topological order, path counts as integers), with each fan-out's scope
    computed once.
    """
    failing_graph = _failing_graph(spec)
    graph = same_item_graph(spec)
    fan_outs = [e for e in dispatch_edges(spec) if e.kind == "parallel_fan_out"]
    symbol_of: dict[str, str] = {}  # numbered in the order the run reaches the fan-outs
    known = {a.id for a in spec.agents}
    calls_of = {a.id: max_model_calls(a, spec) for a in spec.agents}
    scopes: list[Scope] = []
    recorded: set[tuple[str, str | None]] = set()
    runs_of: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
    polys: dict[str, tuple[Poly, Poly, Poly, Poly]] = {}

    def symbol_for(agent: str) -> str:
        if agent not in symbol_of:
            symbol_of[agent] = "N" if len(fan_outs) == 1 else f"N{len(symbol_of) + 1}"
        return symbol_of[agent]

    def open_scope(start: str, via: str | None) -> list[Edge]:
        """Record the scope (once per start and fan-out); its fan-outs."""
        if start not in runs_of:
            failing = _in_spec_order(spec, _failing_runs(spec, failing_graph, start))
            ceiling = _in_spec_order(spec, _ceiling_runs(spec, graph, start))
            runs_of[start] = (failing, ceiling)
        failing, ceiling = runs_of[start]
        if (start, via) not in recorded:
            recorded.add((start, via))
            scopes.append(Scope(start, via, symbol_of.get(via or ""), failing, ceiling))
        return [e for e in fan_outs if e.source in ceiling and e.target in known]

    def close_scope(start: str) -> None:
        """Every child scope is done: this scope's polynomials."""
        failing, ceiling = runs_of[start]
        inv = Poly({(): sum(failing.values())})
        model = Poly({(): sum(n * calls_of[a] for a, n in failing.items())})
        ceil_inv = Poly({(): sum(ceiling.values())})
        ceil_model = Poly({(): sum(n * calls_of[a] for a, n in ceiling.items())})
        for edge in fan_outs:
            if edge.source not in ceiling or edge.target not in known:
                continue
            symbol = symbol_of[edge.source]
            child_inv, child_model, child_ceil_inv, child_ceil_model = polys[edge.target]
            if edge.source in failing:
                inv = _check_size(inv + child_inv.times(failing[edge.source], symbol))
                model = _check_size(model + child_model.times(failing[edge.source], symbol))
            times = ceiling[edge.source]
            ceil_inv = _check_size(ceil_inv + child_ceil_inv.times(times, symbol))
            ceil_model = _check_size(ceil_model + child_ceil_model.times(times, symbol))
        polys[start] = (inv, model, ceil_inv, ceil_model)

    entry = spec.entry_agent
    try:
        active = [entry]
        pending = [iter(open_scope(entry, None))]
        while pending:
            for edge in pending[-1]:
                symbol_for(edge.source)
                child = edge.target
                if child in active:
                    raise _Unbounded("fan-out cycle through " + " -> ".join([*active, child]))
                children = open_scope(child, edge.source)
                if child not in polys:
                    active.append(child)
                    pending.append(iter(children))
                    break
            else:
                pending.pop()
                close_scope(active.pop())
    except _Unbounded as exc:
        return WorstCase(scopes, None, None, {}, unbounded=str(exc))
    except _TooComplex as exc:
        symbols = {n: agent for agent, n in symbol_of.items()}
        return WorstCase(scopes, None, None, symbols, too_complex=str(exc))
    inv, model, ceil_inv, ceil_model = polys[entry]
    symbols = {n: agent for agent, n in symbol_of.items()}
    return WorstCase(scopes, inv, model, symbols, None, ceil_inv, ceil_model)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def pipeline_summary(spec: PipelineSpec, source: str) -> str:
    """The generated module's docstring: what the pipeline does, in a few lines."""
    edges = dispatch_edges(spec)
    dispatch = "; ".join(f"{e.source} -> {e.target} ({e.kind})" for e in edges) or "none"
    loops = "; ".join(
        f"{loop.qa} fails -> {loop.target} again, at most {loop.max_attempts} attempts"
        for loop in qa_loops(spec)
    )
    paragraphs = [
        f"Compiled from {source}.",
        f"Agents: {', '.join(a.id for a in spec.agents)} (entry: {spec.entry_agent}). "
        f"Dispatch: {dispatch}.",
        f"QA loops: {loops or 'none'}.",
    ]
    if spec.aggregation is not None:
        agg = spec.aggregation
        rule = agg.strategy + (f" (min_pass {agg.min_pass})" if agg.min_pass else "")
        paragraphs.append(
            f"Aggregation: {rule} over {', '.join(agg.gates)}; "
            f"-> {agg.on_complete.transition} when every item passes, "
            f"-> {agg.on_any_abort.transition} if any item aborts."
        )
    lines: list[str] = []
    for paragraph in paragraphs:
        lines.extend(_wrap(paragraph, 92))
    return "\n".join([f"Pipeline {spec.name!r} v{spec.version}.", "", *lines, ""])


def agent_summary(agent: AgentSpec, spec: PipelineSpec) -> list[str]:
    """Docstring lines for an agent's default handler (first line: the summary)."""
    model = agent.model or spec.defaults.model
    if agent.handler is not None:
        details = [f"Handler: {agent.handler}."]
    else:
        prompt = agent.prompt if agent.prompt is not None else "inline instructions"
        details = [f"Prompt: {prompt}. Model: {model}."]
        details.append(f"Tools: {', '.join(agent.tools) or 'none'}.")
    if agent.output is not None:
        details.append(f"Output: {', '.join(f.name for f in agent.output.fields)}.")
    if agent.dispatch is not None:
        targets = _targets(agent)
        details.append(f"Dispatch: {agent.dispatch.strategy} -> {', '.join(targets)}.")
    if agent.on_fail is not None:
        to = f" -> {agent.on_fail.target}" if agent.on_fail.target else ""
        details.append(
            f"On a failing verdict: {agent.on_fail.action}{to} "
            f"(at most {max_attempts(agent, spec)} attempts per item)."
        )
    if agent.handler is not None:
        first = f"Run {agent.id}'s handler function (named in the pipeline file)."
    else:
        first = f"Run {agent.id} from its prompt on its model (the default behaviour)."
    lines = [first]
    for detail in details:
        lines.extend(_wrap(detail, 84))
    return lines


def _targets(agent: AgentSpec) -> Iterable[str]:
    if agent.dispatch is None:
        return ()
    if agent.dispatch.strategy == "parallel_broadcast":
        return agent.dispatch.targets
    return (agent.dispatch.target,) if agent.dispatch.target else ()


def immediate_dominators(spec: PipelineSpec) -> dict[str, str | None] | None:
    """Each agent reachable from the entry -> the agent that runs right before it on every
    dispatch path (its immediate dominator; None for the entry), or None for a cyclic graph.

    Every dispatch edge counts (a fan-out's children are items whose ancestor ran the
    parent). One pass in topological order, intersecting the predecessors' dominator
    chains (Cooper, Harvey and Kennedy), with no recursion.
    """
    graph: dict[str, list[str]] = {a.id: [] for a in spec.agents}
    for edge in dispatch_edges(spec):
        graph.setdefault(edge.source, []).append(edge.target)
    start = spec.entry_agent
    try:
        order = _topological(graph, start)
    except _Unbounded:
        return None
    position = {agent: index for index, agent in enumerate(order)}
    predecessors: dict[str, list[str]] = {agent: [] for agent in order}
    for source in order:
        for target in graph.get(source, ()):
            predecessors[target].append(source)
    idom: dict[str, str | None] = {start: None}
    for agent in order[1:]:
        found: str | None = None
        for pred in predecessors[agent]:
            if found is None:
                found = pred
                continue
            a, b = found, pred
            while a != b:  # walk the later one up its chain until the two chains meet
                if position[a] > position[b]:
                    a = idom[a] or start
                else:
                    b = idom[b] or start
            found = a
        idom[agent] = found
    return idom


def dominates(idom: dict[str, str | None], runs_first: str, reader: str) -> bool:
    """True if `runs_first` runs before `reader` on every path (strictly: not itself)."""
    node = idom.get(reader)
    while node is not None:
        if node == runs_first:
            return True
        node = idom.get(node)
    return False
