"""`agentflow` says only what is true (issue 8, findings 9-11), tried as a user runs it.

Exit codes: 0 succeeded, 1 the run failed, 2 the run could not start (usage,
missing files, an invalid pipeline, a busy port, a log in use), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.sinks.console import ConsoleSink, summarize
from tests.sigint import default_sigint

REPO = Path(__file__).resolve().parents[2]
PIPELINES = REPO / "pipelines"
HELLO = PIPELINES / "hello_world.yaml"
SCENARIOS = REPO / "tests" / "scenarios" / "pipelines"
BIN = Path(sys.executable).parent


def agentflow(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real console script, offline (no API key), with a generous safety timeout."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY",)}
    return subprocess.run(
        [str(BIN / "agentflow"), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def the_run_log(cwd: Path) -> Path:
    """The one run's log, relative to `cwd`, at its default place: .agentflow/runs/<id>.jsonl."""
    (log,) = (cwd / ".agentflow" / "runs").glob("run-*.jsonl")
    return log.relative_to(cwd)


def replay_verdict(stdout: str) -> str:
    """The `replay: ...` line (the run's final output, printed too, is free text)."""
    (line,) = [line for line in stdout.splitlines() if line.startswith("replay: ")]
    return line


def events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def copy_hello(tmp_path: Path) -> Path:
    """hello_world.yaml with its prompts and cassette in `tmp_path` (so prompts can be edited)."""
    shutil.copytree(PIPELINES / "prompts", tmp_path / "prompts")
    for name in ("hello_world.yaml", "hello_world.cassette.jsonl"):
        shutil.copy(PIPELINES / name, tmp_path / name)
    return tmp_path / "hello_world.yaml"


# -- finding 9: one live run per audit log; preconditions before any file is touched


