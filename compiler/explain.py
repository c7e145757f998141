"""`agentflowc --explain`: what a pipeline will do, and how much it may cost, in plain text.

Sections: the state graph (states, triggers, terminal), the agent graph, every
cycle with the retry bound that breaks it, and the worst-case number of agent
invocations and model calls per work item and per run (a formula in N, the
fan-out size, which is known only at run time). See `flow.py` for the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from agentflow.runtime.pipeline import declared_triggers, derive_transitions
from agentflow.runtime.spec import STRUCTURED_REASKS, PipelineSpec

from .bounds import WorstCase, worst_case
from .flow import (
    describe_shape,
    dispatch_cycles,
    dispatch_edges,
    feedback_edges,
    max_model_calls,
    qa_loops,
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
    sections = [
        [f"Pipeline {spec.name!r} v{spec.version} ({loaded.source_path!r})"],
        _state_graph(spec),
        _agents(spec),
        _agent_graph(spec),
        _cycles(spec),
        _costs(spec, worst_case(spec)),
    ]
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
    lines = [f"Agent graph (entry: {spec.entry_agent})"]
    for edge in dispatch_edges(spec):
        lines.append(f"  {edge.source} -> {edge.target}  [{edge.kind}]")
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


def _cycles(spec: PipelineSpec) -> list[str]:
    lines = ["Cycles (the only legal ones are QA feedback loops, each bounded by max_attempts)"]
    for loop in qa_loops(spec):
        for path in loop.paths or ((loop.target, "...", loop.qa),):
            lines.append(
                f"  QA loop: {' -> '.join(path)} -.-> {loop.target}; broken by {loop.qa} "
                f"max_attempts = {loop.max_attempts} (at most {loop.max_attempts - 1} "
                f"retr{'y' if loop.max_attempts == 2 else 'ies'} per item)"
            )
    for group in dispatch_cycles(spec):
        lines.append(
            f"  UNBOUNDED dispatch cycle: {' -> '.join([*group, group[0]])} (no retry bound)"
        )
    if len(lines) == 1:
        lines.append("  none")
    return lines


def _costs(spec: PipelineSpec, worst: WorstCase) -> list[str]:
    lines = ["Worst case (every QA verdict fails until its attempts run out)"]
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
        calls = scope.total(lambda a: max_model_calls(spec.agent(a), spec))
        total = scope.total()
        lines.append(
            f"  {where}: {runs} = {total} invocation{'s' if total != 1 else ''}, "
            f"<= {calls} model call{'s' if calls != 1 else ''}"
        )
    lines.append(f"  per run: agent invocations = {worst.invocations}")
    lines.append(f"  per run: model calls <= {worst.model_calls}")
    for symbol, agent in worst.symbols.items():
        lines.append(f"  where {symbol} = work items one run of {agent} produces")
    lines.append(
        "  (an invocation is one model call, up to max_tool_rounds + 1 with tools, plus "
        f"{STRUCTURED_REASKS} re-ask for an invalid QA verdict, item list or typed output; "
        + ", ".join(f"{a.id} <= {max_model_calls(a, spec)}" for a in spec.agents)
        + ")"
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
