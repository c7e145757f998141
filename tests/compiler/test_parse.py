"""parse + lower: the examples compile, locations are exact, bad input gives clean diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.diagnostics import CompileError, Diagnostic
from agentflow.compiler.load import load_pipeline, load_pipeline_text
from agentflow.compiler.lower import lower
from agentflow.compiler.parse import parse_text
from agentflow.runtime.spec import PipelineSpec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "pipelines").glob("*.yaml"))


def _all_nodes(node: object) -> list[object]:
    """Every IR node (pydantic model) in a spec, depth first."""
    from pydantic import BaseModel

    found: list[object] = []
    if isinstance(node, BaseModel):
        found.append(node)
        for name in type(node).model_fields:
            found += _all_nodes(getattr(node, name))
    elif isinstance(node, tuple):
        for item in node:
            found += _all_nodes(item)
    return found


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_compile_without_diagnostics(path: Path) -> None:
    loaded = load_pipeline(path)
    assert loaded.warnings == []
    prompted = {a.id for a in loaded.spec.agents if a.handler is None and a.pipeline is None}
    assert set(loaded.prompts) == prompted  # a handler agent runs a function, not a prompt
    assert all(text.strip() for text in loaded.prompts.values())


def test_seed_minimal_with_flow_style_empty_list_compiles() -> None:
    path = ROOT / "pipelines" / "seed_minimal.yaml"
    assert "tools: []" in path.read_text()
    loaded = load_pipeline(path)
    assert loaded.spec.agent("reviewer_agent").tools == ()
    assert loaded.spec.tools[1].config == {"api_key_env": "MY_API_KEY"}


def test_every_node_has_a_location_in_the_source_file() -> None:
    loaded = load_pipeline(ROOT / "pipelines" / "hello_world.yaml")
    nodes = [n for n in _all_nodes(loaded.spec) if n is not loaded.spec.defaults.retry]
    # Nodes the YAML spelled out all carry a loc; defaults it omitted may not.
    spelled = [n for n in nodes if getattr(n, "loc", None) is not None]
    assert len(spelled) >= 15
    for node in spelled:
        assert node.loc.file.endswith("hello_world.yaml")  # type: ignore[attr-defined]


def test_locations_point_at_the_right_line_and_column() -> None:
    text = (ROOT / "pipelines" / "hello_world.yaml").read_text()
    lines = text.splitlines()
    spec = load_pipeline(ROOT / "pipelines" / "hello_world.yaml").spec
    reviewer = spec.agent("reviewer_agent")
    assert reviewer.loc is not None and reviewer.on_fail is not None
    assert reviewer.on_fail.loc is not None
    assert lines[reviewer.loc.line - 1][reviewer.loc.column - 1 :].startswith("id: reviewer_agent")
    assert lines[reviewer.on_fail.loc.line - 1].strip() == "on_fail:"
    assert reviewer.on_fail.loc.column == lines[reviewer.on_fail.loc.line - 1].index("on_fail") + 1


def test_prompt_is_kept_as_written_and_its_text_is_loaded() -> None:
    loaded = load_pipeline(ROOT / "pipelines" / "hello_world.yaml")
    assert loaded.spec.agent("writer_agent").prompt == "prompts/writer_agent.md"
    expected = (ROOT / "pipelines" / "prompts" / "writer_agent.md").read_text()
    assert loaded.prompts["writer_agent"] == expected


def test_source_path_stays_as_given_and_hash_is_of_the_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib

    monkeypatch.chdir(ROOT)
    loaded = load_pipeline("pipelines/hello_world.yaml")
    assert loaded.source_path == "pipelines/hello_world.yaml"
    raw = (ROOT / "pipelines" / "hello_world.yaml").read_bytes()
    assert loaded.source_sha256 == hashlib.sha256(raw).hexdigest()


def test_load_pipeline_text_matches_load_pipeline() -> None:
    path = ROOT / "pipelines" / "research_fanout.yaml"
    from_file = load_pipeline(path)
    from_text = load_pipeline_text(path.read_text(), str(path), path.parent)
    assert from_text.spec == from_file.spec
    assert from_text.prompts == from_file.prompts
    assert from_text.source_sha256 == from_file.source_sha256


MINIMAL = """\
name: mini
state_machine:
  initial: a
  terminal:
    - b
  states:
    - id: a
    - id: b
agents:
  - id: w
    prompt: p.md
    transitions:
      on_complete: b
