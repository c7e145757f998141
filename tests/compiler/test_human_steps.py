"""Human agents in the DSL (`human:` and `kind: human`, docs/human.md): what compiles,
what is refused (each error at its file/line/column), and what the module exposes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.emit import emit_module
from agentflow.compiler.load import LoadedPipeline, load_pipeline, load_pipeline_text
from agentflow.runtime.spec import HumanSpec

HEAD = """\
name: approve
input:
  topic: str
agents:
  - id: writer
    instructions: "Write about {{ input.topic }}."
    dispatch: {strategy: sequential, target: approver}
"""


def _load(agents: str, tmp_path: Path, files: dict[str, str] | None = None) -> LoadedPipeline:
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    text = HEAD + textwrap.indent(textwrap.dedent(agents), "  ")
    return load_pipeline_text(text, "approve.yaml", tmp_path)


def _errors(agents: str, tmp_path: Path, files: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(CompileError) as caught:
        _load(agents, tmp_path, files)
    return [str(d) for d in caught.value.diagnostics if d.severity == "error"]


def test_human_with_a_question_file_lowers_to_the_ir_field(tmp_path: Path) -> None:
    loaded = _load(
        """\
        - id: approver
          human: {question: q.md, assignee: the comms lead}
          output: {approved: bool, comment: str}
        """,
        tmp_path,
        {"q.md": "Approve {{ outputs.writer.text }}?"},
    )
    agent = loaded.spec.agent("approver")
    assert agent.human == HumanSpec(question="q.md", assignee="the comms lead")
    assert agent.kind is None and agent.prompt is None  # `kind` is kept as written
    assert loaded.prompts["approver"] == "Approve {{ outputs.writer.text }}?"


def test_kind_human_with_prompt_is_the_same_ir_as_human_question(tmp_path: Path) -> None:
    files = {"q.md": "Approve {{ input.topic }}?"}
    spelled_kind = _load(
        """\
        - id: approver
          kind: human
          prompt: q.md
          output: {approved: bool}
        """,
        tmp_path,
        files,
    )
    spelled_human = _load(
        """\
        - id: approver
          human: {question: q.md}
          output: {approved: bool}
        """,
        tmp_path,
        files,
    )
    assert spelled_kind.spec.agent("approver").kind == "human"
    assert spelled_kind.spec.model_copy(update={"agents": ()}) == spelled_human.spec.model_copy(
        update={"agents": ()}
    )
    kind_agent, human_agent = (p.spec.agent("approver") for p in (spelled_kind, spelled_human))
    assert kind_agent.model_copy(update={"kind": None}) == human_agent
    assert spelled_kind.prompts == spelled_human.prompts


def test_kind_human_with_inline_instructions_asks_that_text(tmp_path: Path) -> None:
    loaded = _load(
        """\
        - id: approver
          kind: human
          instructions: "Ship {{ input.topic }}?"
          output: {approved: bool}
        """,
        tmp_path,
    )
    agent = loaded.spec.agent("approver")
    assert agent.human == HumanSpec() and agent.instructions == "Ship {{ input.topic }}?"
    assert loaded.prompts["approver"] == "Ship {{ input.topic }}?"


def test_output_shape_is_required(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          human: {question: q.md}
        """,
        tmp_path,
        {"q.md": "Approve?"},
    )
    assert errors == [
        "approve.yaml:9:5: error: agent 'approver' is answered by a person: declare the "
        "answer's shape with 'output:' (what the person fills in), e.g. output: "
        "{approved: bool, comment: str}"
    ]


