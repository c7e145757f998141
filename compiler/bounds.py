"""Worst-case call counts: the bound `--explain` prints and generated docstrings state.

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
from collections.abc import Callable
from dataclasses import dataclass, field

from agentflow.runtime.spec import AgentSpec, PipelineSpec

from .flow import (
    CycleFound,
    Edge,
    dispatch_edges,
    dispatch_targets,
    feedback_edges,
    max_attempts,
    max_model_calls,
    qa_loops,
    same_item_graph,
    topological,
)

__all__ = [
    "Poly",
    "Scope",
    "WorstCase",
    "agent_summary",
    "path_counts",
    "pipeline_summary",
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


def _ceiling_runs(spec: PipelineSpec, graph: dict[str, list[str]], start: str) -> dict[str, int]:
    """Runs per agent for any verdicts: paths(start -> a) + sum over QA loops q of
    (max_attempts(q) - 1) * paths(target(q) -> a). Every retry spends one attempt of
    the QA agent that asked for it, and re-runs at most the target's paths."""
    order = topological(graph, start)
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
    order = topological(graph, start)
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
                    raise CycleFound("fan-out cycle through " + " -> ".join([*active, child]))
                children = open_scope(child, edge.source)
                if child not in polys:
                    active.append(child)
                    pending.append(iter(children))
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
    elif agent.pipeline is not None:
        details = [f"Sub-pipeline: {agent.pipeline}."]
    else:
        prompt = agent.prompt if agent.prompt is not None else "inline instructions"
        details = [f"Prompt: {prompt}. Model: {model}."]
        details.append(f"Tools: {', '.join(agent.tools) or 'none'}.")
    if agent.output is not None:
        details.append(f"Output: {', '.join(f.name for f in agent.output.fields)}.")
    if agent.dispatch is not None:
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
    else:
        first = f"Run {agent.id} from its prompt on its model (the default behaviour)."
    lines = [first]
    for detail in details:
        lines.extend(_wrap(detail, 84))
    return lines
