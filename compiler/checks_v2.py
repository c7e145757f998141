"""Semantic checks of the DSL v2 part 1 keys: agent kinds, shapes, and section 7's dead ends.

"Gives a verdict" is what the runtime does (`runtime/engine/plan.py`: `is_qa`): an agent
answers a QA verdict when `PipelineSpec.output_kind` says "verdict", i.e. it has
`on_fail` or is an aggregation gate. Only such an agent fires `on_pass`/`on_fail`.

A run ends in a terminal state only through a terminal move (docs/semantics.md,
"How a run ends"): with an explicit `state_machine` and no `aggregation`, a run
with a failed or aborted item takes the last `on_abort`/`on_fail` move into a
terminal state that was requested during the run. An agent that fails aborts its
item and fires its own `on_abort`; if that is not a move into a terminal state,
a run in which only that agent failed ends in a non-terminal state.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterator

from agentflow.runtime.spec import PipelineSpec

from .checks_base import CheckContext, agent_paths, downstream
from .diagnostics import Diagnostic
from .parse import Path

__all__ = [
    "check_agent_kinds",
    "check_failure_reaches_terminal",
    "check_verdict_transitions",
    "uses_v2",
]

HANDLER_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)
"""`package.module:function`."""


def check_agent_kinds(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Handler paths are `package.module:function`; `output:` only where the runtime has a
    typed answer (not on QA agents, which answer a verdict, nor on fan-out agents)."""
    spec = ctx.spec
    for path, agent in agent_paths(ctx):
        handler = agent.handler
        if handler is not None and (
            not HANDLER_PATH.match(handler)
            or any(keyword.iskeyword(part) for part in re.split(r"[.:]", handler))
        ):
            yield ctx.at(
                (*path, "handler"),
                f"handler '{handler}' is not a Python 'package.module:function' path, e.g. "
                "'my_pkg.handlers:summarise'",
            )
        if agent.instructions is not None and not agent.instructions.strip():
            yield ctx.at((*path, "instructions"), f"agent '{agent.id}': 'instructions' is empty")
        if agent.output is None:
            continue
        kind = spec.output_kind(agent)
        if kind == "verdict":
            yield ctx.at(
                (*path, "output"),
                f"agent '{agent.id}' gives a QA verdict (it has on_fail or is an aggregation "
                "gate), so it cannot declare 'output:'; remove 'output:' or make it a plain agent",
            )
        elif kind == "items":
            lists = [f.name for f in agent.output.fields if f.type.kind == "list"]
            example = lists[0] if lists else "<field>"
            yield ctx.at(
                (*path, "dispatch", "strategy"),
                f"agent '{agent.id}' fans out a typed output: name the list field that holds "
                f"the work items: items: {example}",
            )


def check_verdict_transitions(ctx: CheckContext) -> Iterator[Diagnostic]:
    """`on_pass`/`on_fail` transitions only on agents that give a verdict (else never fire)."""
    spec = ctx.spec
    for path, agent in agent_paths(ctx):
        if spec.output_kind(agent) == "verdict":
            continue
        for event in ("on_pass", "on_fail"):
            if getattr(agent.transitions, event) is None:
                continue
            yield ctx.at(
                (*path, "transitions", event),
                f"agent '{agent.id}' never gives a verdict (it has no on_fail and is not an "
                f"aggregation gate), so its '{event}' transition can never fire; use "
                "'on_complete' (or 'on_abort'), or make the agent a QA agent with 'on_fail'",
            )


def uses_v2(spec: PipelineSpec) -> bool:
    """True if the pipeline uses any DSL v2 key (`input`, `output`, `instructions`, `handler`,
    `pipeline`, or leaves out `state_machine`)."""
    if spec.input is not None or spec.implicit_state_machine:
        return True
    return any(
        agent.output is not None
        or agent.instructions is not None
        or agent.handler is not None
        or agent.pipeline is not None
        for agent in spec.agents
    )


def check_failure_reaches_terminal(ctx: CheckContext) -> Iterator[Diagnostic]:
    """With an explicit state machine and no aggregation, an agent that fails must move the
    run to a terminal state (`on_abort`), else the run can end stranded ("incomplete").

    An error for a pipeline that uses DSL v2 keys; a warning for a v1 pipeline, which
    keeps compiling as before (docs/decisions.md).
    """
    spec = ctx.spec
    if spec.implicit_state_machine or spec.aggregation is not None or not spec.agents:
        return
    entry = spec.entry
    if entry is not None and entry not in ctx.agent_ids:
        return  # check_entry reports it
    terminal = set(spec.state_machine.terminal)
    if not terminal or not terminal <= ctx.state_ids:
        return  # check_state_graph / check_state_references report it
    reachable = downstream(spec, spec.entry_agent) if ctx.graph_valid else ctx.agent_ids
    stranding: list[tuple[Path, str]] = []
    for path, agent in agent_paths(ctx):
        on_abort = agent.transitions.on_abort
        if agent.id not in reachable or on_abort in terminal:
            continue
        if on_abort is not None and on_abort not in ctx.state_ids:
            continue  # check_state_references reports it
        where = (*path, "transitions", "on_abort") if on_abort else (*path, "id")
        stranding.append((where, agent.id))
    if not stranding:
        return
    names = ", ".join(f"'{name}'" for _, name in stranding[:3])
    more = f" (and {len(stranding) - 3} more)" if len(stranding) > 3 else ""
    who = f"agent {names}" if len(stranding) == 1 else f"any of the agents {names}{more}"
    yield ctx.at(
        stranding[0][0],
        f"if {who} fails, the run is left in a non-terminal state with "
        f"nothing left to run (no 'on_abort' into a terminal state); add "
        f"'on_abort: {spec.state_machine.terminal[-1]}' to the transitions, add an "
        "aggregation (its on_any_abort decides), or drop 'state_machine' to use the default",
        "error" if uses_v2(spec) else "warning",
    )
