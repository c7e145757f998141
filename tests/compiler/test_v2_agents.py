"""DSL v2 section 3: an agent is exactly one of prompt / instructions / handler."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.parse import _fast_parse

from .v2_helpers import compile_text, errors, line_of


def test_instructions_are_the_agents_prompt(tmp_path: Path) -> None:
    text = 'name: s\nagents:\n  - id: a\n    instructions: "Summarise {{ input }}."\n'
    loaded = compile_text(text, tmp_path)
    assert loaded.spec.agent("a").instructions == "Summarise {{ input }}."
    assert loaded.prompts == {"a": "Summarise {{ input }}."}


def test_block_instructions_template_errors_point_into_the_yaml(tmp_path: Path) -> None:
    text = (
        "name: s\nagents:\n  - id: a\n    instructions: |\n      Line one.\n"
        "      Then {{ inptu }}.\n"
    )
    assert _fast_parse(text, "v.yaml") is None  # a block scalar: strictyaml's own path
    assert errors(text, tmp_path) == [
        "v.yaml:6:1: error: prompt uses undefined variable 'inptu' (did you mean 'input'?); "
        "available: agent, attempt, feedback, history, input, item, item_id, outputs, upstream "
        "(prompt of agent 'a')"
    ]


def test_inline_instructions_template_errors_point_at_their_line(tmp_path: Path) -> None:
    text = "name: s\nagents:\n  - id: a\n    instructions: 'Do {{ outputs.nobody }}'\n"
    assert errors(text, tmp_path) == [
        "v.yaml:4:1: error: 'outputs.nobody' names no agent (prompt of agent 'a')"
    ]


def test_handler_agent_needs_no_prompt_file(tmp_path: Path) -> None:
    text = "name: s\nagents:\n  - id: a\n    handler: my_pkg.handlers:summarise\n"
    loaded = compile_text(text, tmp_path, prompts={})
    assert loaded.spec.agent("a").handler == "my_pkg.handlers:summarise"
    assert loaded.prompts == {}


@pytest.mark.parametrize("path", ["my_pkg.handlers", "my pkg:f", "pkg.mod:", "pkg.class:f", ":f"])
def test_handler_path_must_be_module_colon_function(tmp_path: Path, path: str) -> None:
    text = f"name: s\nagents:\n  - id: a\n    handler: '{path}'\n"
    assert errors(text, tmp_path) == [
        f"v.yaml:4:14: error: handler '{path}' is not a Python 'package.module:function' path, "
        "e.g. 'my_pkg.handlers:summarise'"
    ]


def test_two_kinds_on_one_agent_is_an_error(tmp_path: Path) -> None:
    text = "name: s\nagents:\n  - id: a\n    prompt: p.md\n    handler: m:f\n"
    assert errors(text, tmp_path) == [
        "v.yaml:5:5: error: agent 'a' has both 'prompt' and 'handler'; an agent is exactly one "
        "of 'prompt' (a file), 'instructions' (inline text), 'handler' (a function) or "
        "'pipeline' (a sub-pipeline file)"
    ]


def test_no_kind_is_an_error(tmp_path: Path) -> None:
    text = "name: s\nagents:\n  - id: a\n    model: claude-haiku-4-5\n"
    assert errors(text, tmp_path) == [
        "v.yaml:3:5: error: agent 'a' needs one of 'prompt: prompts/x.md', "
        "'instructions: \"inline text\"', 'handler: \"package.module:function\"' or "
        "'pipeline: child.yaml'"
    ]


def test_a_missing_sub_pipeline_file_is_an_error(tmp_path: Path) -> None:
    text = "name: s\nagents:\n  - id: a\n    pipeline: child.yaml\n"
    assert errors(text, tmp_path) == [
        "v.yaml:4:15: error: sub-pipeline file 'child.yaml' not found (looked for "
        "'child.yaml'); create it or fix the path, which is relative to the pipeline file"
    ]


def test_empty_instructions_are_an_error(tmp_path: Path) -> None:
    text = "name: s\nagents:\n  - id: a\n    instructions: '  '\n"
    assert errors(text, tmp_path) == ["v.yaml:4:19: error: agent 'a': 'instructions' is empty"]


QA = """\
name: s
agents:
  - id: writer
    prompt: p.md
    dispatch: {strategy: sequential, target: checker}
  - id: checker
    prompt: p.md
    on_fail: {action: feedback_and_retry, target: writer}
    output: {ok: bool}
"""


def test_output_on_a_qa_agent_is_an_error(tmp_path: Path) -> None:
    assert errors(QA, tmp_path) == [
        f"v.yaml:{line_of(QA, '{ok')}:13: error: agent 'checker' gives a QA verdict (it has "
        "on_fail or is an aggregation gate), so it cannot declare 'output:'; remove 'output:' or "
        "make it a plain agent"
    ]


def test_typed_fan_out_without_items_is_an_error(tmp_path: Path) -> None:
    text = """\
name: s
agents:
  - id: planner
    prompt: p.md
    output: {subjects: list[str]}
    dispatch: {strategy: parallel_fan_out, target: worker}
  - id: worker
    prompt: p.md
"""
    assert errors(text, tmp_path) == [
        "v.yaml:6:26: error: agent 'planner' fans out a typed output: name the list field "
        "that holds the work items: items: subjects"
    ]
