"""`--explain` and `--graph` describe the DSL v2 parts: shapes, handler agents, default machine."""

from __future__ import annotations

from pathlib import Path

from agentflow.compiler.explain import explain
from agentflow.compiler.graph import render_graph
from agentflow.compiler.load import load_pipeline

from .emit_helpers import ROOT

TYPED = ROOT / "tests" / "golden" / "cases" / "typed" / "pipeline.yaml"


def test_explain_lists_shapes_handlers_and_the_default_machine() -> None:
    text = explain(load_pipeline(TYPED))
    lines = text.splitlines()
    assert (
        "  input: {ticket: str, tier: enum[free, pro, enterprise]} (validated before the run)"
        in lines
    )
    assert (
        "  classifier: prompt prompts/classifier.md; answers {category: enum[billing, bug, "
        "question], urgency: int, score: optional[float], tags: list[str], note: optional[str], "
        "steps: list[{title: str, done: bool}], author: {name: str, email: optional[str]}}"
    ) in lines
    assert "  responder: inline instructions; answers text" in lines
    assert (
        "  archiver: handler support_archive.handlers:archive (your async function; no model "
        "call); answers {stored: bool}"
    ) in lines
    assert any(line.startswith("  (the default state machine") for line in lines)
    # a typed answer may be asked again once; a handler makes no model call
    assert "classifier <= 2, responder <= 1, archiver <= 0)" in text
    assert "  per run: model calls <= 3" in lines


def test_explain_of_a_v1_pipeline_does_not_mention_the_default_machine() -> None:
    text = explain(load_pipeline(ROOT / "pipelines" / "hello_world.yaml"))
    assert "default state machine" not in text and "input:" not in text


def test_graph_draws_handlers_and_outputs(tmp_path: Path) -> None:
    loaded = load_pipeline(TYPED)
    mermaid = render_graph(loaded, "mermaid").splitlines()
    assert (
        '        agent_archiver[["archiver<br/>handler support_archive.handlers:archive<br/>'
        'output: stored"]]'
    ) in mermaid
    assert '        agent_responder["responder"]' in mermaid
    dot = render_graph(loaded, "dot").splitlines()
    assert (
        '        agent_archiver [label="archiver\\nhandler support_archive.handlers:archive\\n'
        'output: stored", shape=component];'
    ) in dot
