"""Sub-pipelines at compile time (DSL v2 section 6): loading, trust rules, include cycles,
the child's input against what the parent passes, the agent's own rules, emitting and
`agentflowc` writing / checking every module."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import agentflow.compiler.load as load_module
from agentflow.compiler.cli import EXIT_INVALID, EXIT_OK, main
from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.emit import emit_module
from agentflow.compiler.load import PIPELINE_MAX_BYTES, load_pipeline

from .emit_helpers import ROOT, import_with_children
from .v2_helpers import compile_text, errors

CHILD = """\
name: team
input:
  topic: str
  depth: optional[int]
agents:
  - id: researcher
    instructions: "Research {{ input.topic }}."
"""


def child(tmp_path: Path, text: str = CHILD, name: str = "child.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def parent(body: str) -> str:
    return "name: s\n" + textwrap.dedent(body)


# -- loading and trust ---------------------------------------------------------------


def test_the_child_is_compiled_with_the_parent(tmp_path: Path) -> None:
    child(tmp_path, name="kids/team.yaml")
    text = parent(
        """\
        input:
          topic: str
        agents:
          - id: team
            pipeline: kids/team.yaml
        """
    )
    loaded = compile_text(text, tmp_path)
    assert list(loaded.children) == ["team"]
    team = loaded.children["team"]
    assert team.spec.name == "team"
    assert team.source_path == "kids/team.yaml"
    assert team.prompts == {"researcher": "Research {{ input.topic }}."}


def test_a_childs_error_is_reported_at_its_line_and_the_parents(tmp_path: Path) -> None:
    child(tmp_path, CHILD.replace("input.topic", "input.topik"), "kids/team.yaml")
    text = parent("agents:\n  - id: team\n    pipeline: kids/team.yaml\n")
    assert errors(text, tmp_path) == [
        "v.yaml:4:15: error: sub-pipeline 'kids/team.yaml' does not compile (1 error in "
        "kids/team.yaml); fix it first",
        "kids/team.yaml:7:1: error: 'input.topik': the input has no field 'topik' (did you "
        "mean 'topic'?) (prompt of agent 'researcher')",
    ]


def test_a_childs_warning_is_the_parents_warning(tmp_path: Path) -> None:
    child(
        tmp_path,
        "name: w\nstate_machine:\n  initial: a\n  terminal: [b]\n  states: [{id: a}, {id: b}]\n"
        "agents:\n  - id: x\n    prompt: p.md\n    transitions: {on_complete: b}\n",
    )
    (tmp_path / "p.md").write_text("Do {{ input }}.")
    loaded = load_pipeline(
        child(tmp_path, "name: s\nagents:\n  - id: team\n    pipeline: child.yaml\n", "v.yaml")
    )
    assert [w.file for w in loaded.warnings] == [str(tmp_path / "child.yaml")]


def test_include_cycle_names_the_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    child(tmp_path, "name: a\nagents:\n  - id: x\n    pipeline: b.yaml\n", "a.yaml")
    child(tmp_path, "name: b\nagents:\n  - id: y\n    pipeline: a.yaml\n", "b.yaml")
    monkeypatch.chdir(tmp_path)
    problems = errors("name: top\nagents:\n  - id: t\n    pipeline: a.yaml\n", tmp_path)
    assert "b.yaml:4:15: error: include cycle: a.yaml -> b.yaml -> a.yaml; a pipeline cannot " \
        "include itself, directly or through its sub-pipelines" in problems  # fmt: skip


def test_a_pipeline_that_includes_itself_is_an_error(tmp_path: Path) -> None:
    path = child(tmp_path, "name: s\nagents:\n  - id: a\n    pipeline: me.yaml\n", "me.yaml")
    with pytest.raises(CompileError) as caught:
        load_pipeline(path)
    assert [d.message for d in caught.value.diagnostics] == [
        "pipeline 'me.yaml' includes itself; remove the 'pipeline:'"
    ]


def test_a_child_outside_the_directory_is_refused(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    child(tmp_path, name="outside.yaml")
    inner.mkdir()
    (inner / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    for written in ("../outside.yaml", "link.yaml"):
        text = f"name: s\nagents:\n  - id: a\n    pipeline: {written}\n"
        (message,) = errors(text, inner)
        assert message.startswith(
            f"v.yaml:4:15: error: sub-pipeline path '{written}' leads outside the pipeline "
            "file's directory"
        ), message
        assert message.endswith(
            "sub-pipelines must be files under the pipeline file's directory, and a symlink "
            "may not leave it"
        )


def test_a_child_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("#" * (PIPELINE_MAX_BYTES + 1))
    assert errors("name: s\nagents:\n  - id: a\n    pipeline: big.yaml\n", tmp_path) == [
        f"v.yaml:4:15: error: sub-pipeline file 'big.yaml' is larger than {PIPELINE_MAX_BYTES} "
        f"bytes (1 MiB) ({PIPELINE_MAX_BYTES + 1} bytes or more); a sub-pipeline is compiled "
        "with its parent"
    ]


def test_a_child_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kids").mkdir()
    assert errors("name: s\nagents:\n  - id: a\n    pipeline: kids\n", tmp_path) == [
        "v.yaml:4:15: error: sub-pipeline 'kids' is a directory, not a file"
    ]


# -- what the parent passes ------------------------------------------------------------


def input_problems(tmp_path: Path, body: str, child_input: str = CHILD) -> list[str]:
    child(tmp_path, child_input)
    try:
        compile_text(parent(body), tmp_path)
    except CompileError as exc:
        return [d.message for d in exc.diagnostics]
    return []


UPSTREAM = """\
agents:
  - id: planner
    instructions: "Plan."
    output:
{fields}
    dispatch: {{strategy: sequential, target: team}}
  - id: team
    pipeline: child.yaml