def test_a_busy_port_leaves_the_previous_log_byte_identical(tmp_path: Path) -> None:
    first = agentflow("run", HELLO, "--no-ui", "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    log = tmp_path / the_run_log(tmp_path)
    before = log.read_bytes()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        second = agentflow("run", HELLO, "--port", str(port), cwd=tmp_path)
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert str(port) in second.stderr and "Traceback" not in second.stderr
    assert log.read_bytes() == before


def test_a_second_run_on_a_live_log_is_refused_and_the_first_log_verifies(
    tmp_path: Path,
) -> None:
    # A fan-out whose tool sleeps an hour per item: run A is surely live when B starts.
    shutil.copytree(SCENARIOS / "prompts", tmp_path / "prompts")
    shutil.copy(SCENARIOS / "slow_fanout.cassette.jsonl", tmp_path)
    slow = tmp_path / "slow_fanout.yaml"
    text = (SCENARIOS / "slow_fanout.yaml").read_text(encoding="utf-8")
    slow.write_text(text.replace('seconds: "0.25"', 'seconds: "3600"'), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(REPO)  # the sleepy plugin tool lives in tests.scenarios
    log = tmp_path / "shared.jsonl"
    command = [str(BIN / "agentflow"), "run", str(slow), "--model", "replay", "--no-ui",
               "--quiet", "--concurrency", "1", "--jsonl", str(log)]  # fmt: skip
    first = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60  # a safety net against a hang, not a budget
        while '"kind":"tool_call"' not in (log.read_text() if log.exists() else ""):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "run A never reached its tool call"
            time.sleep(0.05)
        written = log.read_bytes()
        second = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2, (second.stdout, second.stderr)
        assert f"{log} is in use by another run (pid {first.pid}); use --jsonl PATH" in (
            second.stderr
        )
        assert log.read_bytes().startswith(written)  # B wrote nothing into A's log
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 130
    verified = agentflow("verify", log, "--pipeline", slow, cwd=tmp_path, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert len({e["run_id"] for e in events(log)}) == 1


def test_the_log_is_free_again_after_a_run(tmp_path: Path) -> None:
    for _ in range(2):
        done = agentflow("run", HELLO, "--model", "dry-run", "--no-ui", "--quiet", cwd=tmp_path)
        assert done.returncode == 0, done.stderr


def test_replaying_a_log_into_itself_is_refused_before_it_is_emptied(tmp_path: Path) -> None:
    assert agentflow("run", HELLO, "--no-ui", "--quiet", cwd=tmp_path).returncode == 0
    log = the_run_log(tmp_path)  # each run has its own log: only --jsonl can name it again
    before = (tmp_path / log).read_bytes()
    again = agentflow("run", HELLO, "--no-ui", "--replay", log, "--jsonl", log, cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    assert "--jsonl" in again.stderr
    assert (tmp_path / log).read_bytes() == before


# -- finding 10: --json, --quiet, --replay, errors on the console, exit codes


def test_json_stdout_is_only_json_lines(tmp_path: Path) -> None:
    done = agentflow("run", HELLO, "--no-ui", "--json", "--record", "cassette.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(events(tmp_path / the_run_log(tmp_path)))
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert "SUCCEEDED" in done.stderr and "cassette -> cassette.jsonl" in done.stderr


def test_quiet_prints_only_the_summary_and_the_final_output(tmp_path: Path) -> None:
    done = agentflow("run", HELLO, "--no-ui", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("run run-") and "SUCCEEDED in state 'complete'" in lines[0]
    assert lines[1] == f"audit log -> {the_run_log(tmp_path)} (41 events, sealed)"
    assert lines[2] == "output:"
    run_id = the_run_log(tmp_path).stem
    output = agentflow("output", run_id, cwd=tmp_path)
    assert "\n".join(lines[3:]) + "\n" == output.stdout and "ownership" in output.stdout
    assert done.stderr == ""


def test_replay_reuses_the_recorded_input(tmp_path: Path) -> None:
    topic = "how trio nurseries work"
    assert agentflow("run", HELLO, topic, "--no-ui", "--quiet", cwd=tmp_path).returncode == 0
    recorded = the_run_log(tmp_path)
    again = agentflow(
        "run", HELLO, "--no-ui", "--quiet", "--replay", recorded,
        "--jsonl", "again.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    started = events(tmp_path / "again.jsonl")[0]
    assert started["payload"]["input"] == topic  # type: ignore[index]
    assert f"followed the recorded path of {recorded} exactly" in again.stdout


def test_replay_with_another_input_is_not_an_exact_match(tmp_path: Path) -> None:
    assert agentflow("run", HELLO, "one", "--no-ui", "--quiet", cwd=tmp_path).returncode == 0
    again = agentflow(
        "run", HELLO, "two", "--no-ui", "--quiet", "--replay", the_run_log(tmp_path),
        "--jsonl", "again.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "exactly" not in replay_verdict(again.stdout)
    assert "input" in again.stdout and "differs" in again.stdout


def test_replay_after_a_prompt_edit_reports_that_the_pipeline_changed(tmp_path: Path) -> None:
    pipeline = copy_hello(tmp_path)
    assert agentflow("run", pipeline, "x", "--no-ui", "--quiet", cwd=tmp_path).returncode == 0
    prompt = tmp_path / "prompts" / "writer_agent.md"
    prompt.write_text(prompt.read_text(encoding="utf-8") + "\nBe brief.\n", encoding="utf-8")
    again = agentflow(
        "run", pipeline, "--no-ui", "--quiet", "--replay", the_run_log(tmp_path),
        "--jsonl", "again.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "exactly" not in replay_verdict(again.stdout)
    assert "prompts changed since the recorded run" in again.stdout


def test_replay_after_a_yaml_edit_reports_that_the_pipeline_changed(tmp_path: Path) -> None:
    pipeline = copy_hello(tmp_path)
    assert agentflow("run", pipeline, "x", "--no-ui", "--quiet", cwd=tmp_path).returncode == 0
    pipeline.write_text(pipeline.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    again = agentflow(
        "run", pipeline, "--no-ui", "--quiet", "--replay", the_run_log(tmp_path),
        "--jsonl", "again.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert "exactly" not in replay_verdict(again.stdout)
    assert "hello_world.yaml changed since the recorded run" in again.stdout


def _event(kind: EventKind, **payload: object) -> PipelineEvent:
    return PipelineEvent(
        run_id="run-1", seq=1, ts=0.0, kind=kind, agent="writer_agent", item="main",
        attempt=1, payload=payload,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        (EventKind.AGENT_FAILED, "message"),
        (EventKind.MODEL_ERROR, "error"),
        (EventKind.ITEM_ABORTED, "reason"),
    ],
)
def test_long_error_messages_keep_their_cause(kind: EventKind, field: str) -> None:
    message = "model call (claude, agent writer_agent, turn 1) failed: " + "context " * 40
    message += "CAUSE: connection refused"
    payload: dict[str, object] = {"error": "ModelError", field: message}
    text = summarize(_event(kind, **payload))
    assert "CAUSE: connection refused" in text
    assert "model call (claude" in text


async def test_console_lines_keep_an_error_cause(tmp_path: Path) -> None:
    stream = (tmp_path / "out.txt").open("w", encoding="utf-8")
    sink = ConsoleSink(stream=stream, color=False)
    message = "tool failed: " + "x" * 300 + " because the disk is full"
    event = _event(EventKind.AGENT_FAILED, error="ToolError", message=message)
    await sink.emit(event, line="")
    stream.close()
    assert "because the disk is full" in (tmp_path / "out.txt").read_text(encoding="utf-8")


def test_a_failed_run_exits_1(tmp_path: Path) -> None:
    done = agentflow(
        "run", HELLO, "--model", "dry-run", "--fail-first", "9", "--no-ui", "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "FAILED" in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "missing.yaml", "--no-ui"], "no such file 'missing.yaml'"),
        (["run", HELLO, "--no-ui", "--input", "@nope.json"], "--input @nope.json"),
        (["run", HELLO, "--no-ui", "--cassette", "nope.jsonl"], "nope.jsonl"),
        (["run", "bad.yaml", "--no-ui"], "did you mean 'reviewer_agent'"),
        (["run"], "required"),
    ],
)
def test_a_run_that_cannot_start_exits_2(tmp_path: Path, args: list[str | Path], says: str) -> None:
    bad = HELLO.read_text().replace("target: reviewer_agent", "target: reviewr_agent")
    (tmp_path / "bad.yaml").write_text(bad)
    done = agentflow(*args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_help_documents_the_exit_codes(tmp_path: Path) -> None:
    for args in (["--help"], ["run", "--help"]):
        text = " ".join(agentflow(*args, cwd=tmp_path).stdout.split())
        assert "0 the run succeeded" in text
        assert "1 the run failed" in text
        assert "2 it could not start" in text
        assert "130 interrupted" in text


# -- finding 11: no import a command does not use


def test_an_offline_run_never_imports_the_anthropic_sdk(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agentflow", "run", str(HELLO), "--no-ui",
         "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "trio" in imported  # the probe sees imports at all
    assert not {"anthropic", "httpx"} & imported
