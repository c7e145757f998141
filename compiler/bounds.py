"""Worst-case call counts: the bound `--explain` prints and generated docstrings state.

Worst-case counting (docs: `agentflowc --explain`). Agents run per work item.
Sequential, broadcast, route, join and reduce edges stay on the item; a fan-out
edge starts N child items (N is known only at run time). Two figures:

* every verdict fails (exact for the examples): a failing QA agent dispatches
  nothing, and a joined broadcast with a QA branch that has `on_fail` never
  reaches its join (the branch retries, then aborts the item);
* any verdicts (the ceiling): passing verdicts let the agents after a QA agent run.

Within one item the cost of one run of an agent is a dynamic program over the
dispatch DAG (the bounded route cases that close loops removed), in reverse
topological order: itself, plus every agent it always starts (a sequential or
broadcast target, its join or reduce agent), plus N times the cost of a fan-out
child item, plus, for a router, the MAXIMUM over its cases (paths a route makes
exclusive never both run; `end` and `abort` cost nothing; with fan-outs the costs
are polynomials in N and the maximum is taken coefficient by coefficient, which
is exact when one case's polynomial dominates the others). Then re-runs are added
as "passes", each counted at most as often as its per-item budget allows:

* a loop case with `max_iterations: n` may be taken n times per item (its counter
  is per item, never reset, so nested loops add, they do not multiply); each
  taking re-runs its target, and that pass ends at the router (the router's own
  exit is counted once, by whatever entered the loop);
* a QA "site" (every verdict failing: QA agents a broadcast joins fail together
  and re-run the first loop's target; any verdicts: every QA loop on its own)
  re-runs its target `max_attempts - 1` times per item.

runs = cost(start) + sum over passes of (times allowed) x cost(pass). This is a
sound bound for every pipeline; it is exact (reached by some run) when the worst
choices of the routers reach every loop and QA site they count, no QA agent with
`on_fail` shares an item with a loop (its attempts are per item and its abort ends
the item's loop), and every maximum is dominated; otherwise `WorstCase.exact` is
False and `notes` say why. (v1's caveat stays: two QA sites in parallel branches
are counted as if both ran out, but the first to run out aborts the item.)

Path counts come from passes over the DAG in topological order (integers,
never enumerated), and no analysis recurses: 2**40 paths or a 1,000-agent chain
cost what the graph's size costs. A loop pass recomputes only the agents between
its target and its router.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agentflow.runtime.spec import AgentSpec, PipelineSpec, RouteCase

from .flow import (
    CycleFound,
    dispatch_targets,
    feedback_edges,
    max_attempts,
    max_model_calls,
    qa_loops,
    topological,
)

__all__ = [
    "Poly",
    "Scope",
    "WorstCase",
    "agent_summary",
    "own_model_calls",
    "path_counts",
    "pipeline_summary",
    "unbounded_cycles",
    "worst_case",
]


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

    def dominates(self, other: Poly) -> bool:
        """Every coefficient at least the other's (so at least as large for every N >= 0)."""
        return all(self.terms.get(m, 0) >= c for m, c in other.terms.items())

    def upper(self, other: Poly) -> Poly:
        """The coefficient-wise maximum: at least both, for every N >= 0."""
        terms = dict(self.terms)
        for mono, coef in other.terms.items():
            terms[mono] = max(terms.get(mono, 0), coef)
        return Poly(terms)

    def renamed(self, names: Mapping[str, str]) -> Poly:
        terms: dict[tuple[str, ...], int] = {}
        for mono, coef in self.terms.items():
            key = tuple(sorted(names[s] for s in mono))
            terms[key] = terms.get(key, 0) + coef
        return Poly(terms)

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for mono in sorted(self.terms, key=lambda m: (len(m), m)):
            coef = self.terms[mono]
            factors = ([str(coef)] if coef != 1 or not mono else []) + list(mono)
            parts.append("·".join(factors))
        return " + ".join(parts)