"""


def test_defaults_fill_in_what_the_yaml_omits(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("{{ input }}")
    spec = load_pipeline_text(MINIMAL, "mini.yaml", tmp_path).spec
    assert spec == PipelineSpec.model_validate(
        {
            "name": "mini",
            "state_machine": {
                "initial": "a",
                "terminal": ["b"],
                "states": [{"id": "a"}, {"id": "b"}],
            },
            "agents": [{"id": "w", "prompt": "p.md", "transitions": {"on_complete": "b"}}],
        }
    )
    assert spec.version == "0.1.0"
    assert spec.defaults.max_concurrency == 16
    assert spec.entry_agent == "w"


def test_unknown_key_with_a_block_value_is_reported_at_the_key() -> None:
    text = "name: x\nagents:\n  - id: a\n    prompt: p\n    on_fial:\n      action: abort\n"
    with pytest.raises(CompileError) as caught:
        parse_text(text, "x.yaml")
    assert [str(d) for d in caught.value.diagnostics] == [
        "x.yaml:5:5: error: unknown key 'on_fial'; see docs/dsl.md for the keys allowed here"
    ]


def test_flow_style_lists_are_accepted_like_block_lists() -> None:
    flow = MINIMAL.replace("  terminal:\n    - b\n", "  terminal: [b]\n")
    assert flow != MINIMAL
    assert lower(parse_text(flow, "f.yaml")) == lower(parse_text(MINIMAL, "b.yaml"))


def _diagnostics(text: str) -> list[str]:
    with pytest.raises(CompileError) as caught:
        load_pipeline_text(text, "p.yaml", ROOT)
    return [str(d) for d in caught.value.diagnostics]


def test_all_ir_errors_are_reported_at_once_in_line_order() -> None:
    text = (
        "name: x\n"
        "defaults:\n"
        "  temperature: 2\n"
        "  max_tool_rounds: 0\n"
        "state_machine:\n"
        "  initial: Start\n"
        "agents:\n"
        "  - id: w\n"
    )
    assert _diagnostics(text) == [
        "p.yaml:3:16: error: 'defaults.temperature' must be <= 1.0, got 2.0",
        "p.yaml:4:20: error: 'defaults.max_tool_rounds' must be >= 1, got 0",
        "p.yaml:5:1: error: 'state_machine' is missing the required key 'states'",
        "p.yaml:5:1: error: 'state_machine' is missing the required key 'terminal'",
        "p.yaml:6:12: error: 'Start' is not a valid id for 'state_machine.initial': ids must "
        "match [a-z][a-z0-9_]* because they become Python identifiers (try 'start')",
        "p.yaml:8:5: error: agent 'w' needs one of 'prompt: prompts/x.md', "
        "'instructions: \"inline text\"', 'handler: \"package.module:function\"' or "
        "'pipeline: child.yaml'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml:1:1: error: the pipeline file is empty; start with 'name: my-pipeline'"),
        ("# only a comment\n", "p.yaml:1:1: error: the pipeline file is empty"),
        ("name: x\n  bad: indent\n", "p.yaml:2:6: error: YAML syntax error"),
        ("name: !!str x\n", "p.yaml:1:7: error: "),
        ("just text\n", "p.yaml:1:1: error: expected a mapping, found arbitrary text"),
        ("name: x\nagents: 3\n", "p.yaml:2:9: error: 'agents' expected a sequence"),
        ("name:\n  - a\n", "p.yaml:1:1: error: 'name' expected a string, found a sequence"),
    ],
)
def test_yaml_problems_are_one_clean_line(text: str, expected: str) -> None:
    found = _diagnostics(text)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found
    assert "\n" not in found[0]


def test_bom_is_ignored() -> None:
    text = "\ufeff" + (ROOT / "pipelines" / "hello_world.yaml").read_text()
    loaded = load_pipeline_text(text, "hello.yaml", ROOT / "pipelines")
    assert loaded.spec.name == "hello-world"


def test_file_problems_are_diagnostics(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as missing:
        load_pipeline(tmp_path / "nope.yaml")
    assert "no such file" in str(missing.value)
    with pytest.raises(CompileError) as directory:
        load_pipeline(tmp_path)
    assert "is a directory" in str(directory.value)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: ok\nversion: \xff\n")
    with pytest.raises(CompileError) as encoding:
        load_pipeline(bad)
    assert encoding.value.diagnostics == [
        Diagnostic(str(bad), 2, 1, "the file is not valid UTF-8; save it as UTF-8")
    ]
