"""The `/api/config` document: the pipeline as a graph the page can draw.

Only the pipeline's definition is described here (ids, models, dispatch,
transitions); no environment, no credentials, no prompts.
"""

from __future__ import annotations

from typing import Any

from ..pipeline import CompiledPipeline, derive_transitions
from ..spec import AGENT_EVENTS, AgentSpec, PipelineSpec

__all__ = ["fan_out_agents", "model_badge", "pipeline_graph"]


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
    """Describe `pipeline` for the page: agents, edges, states, transitions, model."""
    spec = pipeline.spec
    gates = set(spec.aggregation.gates) if spec.aggregation else set()
    per_item = fan_out_agents(spec)
    return {
        "pipeline": {"name": spec.name, "version": spec.version},
        "model": model_badge(model_name),
        "entry": spec.entry_agent,
        "agents": [_agent(spec, agent, gates, per_item) for agent in spec.agents],
        "edges": _edges(spec),
        "states": [state.id for state in spec.state_machine.states],
        "initial": spec.state_machine.initial,
        "terminal": list(spec.state_machine.terminal),
        "transitions": [
            {"from": source, "trigger": trigger, "to": target}
            for source, trigger, target in derive_transitions(spec)
        ],
        "aggregation": spec.aggregation.model_dump() if spec.aggregation else None,
    }


def _agent(
    spec: PipelineSpec, agent: AgentSpec, gates: set[str], per_item: set[str]
) -> dict[str, Any]:
    dispatch = agent.dispatch
    return {
        "id": agent.id,
        "model": agent.model or spec.defaults.model,
        "tools": list(agent.tools),
        "is_qa": spec.output_kind(agent) == "verdict",
        "is_gate": agent.id in gates,
        "per_item": agent.id in per_item,
        "dispatch": dispatch.model_dump() if dispatch else None,
        "transitions": {
            event: getattr(agent.transitions, event)
            for event in AGENT_EVENTS
            if getattr(agent.transitions, event) is not None
        },
    }


def _edges(spec: PipelineSpec) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = []
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is not None:
            targets = [dispatch.target] if dispatch.target else list(dispatch.targets)
            for target in targets:
                edges.append(
                    {
                        "id": f"{agent.id}->{target}",
                        "source": agent.id,
                        "target": target,
                        "kind": "dispatch",
                        "strategy": dispatch.strategy,
                    }
                )
        if agent.on_fail is not None and agent.on_fail.target is not None:
            edges.append(
                {
                    "id": f"{agent.id}~>{agent.on_fail.target}",
                    "source": agent.id,
                    "target": agent.on_fail.target,
                    "kind": "feedback",
                    "action": agent.on_fail.action,
                }
            )
    return edges


def fan_out_agents(spec: PipelineSpec) -> set[str]:
    """Agents that run once per fan-out work item (downstream of a parallel_fan_out edge)."""
    children: dict[str, list[str]] = {}
    starts: list[str] = []
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        targets = [dispatch.target] if dispatch.target else list(dispatch.targets)
        children[agent.id] = targets
        if dispatch.strategy == "parallel_fan_out":
            starts.extend(targets)
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(children.get(current, []))
    return seen
