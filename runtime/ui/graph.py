"""The `/api/config` document: the pipeline as a graph the page can draw.

Only the pipeline's definition is described here (ids, models, dispatch,
transitions); no environment, no credentials, no prompts.
"""

from __future__ import annotations

from typing import Any

from ..pipeline import CompiledPipeline, derive_transitions
from ..spec import (
    AGENT_EVENTS,
    RESERVED_TARGETS,
    AgentSpec,
    DispatchSpec,
    PipelineSpec,
    RouteCase,
)

__all__ = ["fan_out_agents", "model_badge", "pipeline_graph", "unknown_pipeline_graph"]


def model_badge(model_name: str) -> dict[str, Any]:
    """What the page says about the run's model: `{"name", "offline", "label"}`.

    Offline replay and a dry run call no model (`offline`); only another named
    model is LIVE. An unknown model ("") has no label.
    """
    lowered = model_name.lower()
    if "replay" in lowered:
        return {"name": model_name, "offline": True, "label": "OFFLINE REPLAY"}
    if "dry-run" in lowered:
        return {"name": model_name, "offline": True, "label": "DRY RUN"}
    return {
        "name": model_name,
        "offline": False,
        "label": f"LIVE: {model_name}" if model_name else "",
    }


def pipeline_graph(pipeline: CompiledPipeline, *, model_name: str) -> dict[str, Any]:
    """Describe `pipeline` for the page: agents, edges, states, transitions, model.

    A sub-pipeline's agents are listed after the parent's, namespaced as in the run's
    events (`team.writer`) with `group` naming the sub-pipeline agent, and an edge
    from that agent to the child's entry (`runs`).
    """
    spec = pipeline.spec
    agents, edges = _describe(pipeline)
    return {
        "pipeline": {"name": spec.name, "version": spec.version},
        "model": model_badge(model_name),
        "entry": spec.entry_agent,
        "agents": agents,
        "edges": edges,
        "states": [state.id for state in spec.state_machine.states],
        "initial": spec.state_machine.initial,
        "terminal": list(spec.state_machine.terminal),
        "transitions": [
            {"from": source, "trigger": trigger, "to": target}
            for source, trigger, target in derive_transitions(spec)
        ],
        "aggregation": spec.aggregation.model_dump() if spec.aggregation else None,
    }


def unknown_pipeline_graph(name: str, *, model_name: str) -> dict[str, Any]:
    """The `/api/config` document of a stored run whose pipeline YAML is gone or changed:
    no agents or edges (the page adds a node for each agent its events name)."""
    return {
        "pipeline": {"name": name, "version": ""},
        "pipeline_missing": True,
        "model": model_badge(model_name),
        "entry": None,
        "agents": [],
        "edges": [],
        "states": [],
        "initial": "",
        "terminal": [],
        "transitions": [],
        "aggregation": None,
    }


