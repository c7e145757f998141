"""Bad inputs to every command of the real CLI: a clear message, no traceback, and the
documented exit code (agentflowc: 1 invalid, 2 usage; agentflow: 2 could not start,
1 the run failed or the log does not verify)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.sigint import default_sigint

from .helpers import BIN, PIPELINES, agentflow

SINGLE = (PIPELINES / "single_agent.yaml").read_text(encoding="utf-8")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory holding a valid one-agent pipeline `ok.yaml` and its prompt."""
    (tmp_path / "prompts").mkdir()
    shutil.copy(PIPELINES / "prompts" / "generic.md", tmp_path / "prompts")
    (tmp_path / "ok.yaml").write_text(SINGLE, encoding="utf-8")
    return tmp_path


def clean_failure(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert a clean failure with `code`; return stderr."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "internal error" not in proc.stderr
    return proc.stderr


def run(work: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return agentflow("run", *args, "--model", "dry-run", "--no-ui", "--quiet", cwd=work)


def compile_(work: Path, path: str) -> subprocess.CompletedProcess[str]:
    return agentflow(path, "-o", work / "out", cwd=work, tool="agentflowc")


BAD_FILES: dict[str, tuple[bytes | None, str]] = {
    "missing.yaml": (None, "missing.yaml:1:1: error: no such file 'missing.yaml'"),
    "empty.yaml": (b"", "empty.yaml:1:1: error: the pipeline file is empty"),
    "binary.yaml": (bytes(range(256)) * 8, "binary.yaml:2:1: error: the file is not valid UTF-8"),
    "list.yaml": (b"- a\n- b\n", "list.yaml:2:3: error: expected a mapping, found a sequence"),
    "tabs.yaml": (
        SINGLE.replace("\n    - id: done", "\n\t- id: done").encode(),
        "tabs.yaml:8:1: error: YAML syntax error",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_pipeline_files_give_file_and_line(work: Path, name: str) -> None:
    content, expected = BAD_FILES[name]
    if content is not None:
        (work / name).write_bytes(content)
    assert expected in clean_failure(compile_(work, name), 1)
    assert expected in clean_failure(run(work, name), 2)
    assert not (work / "out").exists()


def test_a_directory_as_pipeline(work: Path) -> None:
    (work / "adir.yaml").mkdir()
    assert "'adir.yaml' is a directory" in clean_failure(compile_(work, "adir.yaml"), 1)
    proc = agentflow("verify", "x.jsonl", "--pipeline", "adir.yaml", cwd=work)
    assert "'adir.yaml' is a directory" in clean_failure(proc, 2)


def test_bom_and_crlf_pipelines_compile_and_run(work: Path) -> None:
    (work / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + SINGLE.encode())
    (work / "crlf.yaml").write_bytes(SINGLE.replace("\n", "\r\n").encode())
    for name in ("bom.yaml", "crlf.yaml"):
        proc = run(work, name, "--jsonl", f"{name}.jsonl")
        assert proc.returncode == 0, proc.stderr
        assert "SUCCEEDED in state 'done'" in proc.stdout


def test_a_two_megabyte_pipeline_compiles(work: Path) -> None:
    # How long it takes is measured in bench/ (bench_compile.py --padding-mb 2), not here.
    padding = ("# " + "y" * 1000 + "\n") * 2000
    (work / "big.yaml").write_text(SINGLE + padding, encoding="utf-8")
    proc = compile_(work, "big.yaml")
    assert proc.returncode == 0, proc.stderr
    assert (work / "out" / "single_agent.py").exists()


def test_json_input_from_a_file_reaches_the_run(work: Path) -> None:
    (work / "in.json").write_text('{"topic": "Ünïcode ✓", "n": [1, 2]}', encoding="utf-8")
    proc = run(work, "ok.yaml", "--input", "@in.json", "--jsonl", "run.jsonl")
    assert proc.returncode == 0, proc.stderr
    first = json.loads((work / "run.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["payload"]["input"] == {"topic": "Ünïcode ✓", "n": [1, 2]}


def test_input_from_a_missing_file(work: Path) -> None:
    assert "nope.json" in clean_failure(run(work, "ok.yaml", "--input", "@nope.json"), 2)


def test_input_from_a_binary_file(work: Path) -> None:
    (work / "in.bin").write_bytes(bytes(range(128, 256)))
    assert "in.bin" in clean_failure(run(work, "ok.yaml", "--input", "@in.bin"), 2)


def test_input_from_a_json_file_with_a_bom(work: Path) -> None:
    (work / "in.json").write_bytes(b'\xef\xbb\xbf{"topic": "bom"}')
    proc = run(work, "ok.yaml", "--input", "@in.json", "--jsonl", "run.jsonl")
    assert proc.returncode == 0, proc.stderr
    first = json.loads((work / "run.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["payload"]["input"] == {"topic": "bom"}


def test_usage_errors_exit_2(work: Path) -> None:
    assert "invalid port value: 'abc'" in clean_failure(run(work, "ok.yaml", "--port", "abc"), 2)
    assert "required: COMMAND" in clean_failure(agentflow(cwd=work), 2)
    assert "invalid choice" in clean_failure(agentflow("frobnicate", cwd=work), 2)
    assert "required: pipeline" in clean_failure(agentflow("run", cwd=work), 2)


def test_port_out_of_range_is_a_usage_error(work: Path) -> None:
    proc = agentflow("run", "ok.yaml", "--model", "dry-run", "--port", "99999", cwd=work)
    assert "--port" in clean_failure(proc, 2)


def test_negative_concurrency_is_a_usage_error(work: Path) -> None:
    shutil.copy(PIPELINES / "fanout_items.yaml", work)
    shutil.copy(PIPELINES / "prompts" / "item.md", work / "prompts")
    assert "--concurrency" in clean_failure(
        run(work, "fanout_items.yaml", "--concurrency", "-3"), 2
    )


def test_missing_plugin_module_is_a_clear_error(work: Path) -> None:
    plugin = SINGLE.replace(
        "state_machine:",
        "tools:\n  - id: gone\n    type: plugin\n"
        '    plugin: "no_such_pkg.tools:Gone"\nstate_machine:',
    )
    (work / "plugin.yaml").write_text(plugin, encoding="utf-8")
    assert compile_(work, "plugin.yaml").returncode == 0  # documented: not imported by agentflowc
    assert "no_such_pkg" in clean_failure(run(work, "plugin.yaml"), 2)


def _finished_log(work: Path) -> Path:
    proc = run(work, "ok.yaml", "--jsonl", "run.jsonl")
    assert proc.returncode == 0, proc.stderr
    return work / "run.jsonl"


def test_verify_rejects_non_jsonl_files(work: Path) -> None:
    (work / "notjson.jsonl").write_text("not json\n", encoding="utf-8")
    (work / "empty.jsonl").write_text("", encoding="utf-8")
    for name, expected in [
        ("notjson.jsonl", "notjson.jsonl:1: not a PipelineEvent"),
        ("empty.jsonl", "empty log: no events at all"),
        ("ok.yaml", "ok.yaml:1: not a PipelineEvent"),
        ("missing.jsonl", "cannot read the log"),
    ]:
        proc = agentflow("verify", name, cwd=work)
        clean_failure(proc, 1)  # the log does not verify
        assert expected in proc.stdout


def test_verify_a_log_against_another_pipeline(work: Path) -> None:
    log = _finished_log(work)
    assert agentflow("verify", log, "--pipeline", "ok.yaml", cwd=work).returncode == 0
    shutil.copy(PIPELINES / "long_chain.yaml", work)
    proc = agentflow("verify", log, "--pipeline", "long_chain.yaml", cwd=work)
    assert "is a run of pipeline 'single-agent', not of 'long-chain'" in clean_failure(proc, 2)


def test_serve_rejects_missing_and_non_jsonl_logs(work: Path) -> None:
    (work / "notjson.jsonl").write_text("not json\n", encoding="utf-8")
    for name, expected in [
        ("missing.jsonl", "cannot read run log missing.jsonl"),
        ("notjson.jsonl", "notjson.jsonl:1: not a JSON event line"),
    ]:
        proc = agentflow("serve", name, "--pipeline", "ok.yaml", "--port", "0", cwd=work)
        assert expected in clean_failure(proc, 2)


def _serve_refused(work: Path, log: Path, pipeline: str) -> tuple[int, str]:
    """Run `agentflow serve` on a log it must refuse; return (exit code, stderr).

    A serve that does not refuse never exits: it is stopped (SIGINT) once it says it
    serves, and the test fails on its exit code; no wall-clock budget is involved.
    """
    proc = subprocess.Popen(
        [str(BIN / "agentflow"), "serve", str(log), "--pipeline", pipeline, "--port", "0"],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,  # a background CI job ignores SIGINT
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "ctrl+c to exit" in line:  # serving: it did not refuse the log
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=60)  # a safety net against a hang
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_serve_a_log_of_another_pipeline_is_an_error(work: Path) -> None:
    log = _finished_log(work)
    shutil.copy(PIPELINES / "long_chain.yaml", work)
    code, err = _serve_refused(work, log, "long_chain.yaml")
    assert code == 2 and "long" in err


def test_serve_an_empty_log_is_an_error(work: Path) -> None:
    (work / "empty.jsonl").write_text("", encoding="utf-8")
    code, err = _serve_refused(work, work / "empty.jsonl", "ok.yaml")
    assert code == 2 and "empty" in err


def test_unicode_name_prompt_and_input_through_the_cli(work: Path) -> None:
    shutil.copy(PIPELINES / "unicode.yaml", work)
    shutil.copy(PIPELINES / "prompts" / "unicode.md", work / "prompts")
    compiled = compile_(work, "unicode.yaml")
    assert compiled.returncode == 0, compiled.stderr
    assert (work / "out" / "pipeline.py").exists()  # "Рецензия ✓ pipeline": only ASCII survives
    proc = run(work, "unicode.yaml", "--input", "日本語 ✓ «été»")
    assert proc.returncode == 0, proc.stderr
    [log] = work.glob(".agentflow/runs/run-*.jsonl")  # the default log path: the run's id
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert events[0]["payload"]["pipeline"] == "Рецензия ✓ pipeline"
    assert events[0]["payload"]["version"] == "1.0-β"
    text = next(e for e in events if e["kind"] == "model_response")["payload"]["text"]
    assert "«日本語 ✓ «été»»" in text and "🚀" in text
    finished = next(e for e in events if e["kind"] == "run_finished")
    assert finished["payload"]["final_state"] == "fin"
    verify = agentflow("verify", log, "--pipeline", "unicode.yaml", cwd=work)
    assert verify.returncode == 0, verify.stdout
