"""`--graph mermaid|dot`: agent graph (dispatch by strategy, dashed feedback) and state graph."""

from __future__ import annotations

import re

import pytest

from agentflow.compiler.graph import render_graph
from agentflow.compiler.load import load_pipeline

from .emit_helpers import ROOT, HandLoaded
from .test_emit import HOSTILE, small_spec


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_mermaid_is_one_flowchart_with_both_graphs_and_every_edge() -> None:
    text = render_graph(load_pipeline("pipelines/research_fanout.yaml"), "mermaid")
    assert text.splitlines()[1] == "flowchart TD"
    agent_part, state_part = text.split('    subgraph states ["states"]\n')
    assert '    subgraph agents ["agents"]' in agent_part
    assert "agent_orchestrator_agent -->|parallel_fan_out| agent_worker_agent" in agent_part
    assert "agent_worker_agent -->|parallel_broadcast| agent_accuracy_qa_agent" in agent_part
    assert "agent_worker_agent -->|parallel_broadcast| agent_style_qa_agent" in agent_part
    feedback = 'agent_accuracy_qa_agent -.->|"feedback, max 2 attempts"| agent_worker_agent'
    assert feedback in agent_part
    assert "states_start --> state_initialised" in state_part
    assert 'state_complete((("complete")))' in state_part
    assert 'state_failed((("failed")))' in state_part
    assert (
        'state_planning -->|"orchestrator_agent.on_complete, accuracy_qa_agent.on_fail"| '
        "state_working" in state_part
    )
    assert not re.search(r"^\s+state_(complete|failed) -->", state_part, re.M)  # no way out


def test_dot_is_one_balanced_digraph_with_dashed_feedback() -> None:
    text = render_graph(load_pipeline("pipelines/hello_world.yaml"), "dot")
    assert text.startswith("digraph pipeline {\n") and text.endswith("}\n")
    assert text.count("{") == text.count("}") == 3
    body = [line.strip() for line in text.splitlines()[1:-1]]
    assert all(line.endswith((";", "{", "}")) for line in body)
    assert 'agent_writer_agent -> agent_reviewer_agent [label="sequential"];' in body
    feedback = 'agent_reviewer_agent -> agent_writer_agent [label="feedback, max 2 attempts"'
    assert f"{feedback}, style=dashed];" in body
    assert 'state_complete [label="complete", shape=doublecircle];' in body
    assert 'state_running -> state_reviewing [label="writer_agent.on_complete"];' in body
    assert not any(line.startswith(("state_complete ->", "state_failed ->")) for line in body)


def test_free_text_is_escaped() -> None:
    loaded = HandLoaded(small_spec(name=HOSTILE), {"first": "", "second": ""})
    dot = render_graph(loaded, "dot")
    label = dot.splitlines()[1]
    assert label.startswith('    label="') and label.endswith('";')
    assert re.fullmatch(r'(?:[^"\\\n]|\\.)*', label[len('    label="') : -2])
    mermaid = render_graph(loaded, "mermaid")
    assert '"' not in mermaid.splitlines()[0]
    assert len([line for line in mermaid.splitlines() if line.startswith("%%")]) == 1


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="use 'mermaid' or 'dot'"):
        render_graph(load_pipeline("pipelines/hello_world.yaml"), "svg")  # type: ignore[arg-type]