ZERO = Poly()


@dataclass(frozen=True)
class Scope:
    """The agents one work item runs, from `start`; `via` is the fan-out agent that made it.

    `runs`: invocations of the worst run when every QA verdict fails; `ceiling`: the
    most any mix of verdicts can cause (see `worst_case`). With routes, the counts of
    the worst choices (the routers' maxima).
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
    """symbol -> the fan-out agent whose items it counts (`team.planner` in a sub-pipeline)."""
    unbounded: str | None = None
    ceiling_invocations: Poly | None = None
    ceiling_model_calls: Poly | None = None
    too_complex: str | None = None
    """Why no formula is printed for a bounded pipeline (it would be too long to read)."""
    exact: bool = True
    """False when `invocations` is an upper bound that no run may reach (`notes` say why)."""
    notes: tuple[str, ...] = ()
    children: dict[str, WorstCase] = field(default_factory=dict)
    """Each sub-pipeline agent -> its child pipeline's own bound (already added in)."""


class _TooComplex(Exception):
    pass


MAX_FORMULA_TERMS = 256
"""A worst-case formula with more terms than this is not printed (it is not readable)."""


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
    return _propagate(graph, topological(graph, start), {start: 1})


def own_model_calls(agent: AgentSpec, spec: PipelineSpec) -> int:
    """Model calls one invocation makes itself (a sub-pipeline agent: none; its child's
    agents make them, and the child's bound counts them)."""
    if agent.pipeline is not None or agent.human is not None:
        return 0  # a person answers a human agent
    return max_model_calls(agent, spec)


@dataclass
class _Node:
    """One agent as the counting sees it, in one mode (every verdict failing, or any)."""

    always: list[str] = field(default_factory=list)
    """Agents each run starts on the same item: sequential / broadcast targets, join, reduce."""
    router: bool = False
    cases: list[str | None] = field(default_factory=list)
    """A router's cases that do not close a loop, in YAML order (None: `end` / `abort`)."""
    loops: list[tuple[str, int]] = field(default_factory=list)
    """A router's cases that close a loop: (target, max_iterations)."""
    fan_out: str | None = None
    """The first agent of each child item."""


def _nodes(spec: PipelineSpec, failing: bool) -> dict[str, _Node]:
    """The counting graph. `failing`: a failing QA agent dispatches nothing, and a joined
    broadcast with a QA branch that has `on_fail` never reaches its join."""
    known = {a.id: a for a in spec.agents}
    nodes: dict[str, _Node] = {}
    bounded: dict[str, list[tuple[str | None, int | None]]] = {}
    for agent in spec.agents:
        node = nodes[agent.id] = _Node()
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        quiet = failing and spec.output_kind(agent) == "verdict"
        if dispatch.strategy == "parallel_fan_out":
            node.fan_out = dispatch.target if dispatch.target in known else None
            if dispatch.reduce in known and not quiet:
                node.always.append(dispatch.reduce)
        elif quiet:
            continue
        elif dispatch.strategy == "route":
            node.router = True
            cases = [*dispatch.cases.values(), *([dispatch.default] if dispatch.default else [])]
            bounded[agent.id] = [
                (c.target if c.target in known else None, c.max_iterations) for c in cases
            ]
        elif dispatch.strategy == "parallel_broadcast":
            node.always.extend(t for t in dispatch.targets if t in known)
            joined = dispatch.join
            may_abort = any(known[t].on_fail is not None for t in dispatch.targets if t in known)
            if joined in known and not (failing and may_abort):
                node.always.append(joined)
        elif dispatch.target in known:
            node.always.append(dispatch.target)
    full = {a: [*n.always, *(t for t, _ in bounded.get(a, ()) if t)] for a, n in nodes.items()}
    component = _components(full)
    for router, routes in bounded.items():
        node = nodes[router]
        for target, limit in routes:
            if target is not None and limit is not None and component[target] == component[router]:
                node.loops.append((target, limit))
            else:
                node.cases.append(target)
    return nodes


