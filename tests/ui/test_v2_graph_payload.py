"""The live UI's `/api/config` graph for DSL v2 part 2: route cases, loops, joins,
reduces and sub-pipelines, with every edge between agents the page draws."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentflow.compiler.load import LoadedPipeline, load_pipeline
from agentflow.runtime.pipeline import CompiledPipeline, compile_spec
from agentflow.runtime.ui.graph import pipeline_graph

ROOT = Path(__file__).resolve().parents[2]


def _compiled(loaded: LoadedPipeline) -> CompiledPipeline:
    children = {agent: _compiled(child) for agent, child in loaded.children.items()}
    return compile_spec(loaded.spec, loaded.prompts, children=children)


def _graph(path: Path) -> dict[str, Any]:
    return pipeline_graph(_compiled(load_pipeline(path)), model_name="dry-run")


def _edges(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {edge["id"]: edge for edge in graph["edges"]}


def _drawable(graph: dict[str, Any]) -> None:
    """What cytoscape needs: unique ids, and every edge between two listed agents."""
    agents = [agent["id"] for agent in graph["agents"]]
    assert len(agents) == len(set(agents))
    ids = [edge["id"] for edge in graph["edges"]]
    assert len(ids) == len(set(ids))
    for edge in graph["edges"]:
        assert edge["source"] in agents and edge["target"] in agents, edge


def test_route_cases_are_labelled_and_a_loop_case_is_a_loop_edge() -> None:
    graph = _graph(ROOT / "pipelines" / "plan_execute.yaml")
    _drawable(graph)
    loop = _edges(graph)["replanner->executor"]
    assert loop["kind"] == "loop" and loop["label"] == "execute (max 4)"
    assert loop["cases"] == ["execute"]
    # `done: end` is no edge (no such node): the router's dispatch lists it.
    replanner = next(a for a in graph["agents"] if a["id"] == "replanner")
    assert replanner["dispatch"]["cases"]["done"]["target"] == "end"


def test_two_cases_to_one_agent_are_one_edge() -> None:
    graph = _graph(ROOT / "tests" / "worst_case" / "route_costliest_case.yaml")
    _drawable(graph)
    edges = _edges(graph)
    assert edges["triage->answer"]["label"] == "quick"
    assert edges["triage->researcher"]["kind"] == "dispatch"
    assert edges["web=>merge"]["strategy"] == "join"
    assert edges["papers=>merge"]["label"] == "join"


def test_reduce_edge_and_per_item_agents() -> None:
    graph = _graph(ROOT / "tests" / "worst_case" / "map_reduce_routes.yaml")
    _drawable(graph)
    assert _edges(graph)["planner=>summary"]["strategy"] == "reduce"
    per_item = {a["id"] for a in graph["agents"] if a["per_item"]}
    assert per_item == {"analyst", "deep_dive", "short_note"}  # reached through route cases


def test_a_sub_pipelines_agents_are_a_namespaced_group() -> None:
    graph = _graph(ROOT / "pipelines" / "supervisor.yaml")
    _drawable(graph)
    grouped = [a["id"] for a in graph["agents"] if a.get("group") == "research_team"]
    assert grouped == ["research_team.researcher", "research_team.editor"]
    edges = _edges(graph)
    assert edges["research_team=>research_team.researcher"]["label"] == "runs"
    assert edges["research_team.researcher->research_team.editor"]["kind"] == "dispatch"
    assert edges["supervisor->research_team"]["label"] == "research (max 3)"


def test_v1_payload_is_unchanged() -> None:
    graph = _graph(ROOT / "pipelines" / "research_fanout.yaml")
    assert all("label" not in edge and "group" not in edge for edge in graph["edges"])
    assert {a["id"] for a in graph["agents"] if a["per_item"]} == {
        "worker_agent", "accuracy_qa_agent", "style_qa_agent"
    }  # fmt: skip
