"""Ctrl-C stops the real `agentflow run` while clients have stopped reading.

A WebSocket client completes the handshake with a small receive buffer and
then never reads; an HTTP client asks for the events and never reads the
answer. The run's first event carries a multi-megabyte input, so the server's
first write to each fills every socket buffer and cannot complete. Before the
fix those writes were shielded from cancellation and Ctrl-C hung.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.runner import run_pipeline
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.file import FileSink

from .cli_process import SAFETY_TIMEOUT, CliProcess, start_cli
from .raw_client import stalled_http_get, stalled_websocket

ITEMS = 200
BIG_INPUT_BYTES = 8 * 1024 * 1024  # more than any socket buffer here (wmem_max 4 MiB)

PIPELINE = """\
name: stall-fanout
version: "0.1.0"
defaults:
  model: claude-sonnet-4-6
  max_tokens: 256
  retry:
    max_attempts: 2
    backoff_ms: {backoff_ms}
state_machine:
  initial: idle
  terminal: [done, failed]
  states:
    - id: idle
    - id: working
    - id: done
    - id: failed
agents:
  - id: orchestrator_agent
    prompt: prompts/orchestrator.md
    transitions:
      on_start: working
    dispatch:
      strategy: parallel_fan_out
      target: worker_agent
      max_concurrency: 1000
  - id: worker_agent
    prompt: prompts/worker.md
    dispatch:
      strategy: sequential
      target: qa_agent
  - id: qa_agent
    prompt: prompts/qa.md
    on_fail:
      action: feedback_and_retry
      target: worker_agent
    transitions:
      on_abort: failed
aggregation:
  strategy: all_pass
  gates: [qa_agent]
  on_complete:
    transition: done
  on_any_abort:
    transition: failed
"""


def _write_pipeline(directory: Path, name: str, backoff_ms: int) -> Path:
    prompts = directory / "prompts"
    prompts.mkdir(parents=True, exist_ok=True)
    for agent in ("orchestrator", "worker", "qa"):
        (prompts / f"{agent}.md").write_text(f"Do the {agent} part of the job.\n")
    path = directory / name
    path.write_text(PIPELINE.format(backoff_ms=backoff_ms))
    return path


@pytest.fixture(scope="module")
def fanout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(a pipeline whose QA retries wait 10 minutes, one without the wait, a cassette).

    The cassette is a dry run of ITEMS work items in which every item's QA
    fails its first attempt, so a replay of it with the slow pipeline streams
    thousands of events and then waits in backoff, mid-run.
    """
    directory = tmp_path_factory.mktemp("stall")
    slow = _write_pipeline(directory, "slow.yaml", backoff_ms=600_000)
    fast = _write_pipeline(directory, "fast.yaml", backoff_ms=0)
    cassette = directory / "fanout.cassette.jsonl"
    module = compile_and_import(fast)

    async def record() -> None:
        await run_pipeline(
            module.compiled,
            "q",
            handlers=module.default_handlers(),
            model=DryRunModel(items=ITEMS, fail_first=1),
            sinks=[FileSink(cassette)],
        )

    trio.run(record)
    return slow, fast, cassette


def _run(pipeline: Path, cassette: Path, cwd: Path, log: Path) -> CliProcess:
    big_input = cwd / "input.txt"
    big_input.write_text("x" * BIG_INPUT_BYTES)
    return start_cli(
        "run",
        str(pipeline),
        "--input",
        f"@{big_input}",
        "--model",
        "replay",
        "--cassette",
        str(cassette),
        "--port",
        "0",
        "--jsonl",
        str(log),
        cwd=cwd,
    )


def _verify(log: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentflow", "verify", str(log)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
    )


def _retries_scheduled(cli: CliProcess) -> int:
    page = json.loads(cli.get("/api/events?kind=retry_scheduled&limit=10000"))
    return len(page["events"])


def test_ctrl_c_mid_run_exits_130_with_a_client_that_never_reads(
    fanout: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    slow, _, cassette = fanout
    log = tmp_path / "run.jsonl"
    cli = _run(slow, cassette, tmp_path, log)
    try:
        stalled = stalled_websocket(cli.port)
        stalled_http = stalled_http_get(cli.port, "/api/events?limit=10000")
        # Every item has failed QA once and waits out its 10-minute backoff: mid-run.
        deadline = time.monotonic() + SAFETY_TIMEOUT
        while _retries_scheduled(cli) < ITEMS:
            assert cli.proc.poll() is None, cli.output()
            assert time.monotonic() < deadline, "the run never reached its backoff"
            time.sleep(0.1)
        code = cli.interrupt()
        stalled.close()
        stalled_http.close()
    finally:
        cli.kill()
    stdout, stderr = cli.output()
    assert code == 130, (stdout[-2000:], stderr[-2000:])
    assert "Traceback" not in stdout + stderr
    assert "interrupted" in stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    finished = [e["payload"]["status"] for e in events if e["kind"] == "run_finished"]
    assert finished == ["cancelled"]
    verified = _verify(log, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_ctrl_c_after_the_run_exits_with_a_client_that_never_reads(
    fanout: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, fast, cassette = fanout
    log = tmp_path / "run.jsonl"
    cli = _run(fast, cassette, tmp_path, log)
    try:
        stalled = stalled_websocket(cli.port)
        cli.wait_for_output("ctrl+c to exit")
        stalled_http = stalled_http_get(cli.port, "/api/events?limit=10000")
        code = cli.interrupt()
        stalled.close()
        stalled_http.close()
    finally:
        cli.kill()
    stdout, stderr = cli.output()
    assert code == 0, (stdout[-2000:], stderr[-2000:])  # the run succeeded
    assert "Traceback" not in stdout + stderr
    verified = _verify(log, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