def _components(graph: dict[str, list[str]]) -> dict[str, int]:
    """Strongly connected components (Tarjan's, with an explicit stack): agent -> number."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    for root in graph:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    break
                if nxt not in component:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    while True:
                        member = stack.pop()
                        component[member] = index[node]
                        if member == node:
                            break
    return component


@dataclass(frozen=True)
class _Pass:
    """Re-runs of `seed` on one item, at most `times` times: a loop case's takings (the
    pass ends at `forced`, the router, which takes the case again) or a QA site's retries.
    `trigger` must run for the re-runs to happen."""

    seed: str
    times: int
    trigger: str
    forced: str | None
    body: tuple[str, ...] = ()
    """The agents between `seed` and `forced` (whose cost changes when the router loops)."""


_ROOT = ""  # not an agent id: the synthetic root of a scope's topological order
_SIZE = 1 << 20  # how route cases with polynomial costs are ranked (as if N were this big)


def _size(poly: Poly) -> int:
    return sum(coef * _SIZE ** len(mono) for mono, coef in poly.terms.items())


@dataclass
class _Evaluation:
    total: Poly
    choices: dict[str, int]
    pass_choices: list[dict[str, int]]
    dominated: bool


class _ScopeGraph:
    """One work item's agents from `start` in one mode: the order, the passes, the DP."""

    def __init__(self, nodes: dict[str, _Node], start: str, retry_to: Mapping[str, str]) -> None:
        """`retry_to`: QA agent -> its feedback target (re-runs may start there, even
        when no dispatch path from `start` does)."""
        self.nodes = nodes
        self.start = start
        reached = {start}
        stack = [start]
        while stack:
            agent = stack.pop()
            node = nodes.get(agent)
            if node is None:
                continue
            loops = (t for t, _ in node.loops)
            retry = (retry_to[agent],) if agent in retry_to else ()
            for nxt in (*node.always, *(t for t in node.cases if t), *loops, *retry):
                if nxt not in reached:
                    reached.add(nxt)
                    stack.append(nxt)
        dag = {a: [*n.always, *(t for t in n.cases if t)] for a, n in nodes.items()}
        in_order = [a for a in nodes if a in reached]
        dag[_ROOT] = [
            start,
            *(t for a in in_order for t, _ in nodes[a].loops),
            *(retry_to[a] for a in in_order if a in retry_to),
        ]
        self.order = topological(dag, _ROOT)[1:]  # raises CycleFound: an unbounded cycle
        self.position = {agent: index for index, agent in enumerate(self.order)}
        self.predecessors: dict[str, list[str]] = {a: [] for a in self.order}
        for source in self.order:
            for target in dag[source]:
                self.predecessors[target].append(source)
        self.passes: list[_Pass] = []
        for router in self.order:
            for target, limit in nodes[router].loops:
                self.passes.append(_Pass(target, limit, router, router, self._body(target, router)))

    def _body(self, seed: str, router: str) -> tuple[str, ...]:
        """The agents after `seed` (in order) that lead to `router`, last first."""
        floor = self.position[seed]
        seen = {router}
        stack = [router]
        while stack:
            for pred in self.predecessors[stack.pop()]:
                if pred not in seen and self.position[pred] >= floor:
                    seen.add(pred)
                    stack.append(pred)
        return tuple(sorted(seen, key=self.position.__getitem__, reverse=True))

    def add_retries(self, seed: str, times: int, trigger: str) -> None:
        if times > 0 and seed in self.position and trigger in self.position:
            self.passes.append(_Pass(seed, times, trigger, None))

    def _successors(self, agent: str, choice: int) -> list[str]:
        """The agents one run of `agent` starts, its route taking case `choice` (-1: none)."""
        node = self.nodes[agent]
        chosen = node.cases[choice] if choice >= 0 else None
        return [*node.always, chosen] if chosen else node.always

    def evaluate(self, weight: Callable[[str], Poly], fan: Mapping[str, Poly]) -> _Evaluation:
        """The most `weight` one item can cost (see the module docstring)."""
        dominated = True

        def value(agent: str, vals: Mapping[str, Poly], forced: str | None) -> tuple[Poly, int]:
            nonlocal dominated
            total = weight(agent) + fan.get(agent, ZERO)
            if agent == forced:
                return total, -1
            node = self.nodes[agent]
            for nxt in node.always:
                total += vals[nxt]
            best = -1
            if node.router and node.cases:
                options = [vals[t] if t else ZERO for t in node.cases]
                best = max(range(len(options)), key=lambda i: (_size(options[i]), -i))
                upper = options[best]
                for option in options:
                    dominated = dominated and options[best].dominates(option)
                    upper = upper.upper(option)
                total += upper
            return _check_size(total), best

        vals: dict[str, Poly] = {}
        choices: dict[str, int] = {}
        for agent in reversed(self.order):
            vals[agent], choices[agent] = value(agent, vals, None)
        total = vals[self.start]
        pass_choices: list[dict[str, int]] = []
        for each in self.passes:
            local: dict[str, int] = {}
            if each.forced is None or each.seed not in each.body:
                cost = vals[each.seed]
            else:
                pass_vals = _Overlay(vals)
                for agent in each.body:
                    pass_vals.own[agent], local[agent] = value(agent, pass_vals, each.forced)
                cost = pass_vals[each.seed]
            pass_choices.append(local)
            total = _check_size(total + cost.times(each.times))
        return _Evaluation(total, choices, pass_choices, dominated)

    def walk(self, evaluation: _Evaluation) -> tuple[dict[str, int], list[str]]:
        """Runs per agent of the worst choices, and why they may not reach the bound."""
        seeds = {self.start: 1}
        local_runs: dict[str, int] = {}
        notes: list[str] = []
        for each, choices in zip(self.passes, evaluation.pass_choices, strict=True):
            if each.forced is None or each.seed not in each.body:
                seeds[each.seed] = seeds.get(each.seed, 0) + each.times
                if each.forced is not None and each.times > 1:
                    notes.append(
                        f"{each.seed} leads back to router '{each.forced}' only through "
                        "another loop, so each pass is counted in full"
                    )
                continue
            inside = set(each.body)
            flow = {each.seed: each.times}
            loops_again = False
            for agent in reversed(each.body):
                times = flow.pop(agent, 0)
                if not times:
                    continue
                local_runs[agent] = local_runs.get(agent, 0) + times
                if agent == each.forced:
                    loops_again = True
                    continue
                for nxt in self._successors(agent, choices[agent]):
                    into = flow if nxt in inside else seeds
                    into[nxt] = into.get(nxt, 0) + times
            if each.times > 1 and not loops_again:
                notes.append(
                    f"the worst choices after {each.seed} leave the loop of router "
                    f"'{each.forced}', so it cannot be taken {each.times} times"
                )
        counts = dict.fromkeys(self.order, 0)
        for agent, times in seeds.items():
            counts[agent] += times
        for agent in self.order:
            times = counts[agent]
            if times:
                for nxt in self._successors(agent, evaluation.choices[agent]):
                    counts[nxt] += times
        for agent, times in local_runs.items():
            counts[agent] += times
        for each in self.passes:
            if not counts.get(each.trigger):
                what = "router" if each.forced else "QA agent"
                notes.append(
                    f"the worst choices never reach {what} '{each.trigger}', whose "
                    "re-runs are counted"
                )
        if not evaluation.dominated:
            notes.append(
                "a route's cases cost different polynomials in the fan-out sizes: the "
                "bound takes each term's largest coefficient"
            )
        return counts, notes