def _describe(pipeline: CompiledPipeline) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`pipeline`'s agents and edges, then each child's (ids prefixed), breadth first with
    an explicit queue: a chain of sub-pipelines does not recurse."""
    agents: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    pending: list[tuple[CompiledPipeline, str, str | None, bool]] = [(pipeline, "", None, False)]
    while pending:
        current, prefix, group, all_per_item = pending.pop(0)
        spec = current.spec
        gates = set(spec.aggregation.gates) if spec.aggregation else set()
        per_item = fan_out_agents(spec)
        for agent in spec.agents:
            described = _agent(spec, agent, gates, per_item, prefix, all_per_item)
            if group is not None:
                described["group"] = group
            agents.append(described)
        edges += _edges(spec, prefix)
        for agent in spec.agents:
            child = current.children.get(agent.id)
            if child is None:
                continue
            inner = f"{prefix}{agent.id}."
            entry = inner + child.spec.entry_agent
            edges.append(
                {
                    "id": f"{prefix}{agent.id}=>{entry}",
                    "source": prefix + agent.id,
                    "target": entry,
                    "kind": "dispatch",
                    "strategy": "pipeline",
                    "label": "runs",
                }
            )
            runs_per_item = all_per_item or agent.id in per_item
            pending.append((child, inner, prefix + agent.id, runs_per_item))
    return agents, edges


def _agent(
    spec: PipelineSpec,
    agent: AgentSpec,
    gates: set[str],
    per_item: set[str],
    prefix: str = "",
    all_per_item: bool = False,
) -> dict[str, Any]:
    dispatch = agent.dispatch
    return {
        "id": prefix + agent.id,
        "model": agent.model or spec.defaults.model,
        "tools": list(agent.tools),
        "is_qa": spec.output_kind(agent) == "verdict",
        "is_gate": agent.id in gates,
        "human": agent.human is not None,  # a person answers it (docs/human.md)
        "per_item": all_per_item or agent.id in per_item,
        "dispatch": dispatch.model_dump() if dispatch else None,
        "transitions": {
            event: getattr(agent.transitions, event)
            for event in AGENT_EVENTS
            if getattr(agent.transitions, event) is not None
        },
    }


def _edges(spec: PipelineSpec, prefix: str = "") -> list[dict[str, Any]]:
    """Dispatch and feedback edges; a route's cases to one agent are one edge labelled by
    its case keys (kind "loop" for a case with max_iterations: it closes a loop, and the
    page's layout ignores it like a feedback edge); a join is drawn from each joined
    target, a reduce from the fan-out agent. `end` / `abort` cases are no edge (the
    agent's `dispatch` lists them)."""
    edges: list[dict[str, Any]] = []
    for agent in spec.agents:
        source = prefix + agent.id
        dispatch = agent.dispatch
        if dispatch is not None and dispatch.strategy == "route":
            edges += _route_edges(source, dispatch, prefix)
        elif dispatch is not None:
            targets = [dispatch.target] if dispatch.target else list(dispatch.targets)
            for target in targets:
                edges.append(
                    {
                        "id": f"{source}->{prefix}{target}",
                        "source": source,
                        "target": prefix + target,
                        "kind": "dispatch",
                        "strategy": dispatch.strategy,
                    }
                )
            after = [(t, dispatch.join, "join") for t in dispatch.targets if dispatch.join]
            if dispatch.reduce:
                after.append((agent.id, dispatch.reduce, "reduce"))
            for before, then, strategy in after:
                edges.append(
                    {
                        "id": f"{prefix}{before}=>{prefix}{then}",
                        "source": prefix + before,
                        "target": prefix + then,
                        "kind": "dispatch",
                        "strategy": strategy,
                        "label": strategy,
                    }
                )
        if agent.on_fail is not None and agent.on_fail.target is not None:
            edges.append(
                {
                    "id": f"{source}~>{prefix}{agent.on_fail.target}",
                    "source": source,
                    "target": prefix + agent.on_fail.target,
                    "kind": "feedback",
                    "action": agent.on_fail.action,
                }
            )
    return edges


def _route_edges(source: str, dispatch: DispatchSpec, prefix: str) -> list[dict[str, Any]]:
    cases = [
        *dispatch.cases.items(),
        *([("default", dispatch.default)] if dispatch.default else []),
    ]
    merged: dict[str, list[tuple[str, RouteCase]]] = {}
    for key, case in cases:
        if case.target not in RESERVED_TARGETS:
            merged.setdefault(case.target, []).append((key, case))
    edges: list[dict[str, Any]] = []
    for target, taken in merged.items():
        loop = any(case.max_iterations is not None for _, case in taken)
        label = ", ".join(
            key + (f" (max {case.max_iterations})" if case.max_iterations else "")
            for key, case in taken
        )
        edges.append(
            {
                "id": f"{source}->{prefix}{target}",
                "source": source,
                "target": prefix + target,
                "kind": "loop" if loop else "dispatch",
                "strategy": "route",
                "cases": [key for key, _ in taken],
                "label": label,
            }
        )
    return edges


def fan_out_agents(spec: PipelineSpec) -> set[str]:
    """Agents that run once per fan-out work item (downstream of a parallel_fan_out edge:
    through sequential, broadcast and route edges, joins and reduces; a reduce itself
    runs on the fan-out agent's item)."""
    children: dict[str, list[str]] = {}
    starts: list[str] = []
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        targets = [dispatch.target] if dispatch.target else list(dispatch.targets)
        cases = [*dispatch.cases.values(), *([dispatch.default] if dispatch.default else [])]
        targets += [c.target for c in cases if c.target not in RESERVED_TARGETS]
        targets += [t for t in (dispatch.join, dispatch.reduce) if t]
        children[agent.id] = targets
        if dispatch.strategy == "parallel_fan_out" and dispatch.target:
            starts.append(dispatch.target)
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(children.get(current, []))
    return seen
