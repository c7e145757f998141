"""`agentflowc --graph mermaid|dot`: the agent graph and the state graph as diagram source.

Agent graph: dispatch edges labelled by strategy, QA feedback edges dashed. A
`handler:` agent is drawn as a subroutine (mermaid `[[...]]`, dot `component`);
an agent with `output:` lists its output fields under its id (DSL v2).
State graph: one edge per (state, target) pair, labelled with the triggers
that take it (every trigger is legal from every non-terminal state, so the
full table would repeat each trigger per state; it is merged per pair).

Both formats print ONE document per pipeline, holding both graphs side by side:
`mermaid` is one `flowchart` with an `agents` and a `states` subgraph (Mermaid
renders one diagram per block, so two diagrams in one block would be rejected);
`dot` is one `digraph` with a cluster per graph. Node ids are prefixed
(`agent_<id>`, `state_<id>`) so an agent and a state of the same name stay
apart; states are rounded, terminal states double circles, and a `start` dot
points at the initial state. Ids are validated identifiers; the only free text
(the pipeline name) is escaped.
"""

from __future__ import annotations

from typing import Literal, Protocol

from agentflow.runtime.pipeline import derive_transitions
from agentflow.runtime.spec import AgentSpec, PipelineSpec

from .flow import dispatch_edges, feedback_edges, max_attempts

__all__ = ["render_graph"]

GraphFormat = Literal["mermaid", "dot"]


class _Loaded(Protocol):
    @property
    def spec(self) -> PipelineSpec: ...


def render_graph(loaded: _Loaded, fmt: GraphFormat) -> str:
    """The pipeline's agent and state graphs in `fmt`, as text ending in a newline.

    Raises:
        ValueError: `fmt` is neither "mermaid" nor "dot" (the CLI restricts it first).
    """
    if fmt == "mermaid":
        return _mermaid(loaded.spec)
    if fmt == "dot":
        return _dot(loaded.spec)
    raise ValueError(f"unknown graph format {fmt!r}; use 'mermaid' or 'dot'")


def _state_edges(spec: PipelineSpec) -> list[tuple[str, str, list[str]]]:
    """(state, target, triggers) merged per pair, in table order."""
    merged: dict[tuple[str, str], list[str]] = {}
    for state, trigger, target in derive_transitions(spec):
        merged.setdefault((state, target), []).append(trigger)
    return [(s, t, triggers) for (s, t), triggers in merged.items()]


def _agent_label_lines(agent: AgentSpec) -> list[str]:
    """The node label: the id, then `handler` and/or the output fields (v2 agents only)."""
    lines = [agent.id]
    if agent.handler is not None:
        lines.append(f"handler {agent.handler}")
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


def _mermaid(spec: PipelineSpec) -> str:
    terminal = set(spec.state_machine.terminal)
    lines = [
        f"%% {_mermaid_text(spec.name)}: agent graph and state graph",
        "flowchart TD",
        '    subgraph agents ["agents"]',
    ]
    for agent in spec.agents:
        label = "<br/>".join(_mermaid_text(line) for line in _agent_label_lines(agent))
        shape = ("[[", "]]") if agent.handler is not None else ("[", "]")
        lines.append(f'        agent_{agent.id}{shape[0]}"{label}"{shape[1]}')
    for edge in dispatch_edges(spec):
        lines.append(f"        agent_{edge.source} -->|{edge.kind}| agent_{edge.target}")
    for edge in feedback_edges(spec):
        label = _feedback_label(spec, edge.source)
        lines.append(f'        agent_{edge.source} -.->|"{label}"| agent_{edge.target}')
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


def _dot(spec: PipelineSpec) -> str:
    terminal = set(spec.state_machine.terminal)
    lines = [
        "digraph pipeline {",
        f'    label="{_dot_text(spec.name)}";',
        "    rankdir=TB;",
        "    subgraph cluster_agents {",
        '        label="agents";',
    ]
    for agent in spec.agents:
        label = "\\n".join(_dot_text(line) for line in _agent_label_lines(agent))
        shape = "component" if agent.handler is not None else "box"
        lines.append(f'        agent_{agent.id} [label="{label}", shape={shape}];')
    for edge in dispatch_edges(spec):
        lines.append(f'        agent_{edge.source} -> agent_{edge.target} [label="{edge.kind}"];')
    for edge in feedback_edges(spec):
        label = _feedback_label(spec, edge.source)
        lines.append(
            f'        agent_{edge.source} -> agent_{edge.target} [label="{label}", style=dashed];'
        )
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