class _Overlay(Mapping[str, Poly]):
    """A pass's values: its own for the loop body, the scope's for everything else."""

    def __init__(self, base: Mapping[str, Poly]) -> None:
        self.base = base
        self.own: dict[str, Poly] = {}

    def __getitem__(self, key: str) -> Poly:
        found = self.own.get(key)
        return found if found is not None else self.base[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)


def _retry_sites(spec: PipelineSpec, reached: list[str], start: str) -> list[tuple[str, ...]]:
    """The places where failing verdicts are handled together, as tuples of QA agents:
    each broadcast's QA targets (joined), and each QA agent started on its own (the
    item's first agent, a sequential target, a route case, a join or reduce agent)."""
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
        alone: list[str | None] = [dispatch.join, dispatch.reduce]
        if dispatch.strategy == "parallel_broadcast":
            joined = tuple(t for t in dispatch.targets if t in verdicts)
            if joined:
                sites[joined] = None
        elif dispatch.strategy == "sequential":
            alone.append(dispatch.target)
        elif dispatch.strategy == "route":
            alone.extend(c.target for c in (*dispatch.cases.values(), dispatch.default) if c)
        for target in alone:
            if target in verdicts:
                sites[(target,)] = None
    return list(sites)


def _in_spec_order(spec: PipelineSpec, runs: Mapping[str, int]) -> dict[str, int]:
    position = {a.id: index for index, a in enumerate(spec.agents)}
    kept = [a for a, n in runs.items() if n and a in position]
    return {a: runs[a] for a in sorted(kept, key=position.__getitem__)}


