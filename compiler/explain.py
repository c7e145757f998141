"""`agentflowc --explain`: what a pipeline will do, and how much it may cost, in plain text.

Sections: the state graph (states, triggers, terminal), the agent graph, every
cycle with the retry bound that breaks it, and the worst-case number of agent
invocations and model calls per work item and per run (a formula in N, the
fan-out size, which is known only at run time), with the sub-pipelines' own
bounds. See `bounds.py` for the rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Protocol

from agentflow.runtime.pipeline import declared_triggers, derive_transitions
from agentflow.runtime.spec import (
    ROUTE_ABORT,
    ROUTE_END,
    STRUCTURED_REASKS,
    AgentSpec,
    PipelineSpec,
    RouteCase,
)

from .bounds import ChildPipelines, WorstCase, own_model_calls, unbounded_cycles, worst_case
from .flow import (
    describe_shape,
    feedback_edges,
    qa_loops,
    same_item_graph,
)

__all__ = ["explain"]


class _Loaded(Protocol):
    @property
    def spec(self) -> PipelineSpec: ...
    @property
    def source_path(self) -> str: ...
    @property
    def prompts(self) -> Mapping[str, str]: ...


def explain(loaded: _Loaded) -> str:
    """The explanation of a loaded pipeline, as text ending in a newline."""
    spec = loaded.spec
    children: ChildPipelines | None = getattr(loaded, "children", None)
    worst = worst_case(spec, children)
    sections = [
        [f"Pipeline {spec.name!r} v{spec.version} ({loaded.source_path!r})"],
        _state_graph(spec),
        _agents(spec),
        _agent_graph(spec),
        _cycles(spec),
        _sub_pipelines(spec, worst),
        _costs(spec, worst),
    ]
    sections = [section for section in sections if section]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _state_graph(spec: PipelineSpec) -> list[str]:
    machine = spec.state_machine
    terminal = set(machine.terminal)
    names = []
    for state in machine.states:
        tags = [
            t
            for t, on in (
                ("initial", state.id == machine.initial),
                ("terminal", state.id in terminal),
            )
            if on
        ]
        names.append(state.id + (f" ({', '.join(tags)})" if tags else ""))
    triggers = declared_triggers(spec)
    width = max((len(t) for t, _ in triggers), default=0)
    lines = [
        "State machine",
        f"  states: {', '.join(names)}",
        "  triggers (each legal from every non-terminal state; no way out of a terminal state):",
    ]
    for trigger, target in triggers:
        deferred = target in terminal and not trigger.startswith("aggregation.")
        note = "  (deferred: taken when the run ends)" if deferred else ""
        lines.append(f"    {trigger.ljust(width)} -> {target}{note}")
    if not triggers:
        lines.append("    none: the run stays in its initial state")
    rows = len(derive_transitions(spec))
    open_states = len(machine.states) - len(terminal & {s.id for s in machine.states})
    lines.append(
        f"  legal moves: {open_states} non-terminal states x {len(triggers)} triggers = {rows}"
    )
    if spec.implicit_state_machine:
        lines.append(
            "  (the default state machine: no `state_machine:` in the file; the run ends "
            "complete when every item passed or ended, else failed)"
        )
    return lines


def _agents(spec: PipelineSpec) -> list[str]:
    """What each agent is (prompt file, inline instructions, handler) and what it answers."""
    lines = ["Agents and data"]
    if spec.input is not None:
        lines.append(f"  input: {describe_shape(spec.input.fields)} (validated before the run)")
    for agent in spec.agents:
        if agent.handler is not None:
            kind = f"handler {agent.handler} (your async function; no model call)"
        elif agent.pipeline is not None:
            kind = f"sub-pipeline {agent.pipeline} (its agents run as this one)"
        elif agent.instructions is not None:
            kind = "inline instructions"
        else:
            kind = f"prompt {agent.prompt}"
        if agent.output is not None:
            answer = f"answers {describe_shape(agent.output.fields)}"
        else:
            answer = f"answers {spec.output_kind(agent)}"
        lines.append(f"  {agent.id}: {kind}; {answer}")
    return lines


def _agent_graph(spec: PipelineSpec) -> list[str]:
    """Every dispatch edge in listed order; a router's cases (with `end` / `abort`), its
    default and the field it reads; join and reduce edges; fan-out `items:` fields."""
    lines = [f"Agent graph (entry: {spec.entry_agent})"]
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        if dispatch.strategy == "route":
            cases = ", ".join(dispatch.cases)
            default = f"; default -> {dispatch.default.target}" if dispatch.default else ""
            lines.append(
                f"  {agent.id} routes on '{dispatch.on or 'route'}': cases {cases}{default}"
            )
            for key, case in _route_cases(agent):
                lines.append(f"  {agent.id} -> {case.target}  [{_case_label(key, case)}]")
            continue
        targets = dispatch.targets if dispatch.strategy == "parallel_broadcast" else ()
        if dispatch.strategy != "parallel_broadcast" and dispatch.target is not None:
            targets = (dispatch.target,)
        kind: str = dispatch.strategy
        if dispatch.items is not None:
            kind += f" over output field '{dispatch.items}'"
        for target in targets:
            lines.append(f"  {agent.id} -> {target}  [{kind}]")
        if dispatch.join is not None:
            lines.append(
                f"  {agent.id} -> {dispatch.join}  [join: once per item, after "
                f"{', '.join(dispatch.targets)} finished]"
            )
        if dispatch.reduce is not None:
            lines.append(
                f"  {agent.id} -> {dispatch.reduce}  [reduce: once on the parent item, after "
                "every child item finished]"
            )
    for edge in feedback_edges(spec):
        lines.append(f"  {edge.source} -.-> {edge.target}  [feedback on a failing verdict]")
    for agent in spec.agents:
        if agent.on_fail is not None and agent.on_fail.action == "abort":
            lines.append(f"  {agent.id}: a failing verdict aborts the item")
    if spec.aggregation is not None:
        agg = spec.aggregation
        rule = agg.strategy + (f" (min_pass {agg.min_pass})" if agg.min_pass else "")
        lines.append(
            f"  aggregation: {rule} over {', '.join(agg.gates)} -> "
            f"{agg.on_complete.transition}, any abort -> {agg.on_any_abort.transition}"
        )
    return lines


def _route_cases(agent: AgentSpec) -> list[tuple[str | None, RouteCase]]:
    """A router's cases in YAML order, then its default (key None)."""
    dispatch = agent.dispatch
    if dispatch is None:
        return []
    cases: list[tuple[str | None, RouteCase]] = list(dispatch.cases.items())
    if dispatch.default is not None:
        cases.append((None, dispatch.default))
    return cases


