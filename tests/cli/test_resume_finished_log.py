"""`agentflow resume` on a finished run completes its log instead of leaving it broken.

A process killed after its `run_finished` was committed but before `log_sealed` was
(or before the last committed lines reached the JSONL file) leaves a run the store
calls finished and a log `agentflow verify` rejects. Resume does not re-run it; it
seals the log (under a new lease, chained after the last event) and repairs the
export, then exits 0 saying what it did. A whole log is still refused (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENTFLOW = str(Path(sys.executable).parent / "agentflow")


def _agentflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _finished_run(tmp_path: Path) -> tuple[str, Path, Path]:
    """A finished dry run of hello world: (run id, its JSONL log, the store)."""
    done = _agentflow(
        "run", str(ROOT / "pipelines" / "hello_world.yaml"), "a topic", "--model", "dry-run",
        "--no-ui", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = _agentflow("runs", "--json", cwd=tmp_path)
    run_id = json.loads(listed.stdout.splitlines()[0])["id"]
    where = tmp_path / ".agentflow"
    return run_id, where / "runs" / f"{run_id}.jsonl", where / "agentflow.db"


def _drop_last_event(store: Path, run_id: str) -> None:
    """What a kill between the commits of `run_finished` and `log_sealed` leaves."""
    with sqlite3.connect(store) as db:
        (last,) = db.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
        kind = db.execute(
            "SELECT kind FROM events WHERE run_id = ? AND seq = ?", (run_id, last)
        ).fetchone()[0]
        assert kind == "log_sealed"
        db.execute("DELETE FROM events WHERE run_id = ? AND seq = ?", (run_id, last))
        (line,) = db.execute(
            "SELECT line FROM events WHERE run_id = ? AND seq = ?", (run_id, last - 1)
        ).fetchone()
        db.execute(
            "UPDATE runs SET last_seq = ?, last_hash = ? WHERE id = ?",
            (last - 1, hashlib.sha256(line.encode()).hexdigest(), run_id),
        )


def test_a_finished_run_killed_before_its_seal_is_sealed_by_resume(tmp_path: Path) -> None:
    run_id, log, store = _finished_run(tmp_path)
    _drop_last_event(store, run_id)
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))
    before = _agentflow("verify", str(log), cwd=tmp_path)
    assert before.returncode != 0 and "not sealed" in before.stdout + before.stderr

    resumed = _agentflow("resume", run_id, "--no-ui", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "sealed" in resumed.stdout and "Traceback" not in resumed.stderr
    after = _agentflow("verify", str(log), cwd=tmp_path)
    assert after.returncode == 0, after.stdout + after.stderr
    exported = _agentflow("export", run_id, cwd=tmp_path)
    assert exported.stdout == log.read_text()  # the store holds the seal too
    assert json.loads(log.read_text().splitlines()[-1])["kind"] == "log_sealed"
    shown = _agentflow("runs", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout.splitlines()[0])["status"] == "succeeded"


def test_a_finished_runs_lagging_export_is_repaired_by_resume(tmp_path: Path) -> None:
    run_id, log, _ = _finished_run(tmp_path)
    whole = log.read_text()
    log.write_text("".join(whole.splitlines(keepends=True)[:-3]))  # the last writes lost
    resumed = _agentflow("resume", run_id, "--no-ui", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "repaired" in resumed.stdout
    assert log.read_text() == whole


def test_a_finished_run_with_a_whole_log_is_still_refused(tmp_path: Path) -> None:
    run_id, log, _ = _finished_run(tmp_path)
    whole = log.read_text()
    refused = _agentflow("resume", run_id, "--no-ui", cwd=tmp_path)
    assert refused.returncode == 2
    assert f"run {run_id} finished (succeeded)" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert log.read_text() == whole
