"""`agentflow serve` verifies the log it shows and says so loudly (terminal and UI);
bad logs are clear errors; `agentflow verify` exits 0 only for a sound, sealed log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.sigint import default_sigint

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "pipelines" / "hello_world.yaml"


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}


def agentflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentflow", *args],
        cwd=cwd, env=_environ(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def finished_log(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    work = tmp_path_factory.mktemp("run")
    done = agentflow("run", str(HELLO), "--no-ui", "--quiet", "--jsonl", "run.jsonl", cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    return (work / "run.jsonl").read_bytes()


@contextmanager
def serving(log: Path, cwd: Path) -> Iterator[tuple[str, list[str]]]:
    """`agentflow serve LOG --pipeline hello_world.yaml --port 0`: (its URL, its stdout
    lines up to "ctrl+c to exit"); Ctrl-C on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentflow", "serve", str(log), "--pipeline", str(HELLO),
         "--port", "0"],
        cwd=cwd, env=_environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,  # a background CI job ignores SIGINT
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60  # a safety net against a hang, not a timing
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "ctrl+c to exit" in line:
                break
        urls = [x.split("-> ")[1].strip() for x in lines if "observability UI" in x]
        assert urls, "\n".join(lines) + (proc.stderr.read() if proc.stderr else "")
        yield urls[0], lines
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _config(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.rstrip("/") + "/api/config", timeout=10) as response:
        config: dict[str, Any] = json.load(response)
    return config


# -- serve: the verdict, loudly ------------------------------------------------------------


def test_serve_a_sound_log_says_it_verified(tmp_path: Path, finished_log: bytes) -> None:
    log = tmp_path / "run.jsonl"
    log.write_bytes(finished_log)
    with serving(log, tmp_path) as (url, lines):
        verification = _config(url)["verification"]
    assert verification["ok"] is True and verification["sealed"] is True
    assert verification["problems"] == []
    assert any("verified: 41 events, sealed" in line for line in lines), lines
    assert not any("NOT" in line for line in lines)


def test_serve_a_tampered_log_warns_on_the_terminal_and_in_the_ui(
    tmp_path: Path, finished_log: bytes
) -> None:
    lines = finished_log.splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"writer_agent"', b'"reviewer_agent"', 1)
    log = tmp_path / "run.jsonl"
    log.write_bytes(b"".join(lines))
    with serving(log, tmp_path) as (url, out):
        verification = _config(url)["verification"]
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
    banner = "\n".join(out)
    assert "WARNING: this audit log does NOT verify" in banner
    assert "line 7: prev_hash does not match the previous line" in banner
    assert verification["ok"] is False
    assert verification["problems"][0].startswith("line 7: prev_hash does not match")
    assert 'data-testid="log-warning"' in page  # where the page shows it (app.js fills it)


def test_serve_a_truncated_log_says_the_run_is_unfinished(
    tmp_path: Path, finished_log: bytes
) -> None:
    log = tmp_path / "run.jsonl"
    log.write_bytes(b"".join(finished_log.splitlines(keepends=True)[:-6]))
    with serving(log, tmp_path) as (url, out):
        verification = _config(url)["verification"]
    assert "WARNING: this audit log does NOT verify" in "\n".join(out)
    assert any("not sealed" in line for line in out)
    assert verification["ok"] is False and verification["sealed"] is False
    assert any(p.startswith("truncated: no run_finished") for p in verification["problems"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe garbage \x00\x01\n", "run.jsonl:1: not UTF-8 text"),
        (None, "run.jsonl:3: not UTF-8 text"),  # a good log with one bad byte on line 3
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n", "run.jsonl:1: not"),
        (b"[1, 2, 3]\n", "run.jsonl:1: a JSON value without a 'kind'"),
    ],
)
def test_serve_a_non_utf8_or_garbage_log_is_a_clear_error(
    tmp_path: Path, finished_log: bytes, content: bytes | None, expected: str
) -> None:
    if content is None:
        lines = finished_log.splitlines(keepends=True)
        lines[2] = lines[2].replace(b'"kind"', b'"kind\xe9"', 1)
        content = b"".join(lines)
    (tmp_path / "run.jsonl").write_bytes(content)
    done = agentflow("serve", "run.jsonl", "--pipeline", str(HELLO), "--port", "0", cwd=tmp_path)
    # A log serve cannot read is a run UI that cannot start: exit 2 (runtime/cli/main.py), never
    # 70 with a traceback. (`agentflow verify` of the same log exits 1: it does not verify.)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert f"agentflow: error: {expected}" in done.stderr
    verified = agentflow("verify", "run.jsonl", cwd=tmp_path)
    assert verified.returncode == 1 and "Traceback" not in verified.stderr


# -- verify: exit 0 only for a sound, sealed log ---------------------------------------------


def test_verify_exit_codes_and_messages(tmp_path: Path, finished_log: bytes) -> None:
    log = tmp_path / "run.jsonl"
    log.write_bytes(finished_log)
    done = agentflow("verify", "run.jsonl", "--pipeline", str(HELLO), cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("run.jsonl: OK: 41 events of run run-")
    assert "sealed" in done.stdout

    lines = finished_log.splitlines(keepends=True)
    edited = lines[-2].replace(b'"status":"succeeded"', b'"status":"failed"')
    log.write_bytes(b"".join([*lines[:-2], edited, lines[-1]]))
    done = agentflow("verify", "run.jsonl", "--pipeline", str(HELLO), cwd=tmp_path)
    assert done.returncode == 1
    assert "run.jsonl:41: prev_hash does not match the previous line" in done.stdout

    log.write_bytes(b"".join(lines[:-1]))  # the seal is gone: a crashed run's log
    done = agentflow("verify", "run.jsonl", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "run.jsonl: FAILED: 1 problem(s):",
        "  not sealed: the log has no log_sealed record, so it is not a finished run's whole log",
    ]