def _check_size(poly: Poly) -> Poly:
    if len(poly.terms) > MAX_FORMULA_TERMS:
        raise _TooComplex(
            f"the fan-outs combine into a formula of more than {MAX_FORMULA_TERMS} terms"
        )
    return poly


def unbounded_cycles(spec: PipelineSpec) -> list[list[str]]:
    """Groups of agents that dispatch to each other in a cycle that no route case with
    `max_iterations` bounds (fan-out, join and reduce edges included), in listed order."""
    order = {agent.id: position for position, agent in enumerate(spec.agents)}
    graph: dict[str, list[str]] = {agent_id: [] for agent_id in order}
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        cases = [*dispatch.cases.values(), *([dispatch.default] if dispatch.default else [])]
        targets = [
            *(dispatch.target, dispatch.join, dispatch.reduce),
            *dispatch.targets,
            *(c.target for c in cases if c.max_iterations is None),
        ]
        graph[agent.id] = [t for t in targets if t in order]
    groups: dict[int, list[str]] = {}
    for agent_id, number in _components(graph).items():
        groups.setdefault(number, []).append(agent_id)
    cycles = [
        sorted(group, key=order.__getitem__)
        for group in groups.values()
        if len(group) > 1 or group[0] in graph[group[0]]
    ]
    return sorted(cycles, key=lambda group: order[group[0]])


class _LoadedChild(Protocol):
    """A loaded child pipeline (`LoadedPipeline`): its spec, and its own children if any."""

    @property
    def spec(self) -> PipelineSpec: ...


ChildPipelines = Mapping[str, "PipelineSpec | _LoadedChild"]
"""Sub-pipeline agent id -> its loaded child (or the child's spec)."""


