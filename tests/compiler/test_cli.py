"""agentflowc end to end, as a subprocess: exit codes, output files, --check, --schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentflow.compiler import cli
from agentflow.compiler.schema import schema_text

ROOT = Path(__file__).resolve().parents[2]
HELLO = "pipelines/hello_world.yaml"


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentflow.compiler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _emit_available() -> bool:
    try:
        import agentflow.compiler.emit  # noqa: F401
    except ImportError:
        return False
    return True


needs_emit = pytest.mark.skipif(not _emit_available(), reason="compiler.emit not built yet")


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in-process (the same code as the console script), for multi-step tests."""
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@needs_emit
def test_compile_writes_one_module_per_pipeline_then_check_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "gen"
    status, stdout, stderr = _main(capsys, HELLO, "pipelines/seed_minimal.yaml", "-o", str(out))
    assert status == 0, stderr
    assert stdout.splitlines() == [
        f"wrote: {out / 'hello_world.py'}",
        f"wrote: {out / 'my_pipeline.py'}",
    ]
    assert stderr == ""
    code = (out / "hello_world.py").read_text()
    compile(code, "hello_world.py", "exec")
    assert "pipelines/hello_world.yaml" in code

    status, _, stderr = _main(
        capsys, HELLO, "pipelines/seed_minimal.yaml", "-o", str(out), "--check"
    )
    assert status == 0, stderr
    status, stdout, _ = _main(capsys, HELLO, "-o", str(out))
    assert stdout == f"unchanged: {out / 'hello_world.py'}\n"
    assert (out / "hello_world.py").read_text() == code


@needs_emit
def test_check_names_stale_and_missing_files_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "gen"
    status, _, stderr = _main(capsys, HELLO, "-o", str(out), "--check")
    assert status == 1
    assert f"{out / 'hello_world.py'} is missing" in stderr
    assert not out.exists()

    assert _main(capsys, HELLO, "-o", str(out))[0] == 0
    target = out / "hello_world.py"
    target.write_text(target.read_text() + "# edited by hand\n")
    status, _, stderr = _main(capsys, HELLO, "-o", str(out), "--check")
    assert status == 1
    assert f"{target} is stale" in stderr
    assert target.read_text().endswith("# edited by hand\n")


@needs_emit
def test_generated_output_exits_0_as_a_subprocess(tmp_path: Path) -> None:
    result = _run(HELLO, "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote: {tmp_path / 'hello_world.py'}\n"


def test_invalid_pipeline_exits_1_with_all_diagnostics_and_a_summary(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    bad = tmp_path / "pipelines" / "hello_world.yaml"
    text = bad.read_text()
    bad.write_text(
        text.replace("target: reviewer_agent", "target: reviewr_agent").replace(
            "on_start: running", "on_start: runing"
        )
    )
    result = _run("pipelines/hello_world.yaml", "-o", str(tmp_path / "gen"), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == "2 errors"
    assert any(
        "on_start 'runing' is not a declared state (did you mean 'running'?)" in x for x in lines
    )
    assert any(
        x.startswith("pipelines/hello_world.yaml:")
        and "dispatch target 'reviewr_agent' is not an agent (did you mean 'reviewer_agent'?)" in x
        for x in lines
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "gen").exists()


def test_valid_and_invalid_together_exit_1_and_write_nothing(tmp_path: Path) -> None:
    result = _run(HELLO, "tests/compiler/invalid/dispatch_cycle.yaml", "-o", str(tmp_path))
    assert result.returncode == 1
    assert "dispatch cycle" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--graph", "svg", HELLO),
        ("--no-such-flag", HELLO),
        ("--schema", HELLO),
        ("--check", "--explain", HELLO),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = _run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("usage: agentflowc")
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("agentflowc ")


def test_schema_is_printed_and_the_committed_copy_is_up_to_date() -> None:
    result = _run("--schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["name", "agents"]  # state_machine is optional (DSL v2)
    assert '"loc"' not in json.dumps(schema["properties"])  # no source spans ("local" is)
    committed = (ROOT / "docs" / "pipeline.schema.json").read_text()
    assert committed == schema_text(), "regenerate: agentflowc --schema > docs/pipeline.schema.json"


def test_missing_file_and_directory_are_diagnostics_not_tracebacks() -> None:
    result = _run("pipelines/nope.yaml", "pipelines")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "pipelines/nope.yaml:1:1: error: no such file 'pipelines/nope.yaml'; check the path",
        "pipelines:1:1: error: 'pipelines' is a directory; pass a pipeline .yaml file",
        "2 errors",
    ]


def test_two_pipelines_with_one_module_name_are_rejected(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines")
    shutil.copy(tmp_path / "pipelines" / "hello_world.yaml", tmp_path / "pipelines" / "copy.yaml")
    result = _run(
        "pipelines/hello_world.yaml", "pipelines/copy.yaml", "-o", str(tmp_path / "g"), cwd=tmp_path
    )
    assert result.returncode == 1
    assert "gives module 'hello_world.py', which 'pipelines/hello_world.yaml' also generates" in (
        result.stderr
    )


def test_unexpected_exception_is_an_internal_error_with_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(path: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("agentflow.compiler.load.load_pipeline", explode)  # imported lazily
    assert cli.main([HELLO]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("agentflowc: internal error: RuntimeError: boom")
    assert "Traceback" not in err


@pytest.mark.parametrize("module", ["explain", "graph"])
def test_explain_and_graph_print_and_write_nothing(module: str, tmp_path: Path) -> None:
    pytest.importorskip(f"agentflow.compiler.{module}")
    args = ["--explain"] if module == "explain" else ["--graph", "mermaid"]
    result = _run(*args, HELLO, "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "writer_agent" in result.stdout
    assert list(tmp_path.iterdir()) == []
