"""Semantic checks: valid shapes compile, warnings do not fail, errors are all collected."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from agentflow.compiler.checks import parse_feedback_path
from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.load import LoadedPipeline, load_pipeline_text

KITCHEN_SINK = """\
name: kitchen-sink
version: "2.0.0"
entry: planner_agent
defaults:
  model: claude-sonnet-4-6
  max_tokens: 2048
  temperature: 0.2
  retry:
    max_attempts: 4
    backoff_ms: 10
  max_concurrency: 3
  max_tool_rounds: 5
  timeout_s: 30.5
  base_url: http://127.0.0.1:9
  max_cost_usd: 1.5
  max_total_tokens: 100000
  max_requests_per_minute: 50
  max_tokens_per_minute: 40000
  executor: local
input:
  ticket: str
  tier:
    enum: [free, pro]
    description: The customer's plan.
    optional: true
  steps:
    type: list
    items: {title: str, done: bool}
  author:
    type: object
    fields: {name: str, email: optional[str]}
tools:
  - id: filesystem
    type: builtin
    description: Files in the workspace.
    config:
      root: workspace
  - id: word_count
    type: plugin
    plugin: my_pkg.tools:WordCount
    description: Counts words.
    config: {}
state_machine:
  initial: idle
  terminal:
    - done
    - failed
  states:
    - id: idle
    - id: working
    - id: done
    - id: failed
agents:
  - id: planner_agent
    prompt: p.md
    tools: []
    model: claude-haiku-4-5
    max_tokens: 100
    temperature: 0
    max_tool_rounds: 2
    executor: ray
    resources: {num_cpus: 0.5, memory_mb: 128}
    transitions:
      on_start: working
      on_complete: working
      on_pass: working
      on_fail: working
      on_abort: failed
    dispatch:
      strategy: parallel_fan_out
      target: worker_agent
      targets: []
      max_concurrency: 2
    retry:
      max_attempts: 1
      backoff_ms: 0
    on_fail:
      action: abort
  - id: worker_agent
    instructions: "Work on {{ item }}."
    output:
      summary: str
    tools:
      - filesystem
      - word_count
    dispatch:
      strategy: parallel_broadcast
      targets:
        - qa_one
        - qa_two
      join: joiner
  - id: qa_one
    prompt: p.md
    on_fail:
      action: feedback_and_retry
      target: worker_agent
      feedback_path: "$.issues[*]"
  - id: qa_two
    handler: my_pkg.qa:check
    on_fail:
      action: feedback_and_retry
      target: worker_agent
      feedback_path: $.text
  - id: joiner
    instructions: "Judge {{ joined.qa_one.text }}."
    output:
      verdict: {enum: [ship, again, split, drop]}
    dispatch:
      strategy: route
      on: verdict
      cases:
        ship: end
        again: {target: worker_agent, max_iterations: 2, on_exhausted: end}
        split: splitter
      default: abort
  - id: splitter
    instructions: "Split {{ upstream }}."
    output:
      parts: list[str]
    dispatch:
      strategy: parallel_fan_out
      target: piece_agent
      items: parts
      reduce: reducer
  - id: piece_agent
    pipeline: children/piece.yaml
  - id: reducer
    instructions: "Sum up {{ children }}."
    dispatch: {strategy: sequential, target: approver}
  - id: approver
    human: {question: p.md, assignee: ops}
    output: {ok: bool}
    dispatch: {strategy: sequential, target: confirmer}
  - id: confirmer
    kind: human
    instructions: "Confirm {{ upstream }}?"
    output: {fine: bool}
aggregation:
  strategy: threshold
  gates:
    - qa_one
    - qa_two
  min_pass: 2
  on_complete:
    transition: done
  on_any_abort:
    transition: failed
"""


@pytest.fixture
def prompt_dir(tmp_path: Path) -> Path:
    (tmp_path / "p.md").write_text(
        "Do {{ input }} for {{ item }} ({{ attempt }}).\n{{ upstream }}\n"
    )
    _write_child(tmp_path)
    return tmp_path


def _write_child(base: Path) -> None:
    """The kitchen sink's sub-pipeline (`pipeline: children/piece.yaml`)."""
    (base / "children").mkdir()
    (base / "children" / "piece.yaml").write_text(
        "name: piece\nagents:\n  - id: doer\n    instructions: 'Do {{ input }}.'\n"
    )


def _load(text: str, base: Path) -> LoadedPipeline:
    return load_pipeline_text(text, "k.yaml", base)


def _errors(text: str, base: Path) -> list[str]:
    with pytest.raises(CompileError) as caught:
        _load(text, base)
    return [str(d) for d in caught.value.diagnostics]


def _line_of(text: str, snippet: str) -> int:
    """The 1-based line where `snippet` starts in `text` (the value of a `key:` line)."""
    return text[: text.index(snippet)].count("\n") + 1


def _nodes(node: object) -> list[BaseModel]:
    found: list[BaseModel] = []
    if isinstance(node, BaseModel):
        found.append(node)
        for name in type(node).model_fields:
            found += _nodes(getattr(node, name))
    elif isinstance(node, tuple):
        for item in node:
            found += _nodes(item)
    elif isinstance(node, dict):  # route cases by name
        for item in node.values():
            found += _nodes(item)
    return found


