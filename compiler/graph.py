"""`agentflowc --graph mermaid|dot`: the agent graph and the state graph as diagram source.

Agent graph: dispatch edges labelled by strategy, QA feedback edges dashed. A
`handler:` agent is drawn as a subroutine (mermaid `[[...]]`, dot `component`);
an agent with `output:` lists its output fields under its id (DSL v2). DSL v2
part 2: a router's edges are labelled with their case (`case billing`, `default`;
a loop case `case more, max 8`), `end` and `abort` are terminal nodes; a join is
drawn from each joined target to the join agent (bold), a reduce from the fan-out
agent to the reduce agent (bold); a typed fan-out names its `items` field; a
sub-pipeline agent is drawn with its child's agents in a subgraph (mermaid) or
cluster (dot), the agent pointing at the child's entry (`runs`).
State graph: one edge per (state, target) pair, labelled with the triggers
that take it (every trigger is legal from every non-terminal state, so the
full table would repeat each trigger per state; it is merged per pair).

Both formats print ONE document per pipeline, holding both graphs side by side:
`mermaid` is one `flowchart` with an `agents` and a `states` subgraph (Mermaid
renders one diagram per block, so two diagrams in one block would be rejected);
`dot` is one `digraph` with a cluster per graph. Node ids are prefixed
(`agent_<id>`, `state_<id>`) so an agent and a state of the same name stay
apart; a child pipeline's nodes are `agent_S<len><agent>_<child id>` (upper case
never occurs in an id, so no agent of the parent can take such a name), and
`end` / `abort` are `agent_END` / `agent_ABORT` (per child: with its prefix).
States are rounded, terminal states double circles, and a `start` dot points at
the initial state. Ids are validated identifiers; the free text (the pipeline
name, route case keys, the `on` and `items` field names, file names) is escaped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from agentflow.runtime.pipeline import derive_transitions
from agentflow.runtime.spec import ROUTE_ABORT, ROUTE_END, AgentSpec, PipelineSpec

from .flow import feedback_edges, max_attempts

__all__ = ["render_graph"]

GraphFormat = Literal["mermaid", "dot"]
_STRATEGIES = ("sequential", "parallel_fan_out", "parallel_broadcast")


class _Loaded(Protocol):
    @property
    def spec(self) -> PipelineSpec: ...


def render_graph(loaded: _Loaded, fmt: GraphFormat) -> str:
    """The pipeline's agent and state graphs in `fmt`, as text ending in a newline.

    Raises:
        ValueError: `fmt` is neither "mermaid" nor "dot" (the CLI restricts it first).
    """
    if fmt == "mermaid":
        return _mermaid(loaded)
    if fmt == "dot":
        return _dot(loaded)
    raise ValueError(f"unknown graph format {fmt!r}; use 'mermaid' or 'dot'")


@dataclass(frozen=True)
class _AgentEdge:
    """One drawn agent edge: `style` "solid" (dispatch), "bold" (join, reduce, runs) or
    "dashed" (QA feedback)."""

    source: str
    target: str
    label: str
    style: Literal["solid", "bold", "dashed"] = "solid"


def _children(loaded: _Loaded) -> Mapping[str, _Loaded]:
    found: Mapping[str, _Loaded] | None = getattr(loaded, "children", None)
    return found or {}


def _case_label(key: str | None, max_iterations: int | None) -> str:
    label = "default" if key is None else f"case {key}"
    return label + (f", max {max_iterations}" if max_iterations is not None else "")


def _agent_edges(spec: PipelineSpec, prefix: str) -> Iterator[_AgentEdge]:
    """Every agent edge, agents in listed order (node ids already prefixed)."""
    for agent in spec.agents:
        dispatch = agent.dispatch
        source = prefix + agent.id
        if dispatch is None:
            continue
        if dispatch.strategy == "route":
            cases: list[tuple[str | None, str, int | None]] = [
                (key, case.target, case.max_iterations) for key, case in dispatch.cases.items()
            ]
            if dispatch.default is not None:
                default = dispatch.default
                cases.append((None, default.target, default.max_iterations))
            for key, target, limit in cases:
                node = (
                    prefix + target.upper()
                    if target in (ROUTE_END, ROUTE_ABORT)
                    else (prefix + target)
                )
                yield _AgentEdge(source, node, _case_label(key, limit))
            continue
        targets = dispatch.targets if dispatch.strategy == "parallel_broadcast" else ()
        if dispatch.strategy != "parallel_broadcast" and dispatch.target is not None:
            targets = (dispatch.target,)
        label: str = dispatch.strategy
        if dispatch.items is not None:
            label += f" over {dispatch.items}"
        for target in targets:
            yield _AgentEdge(source, prefix + target, label)
        if dispatch.join is not None:
            for target in dispatch.targets:
                yield _AgentEdge(prefix + target, prefix + dispatch.join, "join", "bold")
        if dispatch.reduce is not None:
            label = "reduce, after every item"
            yield _AgentEdge(source, prefix + dispatch.reduce, label, "bold")
    for edge in feedback_edges(spec):
        label = _feedback_label(spec, edge.source)
        yield _AgentEdge(prefix + edge.source, prefix + edge.target, label, "dashed")


def _terminals(spec: PipelineSpec) -> list[str]:
    """`end` / `abort` if some route case goes there, in that order."""
    used = {
        case.target
        for agent in spec.agents
        if agent.dispatch is not None
        for case in (*agent.dispatch.cases.values(), agent.dispatch.default)
        if case is not None
    }
    return [t for t in (ROUTE_END, ROUTE_ABORT) if t in used]


def _state_edges(spec: PipelineSpec) -> list[tuple[str, str, list[str]]]:
    """(state, target, triggers) merged per pair, in table order."""
    merged: dict[tuple[str, str], list[str]] = {}
    for state, trigger, target in derive_transitions(spec):
        merged.setdefault((state, target), []).append(trigger)
    return [(s, t, triggers) for (s, t), triggers in merged.items()]


def _agent_label_lines(agent: AgentSpec) -> list[str]:
    """The node label: the id, then `handler`, `pipeline`, the route's field and/or the
    output fields (v2 agents only)."""
    lines = [agent.id]
    if agent.handler is not None:
        lines.append(f"handler {agent.handler}")
    if agent.pipeline is not None:
        lines.append(f"sub-pipeline {agent.pipeline}")
    if agent.dispatch is not None and agent.dispatch.strategy == "route":
        lines.append(f"routes on {agent.dispatch.on or 'route'}")
    if agent.output is not None:
        lines.append("output: " + ", ".join(f.name for f in agent.output.fields))
    return lines


def _feedback_label(spec: PipelineSpec, qa: str) -> str:
    return f"feedback, max {max_attempts(spec.agent(qa), spec)} attempts"


def _printable(text: str) -> str:
    """Line breaks and other control characters become spaces: labels stay on one line."""
    return "".join(c if c.isprintable() else " " for c in text)


def _mermaid_text(text: str) -> str:
    return _printable(text).replace('"', "#quot;")


def _child_prefix(prefix: str, agent: str) -> str:
    return f"{prefix}S{len(agent)}{agent}_"


def _mermaid_agents(
    loaded: _Loaded, prefix: str, indent: str, drawn: dict[int, str] | None = None
) -> list[str]:
    """The nodes and edges of one pipeline's agents (a child's nested in a subgraph).

    `drawn`: the node prefix of each child already drawn, by identity: a child that
    several agents include is drawn once, the others pointing at it (a diamond of
    includes would otherwise draw 2^depth copies).
    """
    drawn = {} if drawn is None else drawn
    spec = loaded.spec
    children = _children(loaded)
    lines: list[str] = []
    for agent in spec.agents:
        label = "<br/>".join(_mermaid_text(line) for line in _agent_label_lines(agent))
        subroutine = agent.handler is not None or agent.pipeline is not None
        shape = ("[[", "]]") if subroutine else ("[", "]")
        lines.append(f'{indent}{prefix}{agent.id}{shape[0]}"{label}"{shape[1]}')
    for terminal in _terminals(spec):
        lines.append(f'{indent}{prefix}{terminal.upper()}((("{terminal}")))')
    for agent in spec.agents:
        child = children.get(agent.id)
        if agent.pipeline is None or child is None:
            continue
        inner = drawn.get(id(child))
        if inner is None:
            inner = drawn[id(child)] = _child_prefix(prefix, agent.id)
            title = _mermaid_text(f"{agent.id}: {agent.pipeline}")
            lines.append(f'{indent}subgraph {inner}GROUP ["{title}"]')
            lines += _mermaid_agents(child, inner, indent + "    ", drawn)
            lines.append(f"{indent}end")
        entry = inner + child.spec.entry_agent
        lines.append(f"{indent}{prefix}{agent.id} ==>|runs| {entry}")
    arrows = {"solid": "-->", "bold": "==>", "dashed": "-.->"}
    for edge in _agent_edges(spec, prefix):
        plain = edge.label in _STRATEGIES  # v1's labels, unquoted as they always were
        label = edge.label if plain else f'"{_mermaid_text(edge.label)}"'
        lines.append(f"{indent}{edge.source} {arrows[edge.style]}|{label}| {edge.target}")
    return lines


def _mermaid(loaded: _Loaded) -> str:
    spec = loaded.spec
    terminal = set(spec.state_machine.terminal)
    lines = [
        f"%% {_mermaid_text(spec.name)}: agent graph and state graph",
        "flowchart TD",
        '    subgraph agents ["agents"]',
    ]
    lines += _mermaid_agents(loaded, "agent_", " " * 8)
    lines += ["    end", '    subgraph states ["states"]', '        states_start(("start"))']
    for state in spec.state_machine.states:
        shape = ('((("', '")))') if state.id in terminal else ('("', '")')
        lines.append(f"        state_{state.id}{shape[0]}{state.id}{shape[1]}")
    lines.append(f"        states_start --> state_{spec.state_machine.initial}")
    for source, target, triggers in _state_edges(spec):
        label = _mermaid_text(", ".join(triggers))
        lines.append(f'        state_{source} -->|"{label}"| state_{target}')
    lines.append("    end")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return _printable(text).replace("\\", "\\\\").replace('"', '\\"')


def _dot_agents(
    loaded: _Loaded, prefix: str, indent: str, drawn: dict[int, str] | None = None
) -> list[str]:
    """As `_mermaid_agents`, in DOT: a child's agents in a cluster, each child drawn once."""
    drawn = {} if drawn is None else drawn
    spec = loaded.spec
    children = _children(loaded)
    lines: list[str] = []
    for agent in spec.agents:
        label = "\\n".join(_dot_text(line) for line in _agent_label_lines(agent))
        subroutine = agent.handler is not None or agent.pipeline is not None
        shape = "component" if subroutine else "box"
        lines.append(f'{indent}{prefix}{agent.id} [label="{label}", shape={shape}];')
    for terminal in _terminals(spec):
        lines.append(
            f'{indent}{prefix}{terminal.upper()} [label="{terminal}", shape=doublecircle];'
        )
    for agent in spec.agents:
        child = children.get(agent.id)
        if agent.pipeline is None or child is None:
            continue
        inner = drawn.get(id(child))
        if inner is None:
            inner = drawn[id(child)] = _child_prefix(prefix, agent.id)
            title = _dot_text(f"{agent.id}: {agent.pipeline}")
            lines += [f"{indent}subgraph cluster_{inner}GROUP {{", f'{indent}    label="{title}";']
            lines += _dot_agents(child, inner, indent + "    ", drawn)
            lines.append(f"{indent}}}")
        entry = inner + child.spec.entry_agent
        lines.append(f'{indent}{prefix}{agent.id} -> {entry} [label="runs", style=bold];')
    for edge in _agent_edges(spec, prefix):
        style = "" if edge.style == "solid" else f", style={edge.style}"
        label = _dot_text(edge.label)
        lines.append(f'{indent}{edge.source} -> {edge.target} [label="{label}"{style}];')
    return lines


def _dot(loaded: _Loaded) -> str:
    spec = loaded.spec
    terminal = set(spec.state_machine.terminal)
    lines = [
        "digraph pipeline {",
        f'    label="{_dot_text(spec.name)}";',
        "    rankdir=TB;",
        "    subgraph cluster_agents {",
        '        label="agents";',
    ]
    lines += _dot_agents(loaded, "agent_", " " * 8)
    lines += ["    }", "    subgraph cluster_states {", '        label="states";']
    for state in spec.state_machine.states:
        shape = "doublecircle" if state.id in terminal else "circle"
        bold = ", style=bold" if state.id == spec.state_machine.initial else ""
        lines.append(f'        state_{state.id} [label="{state.id}", shape={shape}{bold}];')
    for source, target, triggers in _state_edges(spec):
        label = "\\n".join(triggers)
        lines.append(f'        state_{source} -> state_{target} [label="{label}"];')
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"