"""


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ("      topic: str", None),
        ("      topic: str\n      depth: int", None),
        ("      topic: {enum: [a, b]}", None),  # an enum where a str is wanted
        ("      topic: str\n      depth: optional[int]", None),  # optional into optional
        ("      depth: int", "the sub-pipeline's 'input:' requires field 'topic', which it lacks"),
        ("      topic: str\n      extra: int", None),  # the child ignores what it does not declare
        (
            "      topic: int",
            "field 'topic' is int there, but the sub-pipeline's 'input:' wants str",
        ),
        (
            "      topic: optional[str]",
            "field 'topic' is optional there (it may be null), but the sub-pipeline's "
            "'input:' requires it",
        ),
        (
            "      topic: str\n      depth: float",
            "field 'depth' is float there, but the sub-pipeline's 'input:' wants int (optional)",
        ),
    ],
)
def test_the_childs_input_must_accept_the_upstreams_output(
    tmp_path: Path, fields: str, problem: str | None
) -> None:
    found = input_problems(tmp_path, UPSTREAM.format(fields=fields))
    expected = (
        []
        if problem is None
        else [
            "agent 'team': sub-pipeline 'child.yaml' cannot take the output of 'planner' as "
            f"its input: {problem}"
        ]
    )
    assert found == expected


def test_int_into_float_enum_subsets_lists_and_objects_are_accepted(tmp_path: Path) -> None:
    wanted = """\
    name: c
    input:
      score: float
      level: {enum: [low, mid, high]}
      tags: {type: list, items: str}
      who: {type: object, fields: {name: str}}
    agents:
      - id: x
        instructions: "X."
    """
    fields = (
        "      score: int\n      level: {enum: [low, high]}\n"
        "      tags: {type: list, items: str}\n      who: {type: object, fields: {name: str}}"
    )
    assert input_problems(tmp_path, UPSTREAM.format(fields=fields), wanted) == []
    wider = fields.replace("[low, high]", "[low, top]")
    assert input_problems(tmp_path, UPSTREAM.format(fields=wider), wanted) == [
        "agent 'team': sub-pipeline 'child.yaml' cannot take the output of 'planner' as its "
        "input: field 'level' is enum [low, top] there, but the sub-pipeline's 'input:' wants "
        "enum [low, mid, high] (it lacks 'top')"
    ]
    nested = fields.replace("{name: str}}", "{name: int}}")
    assert input_problems(tmp_path, UPSTREAM.format(fields=nested), wanted) == [
        "agent 'team': sub-pipeline 'child.yaml' cannot take the output of 'planner' as its "
        "input: field 'who.name' is int there, but the sub-pipeline's 'input:' wants str"
    ]


def test_text_and_shapeless_values_do_not_fit_a_typed_child(tmp_path: Path) -> None:
    text_upstream = """\
    agents:
      - id: planner
        instructions: "Plan."
        dispatch: {strategy: sequential, target: team}
      - id: team
        pipeline: child.yaml
    """
    assert input_problems(tmp_path, text_upstream) == [
        "agent 'team': sub-pipeline 'child.yaml' cannot take the output of 'planner' as its "
        "input: that is text (it declares no 'output:'), but the sub-pipeline's 'input:' wants "
        "an object with the fields topic, depth; declare an 'output:' with those fields"
    ]
    entry = "agents:\n  - id: team\n    pipeline: child.yaml\n"
    assert input_problems(tmp_path, entry) == [
        "agent 'team': sub-pipeline 'child.yaml' cannot take the run input as its input: that "
        "has no declared shape, but the sub-pipeline's 'input:' wants an object with the "
        "fields topic, depth; declare its shape ('input:' on this pipeline, or the fan-out's "
        "typed 'items:')"
    ]


def test_a_child_without_input_accepts_anything(tmp_path: Path) -> None:
    untyped = "name: c\nagents:\n  - id: x\n    instructions: 'X {{ input }}.'\n"
    entry = "agents:\n  - id: team\n    pipeline: child.yaml\n"
    assert input_problems(tmp_path, entry, untyped) == []


def test_a_fan_out_passes_its_work_items(tmp_path: Path) -> None:
    body = """\
    agents:
      - id: planner
        instructions: "Plan."
        output:
          topics: {{type: list, items: {items}}}
        dispatch: {{strategy: parallel_fan_out, target: team, items: topics}}
      - id: team
        pipeline: child.yaml
    """
    assert input_problems(tmp_path, body.format(items="{topic: str}")) == []
    assert input_problems(tmp_path, body.format(items="str")) == [
        "agent 'team': sub-pipeline 'child.yaml' cannot take a work item of 'planner' as its "
        "input: that is str, but the sub-pipeline's 'input:' wants an object with the fields "
        "topic, depth"
    ]


# -- the agent's own rules -------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "    on_fail: {action: abort}\n",
            "agent 'team' runs sub-pipeline 'child.yaml', which gives no QA verdict; remove "
            "'on_fail' (a QA agent after it, or inside the sub-pipeline, can check its result)",
        ),
        (
            "    dispatch: {strategy: parallel_fan_out, target: other}\n",
            "agent 'team' runs sub-pipeline 'child.yaml': its output is the sub-pipeline's "
            "result as text, so it cannot fan out; fan out from an agent after it",
        ),
        (
            "    tools: [filesystem]\n",
            "agent 'team' runs sub-pipeline 'child.yaml': 'tools' has no effect here (the "
            "sub-pipeline's agents make the model calls); set it in 'child.yaml'",
        ),
    ],
)
def test_a_sub_pipeline_agent_is_a_plain_agent(tmp_path: Path, extra: str, message: str) -> None:
    untyped = "name: c\nagents:\n  - id: x\n    instructions: 'X {{ input }}.'\n"
    child(tmp_path, untyped)
    text = (
        "name: s\ntools:\n  - id: filesystem\n    type: builtin\n    config: {root: .}\n"
        "agents:\n  - id: team\n    pipeline: child.yaml\n" + extra
        + "  - id: other\n    instructions: 'O.'\n"
    )  # fmt: skip
    assert message in [e.split(": error: ", 1)[1] for e in errors(text, tmp_path)]


# -- emitting and agentflowc -------------------------------------------------------------

PARENT_FILE = """\
name: parent-pipe
input:
  topic: str
