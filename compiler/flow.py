"""The agent graph of a pipeline: edges, QA loops, cycles and worst-case call counts.

Shared by `--explain`, `--graph` and the generated module's docstrings. Pure
functions of a `PipelineSpec`.

Worst-case counting (docs: `agentflowc --explain`). Agents run per work item.
Sequential and broadcast edges stay on the item; a fan-out edge starts N child
items (N is known only at run time). Within one item, an agent runs once per
dispatch path from the item's first agent. A QA agent `q` with
`feedback_and_retry` may send its target back at most `max_attempts(q) - 1`
times per item (its governor counts attempts per item, never reset), and each
time everything downstream of the target runs again:

    runs(a) = paths(start -> a) + sum over q of (max_attempts(q) - 1) * paths(target(q) -> a)

That reproduces the hello-world bound (writer 2 + reviewer 2 = 4) and is an
upper bound in general.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from agentflow.runtime.spec import STRUCTURED_REASKS, AgentSpec, PipelineSpec

__all__ = [
    "Edge",
    "Poly",
    "QALoop",
    "Scope",
    "WorstCase",
    "agent_summary",
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
    (QA verdict, fan-out items) may be asked again `STRUCTURED_REASKS` times.
    """
    calls = (agent.max_tool_rounds or spec.defaults.max_tool_rounds) + 1 if agent.tools else 1
    if spec.output_kind(agent) != "text":
        calls += STRUCTURED_REASKS
    return calls


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


def _paths(graph: dict[str, list[str]], start: str, goal: str, limit: int = 20) -> list[list[str]]:
    found: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        if len(found) >= limit:
            return
        if node == goal:
            found.append(path)
            return
        for nxt in graph.get(node, []):
            if nxt not in path:
                walk(nxt, [*path, nxt])

    walk(start, [start])
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
    """Groups of agents that dispatch to each other in a cycle (no retry bound breaks those)."""
    graph: dict[str, list[str]] = {a.id: [] for a in spec.agents}
    for edge in dispatch_edges(spec):
        graph.setdefault(edge.source, []).append(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def strongconnect(node: str) -> None:  # Tarjan's algorithm; pipelines are small
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, []):
                order = [a.id for a in spec.agents]
                cycles.append(sorted(group, key=lambda a: order.index(a) if a in order else 0))

    for agent in spec.agents:
        if agent.id not in index:
            strongconnect(agent.id)
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
    """The agents one work item runs, from `start`; `via` is the fan-out agent that made it."""

    start: str
    via: str | None
    symbol: str | None
    runs: dict[str, int]

    def total(self, weight: Callable[[str], int] = lambda _: 1) -> int:
        return sum(n * weight(a) for a, n in self.runs.items())


@dataclass(frozen=True)
class WorstCase:
    """Worst-case agent invocations and model calls, or why they are unbounded."""

    scopes: list[Scope]
    invocations: Poly | None
    model_calls: Poly | None
    symbols: dict[str, str]
    """symbol -> the fan-out agent whose items it counts."""
    unbounded: str | None = None


class _Unbounded(Exception):
    pass


def path_counts(graph: dict[str, list[str]], start: str) -> dict[str, int]:
    """How many dispatch paths lead from `start` to each agent (a cycle is unbounded)."""
    counts: dict[str, int] = {}

    def visit(node: str, active: tuple[str, ...]) -> None:
        if node in active:
            raise _Unbounded(" -> ".join([*active[active.index(node) :], node]))
        counts[node] = counts.get(node, 0) + 1
        for nxt in graph.get(node, []):
            visit(nxt, (*active, node))

    visit(start, ())
    return counts


def _scope_runs(spec: PipelineSpec, graph: dict[str, list[str]], start: str) -> dict[str, int]:
    runs = path_counts(graph, start)
    base = dict(runs)
    for edge in feedback_edges(spec):
        if edge.source in base and edge.target in base:
            extra = max_attempts(spec.agent(edge.source), spec) - 1
            for agent, count in path_counts(graph, edge.target).items():
                runs[agent] = runs.get(agent, 0) + extra * count
    order = [a.id for a in spec.agents]
    return {a: runs[a] for a in sorted(runs, key=lambda a: order.index(a) if a in order else 0)}


def worst_case(spec: PipelineSpec) -> WorstCase:
    """Worst-case invocations and model calls per work item and per run."""
    graph = same_item_graph(spec)
    fan_outs = [e for e in dispatch_edges(spec) if e.kind == "parallel_fan_out"]
    symbol_of: dict[str, str] = {}  # numbered in the order the run reaches the fan-outs

    def symbol_for(agent: str) -> str:
        if agent not in symbol_of:
            symbol_of[agent] = "N" if len(fan_outs) == 1 else f"N{len(symbol_of) + 1}"
        return symbol_of[agent]

    scopes: list[Scope] = []
    known = {a.id for a in spec.agents}

    def calls(start: str, via: str | None, active: tuple[str, ...]) -> tuple[Poly, Poly]:
        if start in active:
            raise _Unbounded("fan-out cycle through " + " -> ".join([*active, start]))
        runs = _scope_runs(spec, graph, start)
        runs = {a: n for a, n in runs.items() if a in known}
        scopes.append(Scope(start, via, symbol_of.get(via or ""), runs))
        inv = Poly({(): sum(runs.values())})
        model = Poly({(): sum(n * max_model_calls(spec.agent(a), spec) for a, n in runs.items())})
        for edge in fan_outs:
            if edge.source in runs and edge.target in known:
                symbol_for(edge.source)
                child_inv, child_model = calls(edge.target, edge.source, (*active, start))
                symbol = symbol_for(edge.source)
                inv = inv + child_inv.times(runs[edge.source], symbol)
                model = model + child_model.times(runs[edge.source], symbol)
        return inv, model

    try:
        inv, model = calls(spec.entry_agent, None, ())
    except _Unbounded as exc:
        return WorstCase(scopes, None, None, {}, unbounded=str(exc))
    return WorstCase(scopes, inv, model, {n: agent for agent, n in symbol_of.items()})


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
    details = [f"Prompt: {agent.prompt}. Model: {model}."]
    details.append(f"Tools: {', '.join(agent.tools) or 'none'}.")
    if agent.dispatch is not None:
        targets = _targets(agent)
        details.append(f"Dispatch: {agent.dispatch.strategy} -> {', '.join(targets)}.")
    if agent.on_fail is not None:
        to = f" -> {agent.on_fail.target}" if agent.on_fail.target else ""
        details.append(
            f"On a failing verdict: {agent.on_fail.action}{to} "
            f"(at most {max_attempts(agent, spec)} attempts per item)."
        )
    lines = [f"Run {agent.id} from its prompt on its model (the default behaviour)."]
    for detail in details:
        lines.extend(_wrap(detail, 84))
    return lines


def _targets(agent: AgentSpec) -> Iterable[str]:
    if agent.dispatch is None:
        return ()
    if agent.dispatch.strategy == "parallel_broadcast":
        return agent.dispatch.targets
    return (agent.dispatch.target,) if agent.dispatch.target else ()