def _child_bounds(
    spec: PipelineSpec,
    children: ChildPipelines | None,
    including: tuple[int, ...],
    memo: dict[int, WorstCase],
) -> dict[str, WorstCase] | WorstCase:
    """Each sub-pipeline agent's child bound, or the parent's WorstCase when one has none.

    `memo` holds each child's bound by the identity of its spec: a child included by
    many agents (a diamond of includes, 2^depth references) is counted once.
    """
    bounds: dict[str, WorstCase] = {}
    for agent in spec.agents:
        if agent.pipeline is None:
            continue
        loaded = (children or {}).get(agent.id)
        if loaded is None:
            return WorstCase(
                [],
                None,
                None,
                {},
                too_complex=(
                    f"sub-pipeline '{agent.id}' ({agent.pipeline}) is not loaded: "
                    "its bound is unknown"
                ),
            )
        child_spec = loaded if isinstance(loaded, PipelineSpec) else loaded.spec
        grandchildren = getattr(loaded, "children", None)
        if id(child_spec) in including:
            return WorstCase(
                [],
                None,
                None,
                {},
                unbounded=(f"sub-pipeline '{agent.id}' ({agent.pipeline}) includes itself"),
            )
        bound = memo.get(id(child_spec))
        if bound is None:
            bound = worst_case(child_spec, grandchildren, (*including, id(spec)), _memo=memo)
            memo[id(child_spec)] = bound
        if bound.unbounded is not None:
            return WorstCase(
                [],
                None,
                None,
                {},
                unbounded=(f"sub-pipeline '{agent.id}' ({agent.pipeline}): {bound.unbounded}"),
            )
        if bound.invocations is None:
            return WorstCase(
                [],
                None,
                None,
                {},
                too_complex=(f"sub-pipeline '{agent.id}' ({agent.pipeline}): {bound.too_complex}"),
            )
        bounds[agent.id] = bound
    return bounds