def test_kitchen_sink_uses_every_dsl_key_and_compiles(prompt_dir: Path) -> None:
    """Every IR field is accepted by the YAML schema and lowered (none left at its default)."""
    loaded = _load(KITCHEN_SINK, prompt_dir)
    spec = loaded.spec
    seen: dict[str, set[str]] = {}
    for node in _nodes(spec):
        seen.setdefault(type(node).__name__, set()).update(node.model_fields_set)
    for node in _nodes(spec):
        expected = set(type(node).model_fields) - {"loc", "implicit_state_machine"}
        assert expected <= seen[type(node).__name__], (type(node).__name__, expected)
    assert spec.defaults.timeout_s == 30.5
    assert spec.agent("planner_agent").temperature == 0.0
    assert spec.tools[1].config == {}
    assert loaded.warnings == []


def test_warnings_are_returned_and_do_not_fail(prompt_dir: Path) -> None:
    text = KITCHEN_SINK.replace(
        "aggregation:\n",
        "  - id: lonely_agent\n    prompt: p.md\n    retry:\n      max_attempts: 2\naggregation:\n",
    ).replace(
        "    on_fail:\n      action: abort\n",
        "    on_fail:\n      action: abort\n      feedback_path: $.issues\n",
    )
    loaded = _load(text, prompt_dir)
    assert [(d.line, d.severity, d.message.split(":")[0]) for d in loaded.warnings] == [
        (
            _line_of(text, "feedback_path: $.issues"),
            "warning",
            "feedback_path has no effect with action 'abort'; remove it",
        ),
        (_line_of(text, "id: lonely_agent"), "warning", "agent 'lonely_agent' never runs"),
        (
            _line_of(text, "max_attempts: 2\naggregation"),
            "warning",
            "retry on 'lonely_agent' has no effect",
        ),
    ]


def test_sequential_max_concurrency_is_a_warning(prompt_dir: Path) -> None:
    text = KITCHEN_SINK.replace(
        "      strategy: parallel_fan_out\n      target: worker_agent\n      targets: []\n",
        "      strategy: sequential\n      target: worker_agent\n",
    )
    messages = [d.message for d in _load(text, prompt_dir).warnings]
    assert messages == ["max_concurrency has no effect with sequential dispatch; remove it"]


def test_feedback_through_sequential_after_fan_out_is_upstream(prompt_dir: Path) -> None:
    """qa_one's target worker_agent is upstream on the same (fanned-out) item: accepted."""
    loaded = _load(KITCHEN_SINK, prompt_dir)
    assert loaded.spec.agent("qa_one").on_fail is not None


def test_independent_errors_are_all_reported_sorted_by_line(prompt_dir: Path) -> None:
    text = (
        KITCHEN_SINK.replace(
            "      target: worker_agent\n      targets: []", "      target: wroker_agent"
        )
        .replace("    - qa_two\n  min_pass: 2", "    - qa_two\n  min_pass: 3")
        .replace("      - word_count\n", "      - word_cnt\n")
    )
    errors = _errors(text, prompt_dir)
    assert [e.split(": error: ")[1].split(";")[0].split(" (")[0] for e in errors] == [
        "dispatch target 'wroker_agent' is not an agent",
        "tool 'word_cnt' is not declared",
        "min_pass 3 is more than the 2 gate(s), so no item could ever pass",
    ]
    lines = [int(e.split(":")[1]) for e in errors]
    assert lines == sorted(lines)


def test_cycle_of_three_is_named_once(prompt_dir: Path) -> None:
    text = KITCHEN_SINK.replace(
        "      target: worker_agent\n      feedback_path: $.text\n",
        "      target: worker_agent\n      feedback_path: $.text\n"
        "    dispatch:\n      strategy: sequential\n      target: planner_agent\n",
    )
    errors = [e for e in _errors(text, prompt_dir) if "cycle" in e]
    assert len(errors) == 1
    assert "dispatch cycle planner_agent -> worker_agent -> qa_two -> planner_agent" in errors[0]


def test_prompt_errors_point_into_the_prompt_file(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("line one\n\n{{ inptu }}\n")
    _write_child(tmp_path)
    errors = _errors(KITCHEN_SINK, tmp_path)
    assert errors[0].startswith(
        "p.md:3:1: error: prompt uses undefined variable 'inptu' (did you mean 'input'?)"
    )


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", []),
        ("$.issues", ["issues"]),
        ("$.issues[*]", ["issues", None]),
        ("$.issues[0].message", ["issues", 0, "message"]),
        ("$.data.found[12]", ["data", "found", 12]),
        ("issues", None),
        ("$.issues[", None),
        ("$..issues", None),
        ("$.issues[-1]", ["issues", -1]),
        ("$['issues']", ["issues"]),
        ("$.issues.*", ["issues", None]),
    ],
)
def test_feedback_path_subset(path: str, steps: list[str | int | None] | None) -> None:
    assert parse_feedback_path(path) == steps