def test_a_human_router_gets_no_implicit_output(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          human: {question: q.md}
          dispatch:
            strategy: route
            cases: {ship: end, stop: abort}
        """,
        tmp_path,
        {"q.md": "Approve?"},
    )
    assert len(errors) == 1
    assert errors[0].startswith("approve.yaml:9:5: error: agent 'approver' is answered by a")
    assert "a human router has no implicit output" in errors[0]
    assert "output: {route: {enum: [ship, stop]}}" in errors[0]


def test_a_human_router_with_an_explicit_output_routes(tmp_path: Path) -> None:
    loaded = _load(
        """\
        - id: approver
          human: {question: q.md}
          output: {approved: bool}
          dispatch:
            strategy: route
            on: approved
            cases: {true: end, false: abort}
        """,
        tmp_path,
        {"q.md": "Approve?"},
    )
    assert loaded.spec.agent("approver").dispatch is not None


@pytest.mark.parametrize("key", ["handler: 'pkg.mod:fn'", "pipeline: child.yaml", "prompt: q.md"])
def test_nothing_else_beside_human(key: str, tmp_path: Path) -> None:
    errors = _errors(
        f"""\
        - id: approver
          human: {{question: q.md}}
          {key}
          output: {{approved: bool}}
        """,
        tmp_path,
        {"q.md": "Approve?", "child.yaml": "name: child\nagents: [{id: a, instructions: x}]\n"},
    )
    first = key.split(":")[0]
    assert any(
        f"agent 'approver' has both '{first}' and 'human'" in e
        or f"agent 'approver' has both 'human' and '{first}'" in e
        for e in errors
    ), errors


@pytest.mark.parametrize(
    "key", ["tools: [filesystem]", "model: claude-opus-4-1", "max_tokens: 9", "temperature: 0.5"]
)
def test_model_settings_have_no_effect_on_a_human(key: str, tmp_path: Path) -> None:
    errors = _errors(
        f"""\
        - id: approver
          human: {{question: q.md}}
          output: {{approved: bool}}
          {key}
        """,
        tmp_path,
        {"q.md": "Approve?"},
    )
    name = key.split(":")[0]
    assert (
        f"approve.yaml:11:5: error: agent 'approver' is answered by a person: '{name}' has no "
        "effect here (a person answers, no model is called); remove it"
    ) in errors


def test_human_qa_agent_is_refused(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          human: {question: q.md}
          on_fail: {action: feedback_and_retry, target: writer}
        """,
        tmp_path,
        {"q.md": "Approve?"},
    )
    assert any("who answers typed data, not a QA verdict" in e for e in errors), errors


def test_question_variables_are_checked_like_a_prompt(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          human: {question: q.md}
          output: {approved: bool}
        """,
        tmp_path,
        {"q.md": "line one\nApprove {{ input.topik }}?"},
    )
    assert len(errors) == 1
    assert errors[0].startswith("q.md:2:1: error:")
    assert "topik" in errors[0] and "topic" in errors[0]


def test_a_missing_question_file_is_named_at_its_key(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          human: {question: nope.md}
          output: {approved: bool}
        """,
        tmp_path,
    )
    assert errors == [
        "approve.yaml:9:23: error: prompt file 'nope.md' not found (looked for 'nope.md'); "
        "create it or fix the path, which is relative to the pipeline file"
    ]


def test_no_question_at_all(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          human: {assignee: bob}
          output: {approved: bool}
        """,
        tmp_path,
    )
    assert errors == [
        "approve.yaml:9:5: error: agent 'approver' is answered by a person but asks no "
        "question: add 'question: prompts/x.md' under 'human:' (a template file, like "
        "'prompt:') or the question inline as 'instructions: \"...\"'"
    ]


def test_kind_human_without_a_question(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          kind: human
          output: {approved: bool}
        """,
        tmp_path,
    )
    assert len(errors) == 1 and errors[0].startswith("approve.yaml:9:5: error:")
    assert "is 'kind: human' but asks no question" in errors[0]


def test_kind_and_human_together(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          kind: human
          human: {question: q.md}
          output: {approved: bool}
        """,
        tmp_path,
        {"q.md": "Approve?"},
    )
    assert any(
        e.startswith("approve.yaml:9:5: error:") and "both 'kind: human' and 'human:'" in e
        for e in errors
    ), errors


def test_an_unknown_kind_has_a_did_you_mean(tmp_path: Path) -> None:
    errors = _errors(
        """\
        - id: approver
          kind: humna
          instructions: "Approve?"
          output: {approved: bool}
        """,
        tmp_path,
    )
    assert any(
        e.startswith("approve.yaml:9:11: error:") and "did you mean 'human'" in e for e in errors
    ), errors


def test_a_sub_pipeline_cannot_hold_a_human_step(tmp_path: Path) -> None:
    child = (
        "name: child\nagents:\n  - id: ask\n    human: {question: q.md}\n    output: {ok: bool}\n"
    )
    errors = _errors(
        """\
        - id: approver
          pipeline: child.yaml
        """,
        tmp_path,
        {"child.yaml": child, "q.md": "ok?"},
    )
    assert any(
        e.startswith("approve.yaml:9:15: error:") and "cannot wait for a person" in e
        for e in errors
    ), errors


def test_the_module_exposes_the_answer_models(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    loaded = load_pipeline(root / "pipelines" / "approval.yaml")
    source = emit_module(loaded)
    assert (
        'HUMAN_ANSWERS: Final[Mapping[str, type[BaseModel]]] = MappingProxyType({"approver": '
        "ApproverOutput})"
    ) in source
    assert "return await run_human_step(ctx, ApproverOutput)" in source
    namespace: dict[str, object] = {}
    exec(compile(source, "approval.py", "exec"), namespace)
    answers = namespace["HUMAN_ANSWERS"]
    assert isinstance(answers, dict) or hasattr(answers, "keys")
    model = answers["approver"]  # type: ignore[index]
    assert model.model_validate({"approved": True, "comment": "fine"}).approved is True