def worst_case(
    spec: PipelineSpec,
    children: ChildPipelines | None = None,
    _including: tuple[int, ...] = (),
    _memo: dict[int, WorstCase] | None = None,
) -> WorstCase:
    """Worst-case invocations and model calls per work item and per run.

    `children`: each sub-pipeline agent's loaded child pipeline (`LoadedPipeline.children`);
    a sub-pipeline agent counts itself once plus its child's bound. Linear in the graph
    per scope (a dynamic program over the dispatch DAG in topological order, path
    counts as integers), each fan-out's scope computed once; a loop pass recomputes only
    its body.
    """
    found = _child_bounds(spec, children, _including, {} if _memo is None else _memo)
    if isinstance(found, WorstCase):
        return found
    child_bounds = found
    modes = (_nodes(spec, failing=True), _nodes(spec, failing=False))
    known = {a.id: a for a in spec.agents}
    fan_count = sum(1 for n in modes[1].values() if n.fan_out) + sum(
        len(b.symbols) for b in child_bounds.values()
    )
    symbol_of: dict[str, str] = {}  # numbered in the order the run reaches the fan-outs
    calls_of = {a.id: own_model_calls(a, spec) for a in spec.agents}
    retry_to = {edge.source: edge.target for edge in feedback_edges(spec)}
    scopes: list[Scope] = []
    recorded: set[tuple[str, str | None]] = set()
    graphs: dict[str, tuple[_ScopeGraph, _ScopeGraph]] = {}
    runs_of: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
    polys: dict[str, tuple[Poly, Poly, Poly, Poly]] = {}
    notes: list[str] = []

    def symbol_for(agent: str) -> str:
        if agent not in symbol_of:
            symbol_of[agent] = "N" if fan_count == 1 else f"N{len(symbol_of) + 1}"
        return symbol_of[agent]

    def open_scope(start: str, via: str | None) -> list[tuple[str, str]]:
        """Record the scope (once per start and fan-out); its fan-outs (agent, child start)."""
        if start not in graphs:
            failing = _ScopeGraph(modes[0], start, retry_to)
            ceiling = _ScopeGraph(modes[1], start, retry_to)
            for site in _retry_sites(spec, failing.order, start):
                loops = [q for q in site if q in retry_to]
                if loops:
                    extra = min(max_attempts(known[q], spec) for q in loops) - 1
                    failing.add_retries(retry_to[loops[0]], extra, loops[0])
            for edge in feedback_edges(spec):
                extra = max_attempts(known[edge.source], spec) - 1
                ceiling.add_retries(edge.target, extra, edge.source)
            graphs[start] = (failing, ceiling)
            runs_of[start] = ({}, {})
            for agent in ceiling.order:
                for symbol, fan_agent in child_bounds.get(agent, _NO_BOUND).symbols.items():
                    del symbol
                    symbol_for(f"{agent}.{fan_agent}")
        failing_runs, ceiling_runs = runs_of[start]
        if (start, via) not in recorded:
            recorded.add((start, via))
            scopes.append(Scope(start, via, symbol_of.get(via or ""), failing_runs, ceiling_runs))
        ceiling = graphs[start][1]
        return [(a, f) for a in ceiling.order if (f := modes[1][a].fan_out) is not None]

    def weights(ceiling: bool) -> tuple[Callable[[str], Poly], Callable[[str], Poly]]:
        def child(agent: str, calls: bool) -> Poly:
            bound = child_bounds[agent]
            poly = (
                (bound.ceiling_model_calls if calls else bound.ceiling_invocations)
                if ceiling
                else (bound.model_calls if calls else bound.invocations)
            )
            assert poly is not None  # _child_bounds keeps only children with a formula
            names = {s: symbol_of[f"{agent}.{a}"] for s, a in bound.symbols.items()}
            return poly.renamed(names)

        def invocations(agent: str) -> Poly:
            one = Poly({(): 1})
            return one + child(agent, False) if agent in child_bounds else one

        def calls(agent: str) -> Poly:
            own = Poly({(): calls_of[agent]}) if calls_of[agent] else ZERO
            return own + child(agent, True) if agent in child_bounds else own

        return invocations, calls

    def close_scope(start: str) -> None:
        """Every child scope is done: this scope's polynomials and runs."""
        results: list[Poly] = []
        for index, graph in enumerate(graphs[start]):
            ceiling = index == 1
            fan_inv: dict[str, Poly] = {}
            fan_calls: dict[str, Poly] = {}
            for agent in graph.order:
                target = modes[index][agent].fan_out
                if target is not None:
                    child_inv, child_calls, ceil_inv, ceil_calls = polys[target]
                    symbol = symbol_of[agent]
                    fan_inv[agent] = (ceil_inv if ceiling else child_inv).times(1, symbol)
                    fan_calls[agent] = (ceil_calls if ceiling else child_calls).times(1, symbol)
            invocations, calls = weights(ceiling)
            evaluation = graph.evaluate(invocations, fan_inv)
            results += [evaluation.total, graph.evaluate(calls, fan_calls).total]
            counts, why = graph.walk(evaluation)
            runs_of[start][index].update(_in_spec_order(spec, counts))
            if not ceiling:
                if any(p.forced for p in graph.passes):
                    qa = [a for a in graph.order if counts.get(a) and known[a].on_fail]
                    if qa:
                        why.append(
                            f"QA agent '{qa[0]}' shares an item with a loop: its attempts "
                            "are counted per item and its failure ends the item early"
                        )
                notes.extend(n for n in why if n not in notes)
        polys[start] = (results[0], results[1], results[2], results[3])

    entry = spec.entry_agent
    try:
        active = [entry]
        pending = [iter(open_scope(entry, None))]
        while pending:
            for agent, child in pending[-1]:
                symbol_for(agent)
                if child in active:
                    raise CycleFound("fan-out cycle through " + " -> ".join([*active, child]))
                grandchildren = open_scope(child, agent)
                if child not in polys:
                    active.append(child)
                    pending.append(iter(grandchildren))
                    break
            else:
                pending.pop()
                close_scope(active.pop())
    except CycleFound as exc:
        return WorstCase(scopes, None, None, {}, unbounded=str(exc))
    except _TooComplex as exc:
        symbols = {n: agent for agent, n in symbol_of.items()}
        return WorstCase(scopes, None, None, symbols, too_complex=str(exc))
    inv, model, ceil_inv, ceil_model = polys[entry]
    symbols = {n: agent for agent, n in symbol_of.items()}
    for agent, bound in child_bounds.items():
        notes.extend(f"sub-pipeline '{agent}': {note}" for note in bound.notes)
    exact = not notes
    return WorstCase(
        scopes,
        inv,
        model,
        symbols,
        None,
        ceil_inv,
        ceil_model,
        None,
        exact,
        tuple(notes),
        dict(child_bounds),
    )


