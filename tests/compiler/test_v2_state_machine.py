"""DSL v2 section 7: the optional state machine and the two dead-end errors."""

from __future__ import annotations

from pathlib import Path

from agentflow.compiler.lower import DEFAULT_STATE_MACHINE
from agentflow.runtime.pipeline import derive_transitions

from .v2_helpers import compile_text, errors, line_of


def test_without_state_machine_the_default_one_is_filled_in(tmp_path: Path) -> None:
    spec = compile_text("name: s\nagents:\n  - id: a\n    prompt: p.md\n", tmp_path).spec
    assert spec.implicit_state_machine
    assert spec.state_machine == DEFAULT_STATE_MACHINE
    assert [s.id for s in spec.state_machine.states] == ["running", "complete", "failed"]
    assert spec.state_machine.initial == "running"
    assert spec.state_machine.terminal == ("complete", "failed")
    assert ("running", "run.complete", "complete") in derive_transitions(spec)
    assert ("running", "run.failed", "failed") in derive_transitions(spec)


def test_an_explicit_state_machine_is_not_implicit(tmp_path: Path) -> None:
    text = """\
name: s
state_machine:
  initial: start
  terminal: [done]
  states: [{id: start}, {id: done}]
agents:
  - id: a
    prompt: p.md
    transitions: {on_complete: done, on_abort: done}
"""
    spec = compile_text(text, tmp_path).spec
    assert not spec.implicit_state_machine
    assert spec.state_machine.initial == "start"


def test_the_implicit_machine_may_be_named_in_transitions(tmp_path: Path) -> None:
    text = "name: s\nagents:\n  - id: a\n    prompt: p.md\n    transitions: {on_abort: failed}\n"
    assert compile_text(text, tmp_path).spec.agent("a").transitions.on_abort == "failed"


VERDICT = """\
name: s
agents:
  - id: writer
    prompt: p.md
    transitions: {on_pass: complete, on_fail: failed}
"""


def test_verdict_transitions_on_an_agent_without_a_verdict(tmp_path: Path) -> None:
    line = line_of(VERDICT, "transitions")
    assert errors(VERDICT, tmp_path) == [
        f"v.yaml:{line}:28: error: agent 'writer' never gives a verdict (it has no on_fail and "
        "is not an aggregation gate), so its 'on_pass' transition can never fire; use "
        "'on_complete' (or 'on_abort'), or make the agent a QA agent with 'on_fail'",
        f"v.yaml:{line}:47: error: agent 'writer' never gives a verdict (it has no on_fail and "
        "is not an aggregation gate), so its 'on_fail' transition can never fire; use "
        "'on_complete' (or 'on_abort'), or make the agent a QA agent with 'on_fail'",
    ]


def test_verdict_transitions_on_a_qa_agent_are_fine(tmp_path: Path) -> None:
    text = """\
name: s
agents:
  - id: writer
    prompt: p.md
    dispatch: {strategy: sequential, target: checker}
  - id: checker
    prompt: p.md
    on_fail: {action: feedback_and_retry, target: writer}
    transitions: {on_pass: complete, on_fail: running}
"""
    assert compile_text(text, tmp_path).warnings == []


STRANDED = """\
name: s
state_machine:
  initial: start
  terminal: [done, failed]
  states: [{id: start}, {id: done}, {id: failed}]
agents:
  - id: first
    instructions: "Go."
    transitions: {on_complete: done, on_abort: failed}
    dispatch: {strategy: sequential, target: second}
  - id: second
    prompt: p.md
    transitions: {on_complete: done, on_abort: start}
"""


def test_a_failure_that_strands_the_run_is_an_error_in_a_v2_pipeline(tmp_path: Path) -> None:
    line = line_of(STRANDED, "on_abort: start")
    assert errors(STRANDED, tmp_path) == [
        f"v.yaml:{line}:48: error: if agent 'second' fails, the run is left in a non-terminal "
        "state with nothing left to run (no 'on_abort' into a terminal state); add "
        "'on_abort: failed' to the transitions, add an aggregation (its on_any_abort decides), "
        "or drop 'state_machine' to use the default"
    ]


def test_the_fix_the_message_names_compiles(tmp_path: Path) -> None:
    fixed = STRANDED.replace("on_abort: start", "on_abort: failed")
    assert compile_text(fixed, tmp_path).warnings == []


def test_a_stranding_v1_pipeline_still_compiles_with_a_warning(tmp_path: Path) -> None:
    v1 = STRANDED.replace('instructions: "Go."', "prompt: p.md")
    loaded = compile_text(v1, tmp_path)
    assert [(d.severity, d.line) for d in loaded.warnings] == [
        ("warning", line_of(v1, "on_abort: start"))
    ]


def test_an_aggregation_decides_the_end_so_nothing_strands(tmp_path: Path) -> None:
    text = """\
name: s
state_machine:
  initial: start
  terminal: [done, failed]
  states: [{id: start}, {id: done}, {id: failed}]
agents:
  - id: writer
    instructions: "Go."
    dispatch: {strategy: sequential, target: checker}
  - id: checker
    prompt: p.md
    on_fail: {action: abort}
aggregation:
  strategy: all_pass
  gates: [checker]
  on_complete: {transition: done}
  on_any_abort: {transition: failed}
"""
    assert compile_text(text, tmp_path).warnings == []


def test_stranding_names_at_most_three_agents_and_skips_unreachable_ones(tmp_path: Path) -> None:
    chain = "".join(
        f"  - id: s{i}\n    instructions: 'Go.'\n    transitions: {{on_complete: done}}\n"
        + (f"    dispatch: {{strategy: sequential, target: s{i + 1}}}\n" if i < 4 else "")
        for i in range(5)
    )
    text = (
        "name: s\nstate_machine:\n  initial: start\n  terminal: [done]\n"
        "  states: [{id: start}, {id: done}]\nagents:\n"
        + chain
        + "  - id: orphan\n    instructions: 'Never runs.'\n"
    )
    found = errors(text, tmp_path)
    assert len(found) == 1
    assert "if any of the agents 's0', 's1', 's2' (and 2 more) fails" in found[0]
    assert "orphan" not in found[0]