agents:
  - id: team
    pipeline: kids/team.yaml
    dispatch: {strategy: sequential, target: editor}
  - id: editor
    instructions: "Edit {{ upstream }}."
"""


def test_the_parent_module_imports_the_childs(tmp_path: Path) -> None:
    child(tmp_path, name="kids/team.yaml")
    loaded = load_pipeline(child(tmp_path, PARENT_FILE, "parent.yaml"))
    source = emit_module(loaded)
    assert "import team as _pipeline_team\n" in source
    assert "return await run_subpipeline(ctx, _pipeline_team.COMPILED, " in source
    (tmp_path / "gen").mkdir()
    module = import_with_children(loaded, "gen_parent_pipe", tmp_path / "gen")
    assert module.COMPILED.children["team"].spec == loaded.children["team"].spec
    assert "team" not in module.PROMPTS  # a sub-pipeline agent has no prompt
    assert module.DefaultHandlers.team.__doc__.startswith("Run team's sub-pipeline")


def test_agentflowc_writes_and_checks_the_childs_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    child(tmp_path, name="kids/team.yaml")
    child(tmp_path, PARENT_FILE, "parent.yaml")
    assert main(["parent.yaml", "-o", "gen"]) == EXIT_OK
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["parent_pipe.py", "team.py"]
    assert main(["parent.yaml", "kids/team.yaml", "-o", "gen", "--check"]) == EXIT_OK
    (tmp_path / "kids" / "team.yaml").write_text(CHILD.replace("Research", "Study"))
    capsys.readouterr()
    assert main(["parent.yaml", "-o", "gen", "--check"]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "agentflowc: gen/team.py is stale; regenerate it with 'agentflowc " in err
    assert "gen/parent_pipe.py" not in err  # the parent's module does not embed the child


def test_two_files_giving_one_module_name_clash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    child(tmp_path, name="kids/team.yaml")
    child(tmp_path, PARENT_FILE, "parent.yaml")
    child(tmp_path, CHILD.replace("Research", "Other"), "other/team.yaml")
    assert main(["parent.yaml", "other/team.yaml", "-o", "gen"]) == EXIT_INVALID
    assert (
        "other/team.yaml:1:1: error: pipeline name 'team' gives module 'team.py', which "
        "'kids/team.yaml' also generates; rename one of the pipelines"
    ) in capsys.readouterr().err


def test_a_sub_pipeline_makes_a_pipeline_v2_so_a_stranding_failure_is_an_error(
    tmp_path: Path,
) -> None:
    """`pipeline:` is a DSL v2 key: a failure that strands the run is an error, not the
    warning a v1 pipeline gets."""
    child(tmp_path, "name: c\nagents:\n  - id: x\n    instructions: 'X {{ input }}.'\n")
    text = (
        "name: s\nstate_machine:\n  initial: a\n  terminal: [b]\n  states: [{id: a}, {id: b}]\n"
        "agents:\n  - id: team\n    pipeline: child.yaml\n    transitions: {on_complete: b}\n"
    )
    (problem,) = errors(text, tmp_path)
    assert problem.startswith("v.yaml:7:9: error: if agent 'team' fails, the run is left")


def test_the_golden_case_childs_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """The focused golden case `subpipeline` checks the parent's module
    (tests/compiler/test_golden.py); this checks its child's, as `agentflowc` writes it
    next to the parent's (kept in team/expected.py, so its header names the YAML
    relative to the case directory)."""
    from .test_golden import GOLDEN, check_golden

    monkeypatch.chdir(ROOT)
    loaded = load_pipeline("tests/golden/cases/subpipeline/pipeline.yaml")
    expected = GOLDEN / "cases" / "subpipeline" / "team" / "expected.py"
    check_golden(emit_module(loaded.children["team"], expected.parent.parent), expected)


def test_each_child_file_is_compiled_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eleven levels that each include the next twice are 2^11 paths: every file is
    compiled once and shared (twenty levels, now over the 10,000 expanded agents
    limit, took 2^20 compilations)."""
    for level in range(11):
        nxt = f"l{level + 1}.yaml"
        (tmp_path / f"l{level}.yaml").write_text(
            f"name: l{level}\nagents:\n  - id: a\n    pipeline: {nxt}\n"
            f"    dispatch: {{strategy: sequential, target: b}}\n  - id: b\n    pipeline: {nxt}\n"
        )
    (tmp_path / "l11.yaml").write_text("name: l11\nagents:\n  - id: x\n    instructions: 'X.'\n")
    calls: list[str] = []
    real_lower = load_module.lower
    monkeypatch.setattr(load_module, "lower", lambda parsed: calls.append("") or real_lower(parsed))
    loaded = load_pipeline(tmp_path / "l0.yaml")
    assert len(calls) == 12
    assert loaded.children["a"] is loaded.children["b"]