def _case_label(key: str | None, case: RouteCase) -> str:
    label = "route default" if key is None else f"route case '{key}'"
    if case.target == ROUTE_END:
        label += ": the item ends"
    elif case.target == ROUTE_ABORT:
        label += ": the item aborts"
    if case.max_iterations is not None:
        label += f", max_iterations {case.max_iterations}, on_exhausted {case.on_exhausted}"
    return label


def _loop_path(graph: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """One shortest dispatch path from `start` to `goal` (breadth first, linear)."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path: list[str] = []
            step: str | None = node
            while step is not None:
                path.append(step)
                step = came_from[step]
            return path[::-1]
        for nxt in graph.get(node, ()):
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return None


def _cycles(spec: PipelineSpec) -> list[str]:
    lines = [
        "Cycles (each QA feedback loop is bounded by max_attempts, each route loop by "
        "max_iterations)"
    ]
    for loop in qa_loops(spec):
        for path in loop.paths or ((loop.target, "...", loop.qa),):
            lines.append(
                f"  QA loop: {' -> '.join(path)} -.-> {loop.target}; broken by {loop.qa} "
                f"max_attempts = {loop.max_attempts} (at most {loop.max_attempts - 1} "
                f"retr{'y' if loop.max_attempts == 2 else 'ies'} per item)"
            )
    graph = same_item_graph(spec)
    for agent in spec.agents:
        for key, case in _route_cases(agent):
            if case.max_iterations is None:
                continue
            found = _loop_path(graph, case.target, agent.id)
            if found is None:
                continue
            n = case.max_iterations
            then = "ends the item" if case.on_exhausted == ROUTE_END else "aborts the item"
            lines.append(
                f"  route loop: {' -> '.join(found)} -> {case.target} "
                f"(case '{key or 'default'}'); at most {n} iteration{'s' if n != 1 else ''} "
                f"per item (the body runs at most {n + 1} times), then choosing it again "
                f"{then} (on_exhausted: {case.on_exhausted})"
            )
    for group in unbounded_cycles(spec):
        lines.append(
            f"  UNBOUNDED dispatch cycle: {' -> '.join([*group, group[0]])} (no retry bound)"
        )
    if len(lines) == 1:
        lines.append("  none")
    return lines


def _sub_pipelines(spec: PipelineSpec, worst: WorstCase) -> list[str]:
    """Each sub-pipeline agent, its file and its child's own bound (added to the parent's)."""
    agents = [a for a in spec.agents if a.pipeline is not None]
    if not agents:
        return []
    lines = ["Sub-pipelines (each runs inside this run: same run id, log and budget)"]
    for agent in agents:
        child = worst.children.get(agent.id)
        if child is None or child.invocations is None or child.model_calls is None:
            lines.append(f"  {agent.id}: {agent.pipeline} (its bound is unknown)")
            continue
        parent_symbol = {agent: symbol for symbol, agent in worst.symbols.items()}
        names = {s: parent_symbol.get(f"{agent.id}.{a}", s) for s, a in child.symbols.items()}
        lines.append(
            f"  {agent.id}: {agent.pipeline}; one run of it: agent invocations = "
            f"{child.invocations.renamed(names)}, model calls <= "
            f"{child.model_calls.renamed(names)} (added to the parent's for each run of "
            f"{agent.id}, which counts itself once)"
        )
    return lines


def _routes_in(spec: PipelineSpec) -> bool:
    return any(a.dispatch is not None and a.dispatch.strategy == "route" for a in spec.agents)


def _costs(spec: PipelineSpec, worst: WorstCase) -> list[str]:
    header = "Worst case (every QA verdict fails until its attempts run out"
    if _routes_in(spec):
        header += "; each router takes its costliest case, each loop case all its iterations"
    lines = [header + ")"]
    if worst.unbounded is not None:
        lines.append(f"  unbounded: {worst.unbounded}")
        return lines
    if worst.invocations is None or worst.model_calls is None:
        lines.append(f"  no formula: {worst.too_complex}")
        return lines
    seen: set[tuple[str, str | None]] = set()
    for scope in worst.scopes:
        if (scope.start, scope.via) in seen:
            continue
        seen.add((scope.start, scope.via))
        where = (
            "per run item 'main'"
            if scope.via is None
            else f"per work item of {scope.via}'s fan-out ({scope.symbol} items per run of it)"
        )
        runs = ", ".join(f"{a} x{n}" for a, n in scope.runs.items())
        calls = scope.total(lambda a: own_model_calls(spec.agent(a), spec))
        total = scope.total()
        lines.append(
            f"  {where}: {runs} = {total} invocation{'s' if total != 1 else ''}, "
            f"<= {calls} model call{'s' if calls != 1 else ''}"
        )
    if worst.children:
        lines.append("  (each sub-pipeline agent above also runs its child pipeline's agents)")
    lines.append(f"  per run: agent invocations = {worst.invocations}")
    lines.append(f"  per run: model calls <= {worst.model_calls}")
    for symbol, agent in worst.symbols.items():
        lines.append(f"  where {symbol} = work items one run of {agent} produces")
    lines.append(
        "  (an invocation is one model call, up to max_tool_rounds + 1 with tools, plus "
        f"{STRUCTURED_REASKS} re-ask for an invalid QA verdict, item list or typed output; "
        + ", ".join(f"{a.id} <= {own_model_calls(a, spec)}" for a in spec.agents)
        + ")"
    )
    if not worst.exact:
        lines.append(
            "  (an upper bound: no run may reach it, because " + "; ".join(worst.notes) + ")"
        )
    ceiling, ceiling_calls = worst.ceiling_invocations, worst.ceiling_model_calls
    differs = (str(ceiling), str(ceiling_calls)) != (str(worst.invocations), str(worst.model_calls))
    if ceiling is not None and ceiling_calls is not None and differs:
        lines.append(
            f"  any mix of verdicts: agent invocations <= {ceiling}, model calls <= "
            f"{ceiling_calls} (a verdict that passes lets the agents after it run, and QA "
            "agents joined at one broadcast can fail in turn, each spending only its own "
            "attempts)"
        )
    return lines
