"""`agentflow run / verify / serve` end to end, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.sigint import default_sigint

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "pipelines" / "hello_world.yaml"


def agentflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agentflow", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def the_run_log(cwd: Path) -> Path:
    """The one run's log, at its default place: .agentflow/runs/<run id>.jsonl."""
    (log,) = (cwd / ".agentflow" / "runs").glob("run-*.jsonl")
    return log


def kinds(log: Path) -> list[tuple[str, str | None, int | None]]:
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return [(e["kind"], e["agent"], e["attempt"]) for e in events]


def test_offline_hello_world_runs_verifies_and_says_offline(tmp_path: Path) -> None:
    done = agentflow("run", str(HELLO), "how trio nurseries work", "--no-ui", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "OFFLINE REPLAY" in done.stdout
    assert "SUCCEEDED in state 'complete'" in done.stdout
    assert "Traceback" not in done.stderr
    log = the_run_log(tmp_path)
    assert f"audit log -> .agentflow/runs/{log.name}" in done.stdout
    steps = [k for k in kinds(log) if k[0] in {"agent_started", "qa_verdict", "retry_scheduled"}]
    assert steps == [
        ("agent_started", "writer_agent", 1),
        ("agent_started", "reviewer_agent", 1),
        ("qa_verdict", "reviewer_agent", 1),
        ("retry_scheduled", "reviewer_agent", 1),
        ("agent_started", "writer_agent", 2),
        ("agent_started", "reviewer_agent", 2),
        ("qa_verdict", "reviewer_agent", 2),
    ]
    # The writer's filesystem tool call really ran, confined to ./workspace.
    assert (tmp_path / "workspace" / "draft.md").read_text().strip()
    verified = agentflow("verify", str(log), "--pipeline", str(HELLO), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK" in verified.stdout


def test_verify_detects_an_edited_audit_log(tmp_path: Path) -> None:
    assert agentflow("run", str(HELLO), "--no-ui", "--quiet", cwd=tmp_path).returncode == 0
    log = the_run_log(tmp_path)
    lines = log.read_text().splitlines()
    lines[5] = lines[5].replace('"writer_agent"', '"reviewer_agent"', 1)
    log.write_text("\n".join(lines) + "\n")
    verified = agentflow("verify", str(log), cwd=tmp_path)
    assert verified.returncode == 1
    assert f"{log.name}:7: prev_hash does not match" in verified.stdout


def test_record_then_replay_follows_the_recorded_path(tmp_path: Path) -> None:
    first = agentflow(
        "run", str(HELLO), "--no-ui", "--quiet", "--record", "cassette.jsonl", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    recorded = [json.loads(x) for x in (tmp_path / "cassette.jsonl").read_text().splitlines()]
    assert recorded and all(e["kind"] == "model_response" for e in recorded)
    again = agentflow(
        "run",
        str(HELLO),
        "--no-ui",
        "--quiet",
        "--replay",
        str(the_run_log(tmp_path)),
        "--jsonl",
        "again.jsonl",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert "followed the recorded path" in again.stdout


def test_replay_reports_where_an_edited_pipeline_departs(tmp_path: Path) -> None:
    assert agentflow("run", str(HELLO), "--no-ui", "--quiet", cwd=tmp_path).returncode == 0
    edited = tmp_path / "hello_world.yaml"
    text = HELLO.read_text().replace("max_attempts: 2", "max_attempts: 1")
    edited.write_text(text)
    shutil.copytree(REPO / "pipelines" / "prompts", tmp_path / "prompts")
    replay = agentflow(
        "run",
        str(edited),
        "--no-ui",
        "--quiet",
        "--replay",
        str(the_run_log(tmp_path)),
        "--jsonl",
        "edited.jsonl",
        cwd=tmp_path,
    )
    assert replay.returncode == 1  # the edited pipeline gives up after one attempt
    assert "departs" in replay.stdout
    assert "retry_scheduled" in replay.stdout or "item_aborted" in replay.stdout
    assert "outcome: recorded succeeded" in replay.stdout


def test_invalid_pipeline_is_a_diagnostic_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HELLO.read_text().replace("target: reviewer_agent", "target: reviewr_agent"))
    done = agentflow("run", str(bad), "--no-ui", cwd=tmp_path)
    assert done.returncode == 2  # the run could not start
    assert "did you mean 'reviewer_agent'" in done.stderr
    assert "bad.yaml:" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "code"), [(["run", "missing.yaml", "--no-ui"], 2), (["verify", "missing.jsonl"], 1)]
)
def test_missing_files_exit_without_traceback(tmp_path: Path, args: list[str], code: int) -> None:
    done = agentflow(*args, cwd=tmp_path)
    assert done.returncode == code  # run: could not start; verify: the log does not verify
    assert "Traceback" not in done.stderr
    assert "missing" in done.stderr + done.stdout


def test_a_cassette_without_the_call_fails_the_run_clearly(tmp_path: Path) -> None:
    fanout = REPO / "pipelines" / "research_fanout.yaml"
    done = agentflow(
        "run",
        str(fanout),
        "--no-ui",
        "--quiet",
        "--cassette",
        str(REPO / "pipelines" / "hello_world.cassette.jsonl"),
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    log = the_run_log(tmp_path).read_text()
    assert "CassetteMissError" in log or "no recorded response" in log


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert agentflow("run", cwd=tmp_path).returncode == 2
    assert agentflow("frobnicate", cwd=tmp_path).returncode == 2
    version = agentflow("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("agentflow ")


def test_ui_keeps_serving_after_the_run_until_ctrl_c(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentflow", "run", str(HELLO), "--quiet", "--port", "0"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # a background CI job ignores SIGINT
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "ctrl+c to exit" in line:
                break
        url = next(x.split("-> ")[1].strip() for x in lines if "observability UI" in x)
        assert url.startswith("http://127.0.0.1:")
        # the run's own page (`/` lists every run of the store); its API under /api/runs/<id>
        origin, _, run_page = url.partition("/runs/")
        assert run_page.startswith("run-")
        with urllib.request.urlopen(f"{origin}/api/runs/{run_page}/config", timeout=10) as page:
            config = json.load(page)
        assert {a["id"] for a in config["agents"]} == {"writer_agent", "reviewer_agent"}
        assert config["run"]["id"] == run_page
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0  # the run succeeded; Ctrl-C only closes the UI
    finally:
        if proc.poll() is None:
            proc.kill()


def test_input_given_twice_is_a_usage_error(tmp_path: Path) -> None:
    done = agentflow("run", str(HELLO), "topic", "--input", "other", "--no-ui", cwd=tmp_path)
    assert done.returncode == 2
    assert "not both" in done.stderr


def test_unwritable_audit_log_and_unreadable_input_name_the_option(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    done = agentflow("run", str(HELLO), "--no-ui", "--jsonl", "adir", cwd=tmp_path)
    assert done.returncode == 2 and "audit log adir: cannot write it" in done.stderr
    old_log = tmp_path / "last.jsonl"
    old_log.write_text("yesterday's run\n")
    done = agentflow(
        "run", str(HELLO), "--no-ui", "--input", "@nope.json", "--jsonl", "last.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "--input @nope.json: cannot read it" in done.stderr
    assert old_log.read_text() == "yesterday's run\n"  # a typo does not wipe the last log


def test_compile_errors_are_printed_as_the_compiler_prints_them(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HELLO.read_text().replace("initial: initialised", "initial: nowhere"))
    done = agentflow("run", str(bad), "--no-ui", cwd=tmp_path)
    assert done.returncode == 2
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"{bad}:") and ": error: " in first
    assert "agentflow: error:" not in done.stderr
