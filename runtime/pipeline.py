"""`CompiledPipeline`: what a generated module hands to the runtime."""

from __future__ import annotations

import enum
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .spec import AGENT_EVENTS, PipelineSpec
from .tools.base import Tool

__all__ = [
    "CompiledPipeline",
    "compile_spec",
    "declared_triggers",
    "derive_transitions",
    "trigger_value",
]


def trigger_value(source: str, event: str) -> str:
    """The `Trigger` enum value for an agent event or an aggregation outcome."""
    return f"{source}.{event}"


@dataclass(frozen=True)
class CompiledPipeline:
    """A pipeline as compiled: its spec, generated enums and table, prompts and plugins.

    `transitions` maps (State, Trigger) to State; Trigger values are
    "<agent>.<event>" and "aggregation.on_complete" / "aggregation.on_any_abort".
    `prompts` maps agent id to its prompt template text (embedded at compile time).
    `plugin_tools` maps tool id to a zero-argument factory of the plugin instance.
    `output_models` maps each agent with `output:` to its generated output model;
    `input_model` is the generated model of the pipeline's `input:` (DSL v2).
    `children` maps each sub-pipeline agent (`pipeline: child.yaml`) to its child.
    """

    spec: PipelineSpec
    state_type: type[enum.Enum]
    trigger_type: type[enum.Enum]
    transitions: Mapping[tuple[Any, Any], Any]
    initial: enum.Enum
    terminal: frozenset[Any]
    prompts: Mapping[str, str]
    source_path: str = ""
    source_sha256: str = ""
    plugin_tools: Mapping[str, Callable[[], Tool]] = field(default_factory=dict)
    output_models: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    input_model: type[BaseModel] | None = None
    children: Mapping[str, CompiledPipeline] = field(default_factory=dict)

    @functools.cached_property
    def prompts_sha256(self) -> str:
        """SHA-256 of the prompts (agent id -> text): with `source_sha256`, it tells whether
        a recorded run (its `run_started` event) used the pipeline as it is now. Computed
        once (every run records it; `prompts` is not changed after compiling)."""
        text = json.dumps(sorted(self.prompts.items()), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def trigger(self, source: str, event: str) -> enum.Enum | None:
        """The Trigger member for `source.event`, or None if the pipeline declares none."""
        try:
            return self.trigger_type(trigger_value(source, event))
        except ValueError:
            return None


IMPLICIT_END_TRIGGERS: tuple[tuple[str, str], ...] = (
    ("run.complete", "complete"),
    ("run.failed", "failed"),
)
"""How a run without `state_machine:` (and no aggregation) ends: `run.complete` when
every item passed or ended, else `run.failed` (DSL-V2 section 7). No agent trigger
can take these values: agent events all start with `on_`."""


def declared_triggers(spec: PipelineSpec) -> list[tuple[str, str]]:
    """(trigger value, target state) for every agent transition and aggregation outcome.

    Order: agents as listed, events in AGENT_EVENTS order, then aggregation (or,
    for the default state machine, `IMPLICIT_END_TRIGGERS`).
    """
    triggers: list[tuple[str, str]] = []
    for agent in spec.agents:
        for event in AGENT_EVENTS:
            target = getattr(agent.transitions, event)
            if target is not None:
                triggers.append((trigger_value(agent.id, event), target))
    if spec.aggregation is not None:
        triggers.append(
            (trigger_value("aggregation", "on_complete"), spec.aggregation.on_complete.transition)
        )
        triggers.append(
            (trigger_value("aggregation", "on_any_abort"), spec.aggregation.on_any_abort.transition)
        )
    elif spec.implicit_state_machine:  # the default machine's end (run_result.settle)
        triggers.extend(IMPLICIT_END_TRIGGERS)
    return triggers


def derive_transitions(spec: PipelineSpec) -> list[tuple[str, str, str]]:
    """The TRANSITIONS table as (state, trigger, target) rows, in a stable order.

    Every declared trigger is legal from every non-terminal state; terminal
    states have no way out (docs/semantics.md, "The state machine").
    """
    terminal = set(spec.state_machine.terminal)
    rows: list[tuple[str, str, str]] = []
    for state in spec.state_machine.states:
        if state.id in terminal:
            continue
        for trigger, target in declared_triggers(spec):
            rows.append((state.id, trigger, target))
    return rows


def compile_spec(
    spec: PipelineSpec,
    prompts: Mapping[str, str],
    *,
    source_path: str = "",
    source_sha256: str = "",
    plugin_tools: Mapping[str, Callable[[], Tool]] | None = None,
    children: Mapping[str, CompiledPipeline] | None = None,
) -> CompiledPipeline:
    """Build a CompiledPipeline at run time, with enums made on the fly.

    Generated modules build theirs from static code; this is for tests, tools
    (`agentflow verify`) and apps that construct a spec in Python.
    """
    states = enum.Enum("State", {s.id.upper(): s.id for s in spec.state_machine.states})  # type: ignore[misc]
    trigger_names = {value.replace(".", "_").upper(): value for value, _ in declared_triggers(spec)}
    triggers = enum.Enum("Trigger", trigger_names or {"_NONE": "_none"})  # type: ignore[misc]
    table = {
        (states(state), triggers(trigger)): states(target)
        for state, trigger, target in derive_transitions(spec)
    }
    return CompiledPipeline(
        spec=spec,
        state_type=states,
        trigger_type=triggers,
        transitions=table,
        initial=states(spec.state_machine.initial),
        terminal=frozenset(states(s) for s in spec.state_machine.terminal),
        prompts=dict(prompts),
        source_path=source_path,
        source_sha256=source_sha256,
        plugin_tools=dict(plugin_tools or {}),
        children=dict(children or {}),
    )