def test_sub_pipelines_nest_at_most_32_deep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for level in range(40):
        (tmp_path / f"d{level}.yaml").write_text(
            f"name: d{level}\nagents:\n  - id: a\n    pipeline: d{level + 1}.yaml\n"
        )
    (tmp_path / "d40.yaml").write_text("name: d40\nagents:\n  - id: x\n    instructions: 'X.'\n")
    with pytest.raises(CompileError) as caught:
        load_pipeline(tmp_path / "d0.yaml")
    deepest = [d for d in caught.value.diagnostics if "nest more than" in d.message]
    assert [(Path(d.file).name, d.line, d.message) for d in deepest] == [
        (
            "d32.yaml",
            4,
            "sub-pipelines nest more than 32 deep here (d0.yaml -> d1.yaml -> ... -> "
            "d32.yaml -> d33.yaml); flatten the nesting",
        )
    ]


def test_a_child_whose_module_name_is_taken_is_an_error(tmp_path: Path) -> None:
    """The parent's module imports the child's by its module name: a child named like its
    parent (or like another child from another file) would import the wrong module, so
    the loader refuses it (agentflow run failed with an internal AttributeError)."""
    (tmp_path / "kid.yaml").write_text("name: team\nagents:\n  - id: x\n    instructions: 'X.'\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "kid.yaml").write_text(
        "name: helper\nagents:\n  - id: y\n    instructions: 'Y.'\n"
    )
    (tmp_path / "third.yaml").write_text(
        "name: Helper\nagents:\n  - id: z\n    instructions: 'Z.'\n"
    )
    same_as_parent = "name: team\nagents:\n  - id: a\n    pipeline: kid.yaml\n"
    assert errors(same_as_parent, tmp_path) == [
        "v.yaml:4:15: error: sub-pipeline 'kid.yaml' is named 'team', which gives module "
        "'team.py' like this pipeline; rename one of them"
    ]
    two_children = (
        "name: top\nagents:\n  - id: a\n    pipeline: other/kid.yaml\n"
        "    dispatch: {strategy: sequential, target: b}\n  - id: b\n    pipeline: third.yaml\n"
    )
    assert errors(two_children, tmp_path) == [
        "v.yaml:7:15: error: sub-pipeline 'third.yaml' is named 'Helper', which gives module "
        "'helper.py' like sub-pipeline 'other/kid.yaml'; rename one of them"
    ]
