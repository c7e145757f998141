"""Ctrl-C in the middle of a real `agentflow run`: exit 130 and a complete, verifiable audit log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.sigint import default_sigint

from .helpers import BIN, PIPELINES, ROOT, agentflow

PIPELINE = PIPELINES / "slow_fanout.yaml"


def _wait_for(log: Path, marker: str, proc: subprocess.Popen[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and marker in log.read_text(encoding="utf-8"):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"{marker} never appeared in {log}")


def test_sigint_mid_fan_out_exits_130_with_a_finished_log(tmp_path: Path) -> None:
    log = tmp_path / "slow.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(ROOT)  # the pipeline's plugin tool lives in tests.scenarios
    proc = subprocess.Popen(
        [str(BIN / "agentflow"), "run", str(PIPELINE), "--model", "replay", "--no-ui",
         "--quiet", "--concurrency", "1", "--jsonl", str(log)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        # item-1 is done (its item_finished is committed, then logged), 19 are not: each
        # item sleeps in its tool. Not the first tool_result: an item's output is
        # committed after its tool's result, so the item may still be running then.
        _wait_for(log, '"kind":"item_finished"', proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert "interrupted" in err
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))
    run_events = [e for e in events if e["kind"] != "log_sealed"]  # the seal, if any, is last
    assert [e["kind"] for e in run_events[-2:]] == ["run_cancelled", "run_finished"]
    finished = run_events[-1]["payload"]
    assert finished["status"] == "cancelled"
    assert finished["items"]["completed"] >= 1
    assert finished["items"]["aborted"] >= 1  # the items the run never got to
    assert sum(finished["items"].values()) <= 21
    verify = agentflow("verify", log, "--pipeline", PIPELINE, cwd=ROOT, pythonpath=ROOT)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "hash chain and transitions verified" in verify.stdout
