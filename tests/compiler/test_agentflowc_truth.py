"""`agentflowc` says only what is true (issue 8, findings 10 and 11)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentflow.compiler.emit import emit_module
from agentflow.compiler.graph import render_graph
from agentflow.compiler.load import load_pipeline

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def agentflowc(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentflowc"), *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spelling", "cwd", "out"),
    [
        ("pipelines/hello_world.yaml", ".", "generated"),
        ("./pipelines/hello_world.yaml", ".", "generated"),
        ("pipelines//hello_world.yaml", ".", "./generated/"),
        (str(ROOT / "pipelines" / "hello_world.yaml"), ".", str(ROOT / "generated")),
        ("hello_world.yaml", "pipelines", "../generated"),
        ("../pipelines/hello_world.yaml", "generated", "."),
        (str(ROOT / "pipelines" / "hello_world.yaml"), "/", str(ROOT / "generated")),
    ],
)
def test_check_does_not_depend_on_how_the_path_is_spelled(
    spelling: str, cwd: str, out: str
) -> None:
    done = agentflowc(spelling, "--check", "-o", out, cwd=ROOT / cwd)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


def test_the_embedded_source_path_is_relative_to_the_module(tmp_path: Path) -> None:
    source = emit_module(load_pipeline(ROOT / "pipelines" / "hello_world.yaml"), ROOT / "generated")
    assert 'SOURCE_PATH: Final = "../pipelines/hello_world.yaml"' in source
    assert str(ROOT) not in source


def test_a_regenerated_module_in_another_directory_names_its_source_from_there(
    tmp_path: Path,
) -> None:
    (tmp_path / "pipes").mkdir()
    shutil.copytree(ROOT / "pipelines" / "prompts", tmp_path / "pipes" / "prompts")
    shutil.copy(ROOT / "pipelines" / "hello_world.yaml", tmp_path / "pipes")
    done = agentflowc(tmp_path / "pipes" / "hello_world.yaml", "-o", tmp_path / "a" / "b")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "a" / "b" / "hello_world.py").read_text(encoding="utf-8")
    assert 'SOURCE_PATH: Final = "../../pipes/hello_world.yaml"' in text


_DIAGRAM_TYPES = re.compile(
    r"^\s*(flowchart|graph|stateDiagram(-v2)?|sequenceDiagram|classDiagram|erDiagram)\b"
)


@pytest.mark.parametrize("name", ["hello_world", "research_fanout", "seed_minimal"])
def test_mermaid_output_is_one_diagram(name: str) -> None:
    text = render_graph(load_pipeline(ROOT / "pipelines" / f"{name}.yaml"), "mermaid")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("%%")]
    assert [line for line in lines if _DIAGRAM_TYPES.match(line)] == [lines[0]]
    assert lines[0] == "flowchart TD"
    opened = sum(1 for line in lines if line.strip().startswith("subgraph "))
    closed = sum(1 for line in lines if line.strip() == "end")
    assert opened == closed == 2
    assert "[*]" not in text  # stateDiagram syntax has no place in a flowchart
    defined = set(re.findall(r"^\s+(\w+)[\[\(]", text, re.MULTILINE))
    used = set(re.findall(r"(\w+)\s+-[-.]+>", text)) | set(re.findall(r">\|[^|]*\|\s+(\w+)", text))
    assert used <= defined, used - defined


def test_mermaid_states_and_agents_cannot_clash() -> None:
    loaded = load_pipeline(ROOT / "pipelines" / "hello_world.yaml")
    text = render_graph(loaded, "mermaid")
    for agent in loaded.spec.agents:
        assert f"agent_{agent.id}[" in text
    for state in loaded.spec.state_machine.states:
        assert f"state_{state.id}" in text


def test_graph_from_the_cli_prints_one_mermaid_document_per_pipeline() -> None:
    done = agentflowc("pipelines/hello_world.yaml", "--graph", "mermaid")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("flowchart TD") == 1
    assert "stateDiagram" not in done.stdout


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_neither_trio_nor_pydantic(flag: str) -> None:
    probe = (
        "import sys\n"
        "from agentflow.compiler.cli import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('trio', 'pydantic', 'jinja2', 'anthropic')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_generated_modules_export_run_options() -> None:
    text = (ROOT / "generated" / "hello_world.py").read_text(encoding="utf-8")
    exported = text.split("__all__ = [", 1)[1].split("]", 1)[0]
    assert '"RunOptions"' in exported and '"RunResult"' in exported
