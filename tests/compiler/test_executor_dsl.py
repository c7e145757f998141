"""`executor: local | ray` and `resources:` in the DSL (docs/scale.md): lowering, checks,
emitting and the JSON schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from agentflow.compiler.emit import emit_module
from agentflow.compiler.schema import pipeline_json_schema

from .v2_helpers import compile_text, errors, line_of

PIPELINE = """\
name: scale
defaults:
  executor: ray
agents:
  - id: writer
    instructions: Write.
    resources:
      num_cpus: 0.5
      memory_mb: 256
    dispatch:
      strategy: sequential
      target: editor
  - id: editor
    instructions: Edit.
    executor: local
"""


def test_defaults_and_agents_lower_their_executor_and_resources(tmp_path: Path) -> None:
    spec = compile_text(PIPELINE, tmp_path).spec
    assert spec.defaults.executor == "ray"
    writer, editor = spec.agents
    assert writer.executor is None  # inherits defaults.executor
    assert writer.resources is not None
    assert (writer.resources.num_cpus, writer.resources.memory_mb) == (0.5, 256)
    assert editor.executor == "local" and editor.resources is None


def test_the_default_executor_is_local(tmp_path: Path) -> None:
    spec = compile_text("name: s\nagents:\n  - id: a\n    instructions: A.\n", tmp_path).spec
    assert spec.defaults.executor == "local"
    assert spec.agents[0].executor is None


def test_an_unknown_executor_is_an_error_at_its_value_with_a_suggestion(tmp_path: Path) -> None:
    text = PIPELINE.replace("executor: local", "executor: rey")
    found = errors(text, tmp_path)
    assert found == [
        f"v.yaml:{line_of(text, 'executor: rey')}:15: error: 'executor' must be 'local' "
        "or 'ray', got 'rey' (did you mean 'ray'?)"
    ]


def test_resources_out_of_range_are_errors(tmp_path: Path) -> None:
    text = PIPELINE.replace("num_cpus: 0.5", "num_cpus: -1").replace("256", "0")
    found = errors(text, tmp_path)
    assert found == [
        f"v.yaml:{line_of(text, 'num_cpus')}:17: error: 'resources.num_cpus' must be >= 0.0, "
        "got -1.0",
        f"v.yaml:{line_of(text, 'memory_mb')}:18: error: 'resources.memory_mb' must be >= 1, got 0",
    ]


def test_resources_on_an_agent_that_says_executor_local_warn(tmp_path: Path) -> None:
    text = PIPELINE.replace(
        "    executor: local\n", "    executor: local\n    resources:\n      num_cpus: 2\n"
    )
    loaded = compile_text(text, tmp_path)
    assert [str(w) for w in loaded.warnings] == [
        f"v.yaml:{line_of(text, 'num_cpus: 2')}:7: warning: agent 'editor' says "
        "`executor: local`, so its `resources:` (what an invocation reserves on a Ray "
        "cluster) never apply; remove them or set `executor: ray`"
    ]


def test_resources_under_a_local_default_do_not_warn(tmp_path: Path) -> None:
    """`--executor ray` overrides defaults.executor, so the resources may still apply."""
    text = PIPELINE.replace("  executor: ray\n", "  executor: local\n")
    assert compile_text(text, tmp_path).warnings == []


def test_a_sub_pipeline_agent_cannot_run_on_ray(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text("name: child\nagents:\n  - id: c\n    instructions: C.\n")
    text = textwrap.dedent(
        """\
        name: s
        agents:
          - id: team
            pipeline: child.yaml
            executor: ray
        """
    )
    found = errors(text, tmp_path)
    assert found == [
        f"v.yaml:{line_of(text, 'executor: ray')}:15: error: agent 'team' runs the "
        "sub-pipeline child.yaml, whose dispatcher runs in the run's own process: it takes "
        "no `executor:` (a sub-pipeline's agents run in the run's process too: "
        "docs/scale.md, Limits)"
    ]


def test_the_generated_module_carries_executor_and_resources(tmp_path: Path) -> None:
    source = emit_module(compile_text(PIPELINE, tmp_path))
    assert 'defaults=DefaultsSpec(executor="ray")' in source
    assert "resources=ResourcesSpec(num_cpus=0.5, memory_mb=256)" in source
    assert 'executor="local"' in source


def test_a_pipeline_without_executor_emits_nothing_new(tmp_path: Path) -> None:
    source = emit_module(
        compile_text("name: s\nagents:\n  - id: a\n    instructions: A.\n", tmp_path)
    )
    assert "executor" not in source and "ResourcesSpec" not in source


def test_the_json_schema_names_the_executors() -> None:
    schema = json.dumps(pipeline_json_schema())
    assert '"enum": ["local", "ray"]' in schema
    assert "memory_mb" in schema and "num_cpus" in schema
