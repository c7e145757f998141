"""DSL v2 sections 1-2: `input.`, `outputs.` and `history.` paths in prompts are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.flow import dominates, immediate_dominators

from .v2_helpers import compile_text, errors

PIPELINE = """\
name: refs
input:
  ticket: str
  customer: {type: object, fields: {name: str, tier: {enum: [free, pro]}}}
agents:
  - id: classifier
    prompt: classifier.md
    output:
      category: {enum: [billing, bug, question]}
      steps:
        type: list
        items: {title: str, done: bool}
    dispatch: {strategy: parallel_broadcast, targets: [left, right]}
  - id: left
    prompt: left.md
  - id: right
    prompt: right.md
"""


def _prompts(left: str, right: str = "Right.\n", classifier: str = "Classify.\n") -> dict[str, str]:
    return {"classifier.md": classifier, "left.md": left, "right.md": right}


def test_valid_references_compile(tmp_path: Path) -> None:
    left = (
        "{{ input.ticket }} for {{ input.customer.name }} ({{ input.customer.tier }})\n"
        "{{ outputs.classifier.category }} {{ outputs.classifier.steps[0].title }}\n"
        "{% for step in outputs.classifier.steps %}{{ step.done }}{% endfor %}\n"
        "{{ history.classifier[-1].category }} {{ history.left | length }}\n"
        "{{ outputs.classifier.category.upper() }} {{ outputs['classifier']['category'] }}\n"
    )
    assert compile_text(PIPELINE, tmp_path, _prompts(left)).warnings == []


@pytest.mark.parametrize(
    ("left", "message"),
    [
        (
            "x\n{{ outputs.classifier.categroy }}\n",
            "left.md:2:1: error: 'outputs.classifier.categroy': agent 'classifier' has no field "
            "'categroy' (did you mean 'category'?)",
        ),
        (
            "{{ outputs.classifier.steps[0].titel }}\n",
            "left.md:1:1: error: 'outputs.classifier.steps.titel': agent 'classifier' has no "
            "field 'titel' (did you mean 'title'?)",
        ),
        (
            "{{ input.tikcet }}\n",
            "left.md:1:1: error: 'input.tikcet': the input has no field 'tikcet' (did you mean "
            "'ticket'?)",
        ),
        (
            "{{ input.customer.email }}\n",
            "left.md:1:1: error: 'input.customer.email': the input has no field 'email'; its "
            "fields: name, tier",
        ),
        (
            "{{ outputs.clasifier.category }}\n",
            "left.md:1:1: error: 'outputs.clasifier' names no agent (did you mean 'classifier'?)",
        ),
        (
            "{{ outputs.right.text }}\n",
            "left.md:1:1: error: 'outputs.right': agent 'right' does not run before 'left' on "
            "every path that reaches it, so its output may not be there; read it only from "
            "agents that every path reaches through 'right' (where parallel branches meet, "
            "read a branch's output inside that branch)",
        ),
        (
            "{{ outputs.left.text }}\n",
            "left.md:1:1: error: 'outputs.left': an agent cannot read its own latest output; use "
            "'history.left' for its earlier ones",
        ),
        (
            "{{ history.classifier.category }}\n",
            "left.md:1:1: error: 'history.classifier' is a list of outputs, oldest first; index "
            "it ('history.classifier[-1].…') or loop over it",
        ),
    ],
)
def test_bad_references_are_reported_at_the_prompt_line(
    tmp_path: Path, left: str, message: str
) -> None:
    assert errors(PIPELINE, tmp_path, _prompts(left)) == [f"{message} (prompt of agent 'left')"]


def test_an_agent_without_output_has_only_text(tmp_path: Path) -> None:
    text = """\
name: refs
agents:
  - id: writer
    prompt: w.md
    dispatch: {strategy: sequential, target: editor}
  - id: editor
    prompt: e.md
"""
    prompts = {"w.md": "Write.\n", "e.md": "{{ outputs.writer.text }}\n"}
    assert compile_text(text, tmp_path, prompts).warnings == []
    prompts["e.md"] = "{{ outputs.writer.summary }}\n"
    assert errors(text, tmp_path, prompts) == [
        "e.md:1:1: error: 'outputs.writer.summary': agent 'writer' (which answers text) has no "
        "field 'summary'; its fields: text (prompt of agent 'editor')"
    ]


def test_an_ancestor_items_output_is_visible_after_a_fan_out(tmp_path: Path) -> None:
    text = """\
name: refs
agents:
  - id: planner
    prompt: plan.md
    dispatch: {strategy: parallel_fan_out, target: worker}
  - id: worker
    prompt: work.md
"""
    prompts = {"plan.md": "Plan.\n", "work.md": "{{ outputs.planner.text }} {{ item }}\n"}
    assert compile_text(text, tmp_path, prompts).warnings == []


def test_dominance_with_a_diamond() -> None:
    from agentflow.compiler.lower import lower
    from agentflow.compiler.parse import parse_text

    text = """\
name: d
agents:
  - id: a
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [b, c]}
  - id: b
    prompt: p.md
    dispatch: {strategy: sequential, target: d}
  - id: c
    prompt: p.md
    dispatch: {strategy: sequential, target: d}
  - id: d
    prompt: p.md
"""
    idom = immediate_dominators(lower(parse_text(text, "d.yaml")))
    assert idom == {"a": None, "b": "a", "c": "a", "d": "a"}
    assert dominates(idom, "a", "d") and not dominates(idom, "b", "d")


def test_dominators_of_a_long_chain_need_no_recursion() -> None:
    from agentflow.compiler.lower import lower
    from agentflow.compiler.parse import parse_text

    agents = "".join(
        f"  - id: a{i}\n    prompt: p.md\n"
        + (f"    dispatch: {{strategy: sequential, target: a{i + 1}}}\n" if i < 2999 else "")
        for i in range(3000)
    )
    idom = immediate_dominators(lower(parse_text(f"name: c\nagents:\n{agents}", "c.yaml")))
    assert idom is not None and idom["a2999"] == "a2998"
    assert dominates(idom, "a0", "a2999")