_NO_BOUND = WorstCase([], None, None, {})


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _cases(agent: AgentSpec) -> list[tuple[str, RouteCase]]:
    """A router's cases in YAML order, then its default (key "default")."""
    dispatch = agent.dispatch
    if dispatch is None:
        return []
    default = [("default", dispatch.default)] if dispatch.default is not None else []
    return [*dispatch.cases.items(), *default]


def _case_limit(case: RouteCase) -> str:
    """`max_iterations n, on_exhausted x` for a loop case, else empty."""
    if case.max_iterations is None:
        return ""
    return f"max_iterations {case.max_iterations}, on_exhausted {case.on_exhausted}"


def _dispatch_parts(agent: AgentSpec) -> list[str]:
    """`source -> target (how)` for each of the agent's dispatch edges, in listed order."""
    dispatch = agent.dispatch
    if dispatch is None:
        return []
    if dispatch.strategy == "route":
        return [
            f"{agent.id} -> {case.target} (route case {key}"
            + (f", {_case_limit(case)})" if _case_limit(case) else ")")
            for key, case in _cases(agent)
        ]
    parts = [f"{agent.id} -> {t} ({dispatch.strategy})" for t in dispatch_targets(agent)]
    if dispatch.join is not None:
        parts.append(f"{agent.id} -> {dispatch.join} (join)")
    if dispatch.reduce is not None:
        parts.append(f"{agent.id} -> {dispatch.reduce} (reduce)")
    return parts


def pipeline_summary(spec: PipelineSpec, source: str) -> str:
    """The generated module's docstring: what the pipeline does, in a few lines."""
    dispatch = "; ".join(part for a in spec.agents for part in _dispatch_parts(a)) or "none"
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
    elif agent.pipeline is not None:
        details = [f"Sub-pipeline: {agent.pipeline}."]
    elif agent.human is not None:
        question = agent.human.question or "inline instructions"
        assignee = f" Assignee: {agent.human.assignee}." if agent.human.assignee else ""
        details = [f"Human step. Question: {question}.{assignee}"]
    else:
        prompt = agent.prompt if agent.prompt is not None else "inline instructions"
        details = [f"Prompt: {prompt}. Model: {model}."]
        details.append(f"Tools: {', '.join(agent.tools) or 'none'}.")
    if agent.output is not None:
        details.append(f"Output: {', '.join(f.name for f in agent.output.fields)}.")
    if agent.dispatch is not None and agent.dispatch.strategy == "route":
        cases = ", ".join(
            f"{key} -> {case.target}" + (f" ({_case_limit(case)})" if _case_limit(case) else "")
            for key, case in _cases(agent)
        )
        details.append(f"Dispatch: route on {agent.dispatch.on or 'route'}: {cases}.")
    elif agent.dispatch is not None:
        targets = dispatch_targets(agent)
        details.append(f"Dispatch: {agent.dispatch.strategy} -> {', '.join(targets)}.")
    if agent.on_fail is not None:
        to = f" -> {agent.on_fail.target}" if agent.on_fail.target else ""
        details.append(
            f"On a failing verdict: {agent.on_fail.action}{to} "
            f"(at most {max_attempts(agent, spec)} attempts per item)."
        )
    if agent.handler is not None:
        first = f"Run {agent.id}'s handler function (named in the pipeline file)."
    elif agent.pipeline is not None:
        first = f"Run {agent.id}'s sub-pipeline; its result (text) is the output."
    elif agent.human is not None:
        first = f"Ask a person; the item waits until `agentflow answer` gives {agent.id}'s answer."
    else:
        first = f"Run {agent.id} from its prompt on its model (the default behaviour)."
    lines = [first]
    for detail in details:
        lines.extend(_wrap(detail, 84))
    return lines
