"""Resume time: a 10,000-item run SIGKILLed at ~50% of its events, then `agentflow resume`d.

The pipeline is the crash loop's fan-out (tests/durable/crash_fanout: planner -> N
workers -> a checker each) on the dry-run model (`--model dry-run --items N`: no
network, synthetic answers), run by the real CLI on a SQLite store in a temp dir.
First an uninterrupted run gives the event count and its cost; then a run is killed
once the store holds --kill-at of that many events, and resumed to the end.

Prints, for the uninterrupted run, the killed run and the resume: wall and CPU seconds
(the child process's, `resource.getrusage(RUSAGE_CHILDREN)`), committed events; and for
the resume: invocations replayed from the memo (the `steps` rows committed before it)
and invocations run live (the rows it added).

Usage:  .venv/bin/python bench/bench_resume.py [--items 10000] [--kill-at 0.5]
            [--concurrency 64]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "tests" / "durable" / "crash_fanout"
AGENTFLOW = str(Path(sys.executable).parent / "agentflow")


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db, timeout=30) as connection:
        try:
            return int(connection.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:  # the tables are not there yet
            return 0


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process(args: list[str], cwd: Path, db: Path, kill_at_events: int | None) -> dict[str, float]:
    """Run `agentflow ARGS`; SIGKILL it once the store holds `kill_at_events` events."""
    cpu, wall = _child_cpu(), time.perf_counter()
    env = {**os.environ, "AGENTFLOW_STORE": str(db)}
    with open(cwd / "out.txt", "ab") as out:
        process = subprocess.Popen([AGENTFLOW, *args], cwd=cwd, env=env, stdout=out, stderr=out)
        if kill_at_events is not None:
            while process.poll() is None and _count(db, "SELECT count(*) FROM events") < (
                kill_at_events
            ):
                time.sleep(0.01)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=3600)
    wall = time.perf_counter() - wall
    if kill_at_events is None and code != 0:
        raise SystemExit(f"agentflow {' '.join(args)} exited {code}: see {cwd / 'out.txt'}")
    return {
        "wall": wall,
        "cpu": _child_cpu() - cpu,
        "code": code,
        "events": _count(db, "SELECT count(*) FROM events"),
        "steps": _count(db, "SELECT count(*) FROM steps"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of the events")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="agentflow-bench-resume-"))
    try:
        shutil.copytree(PIPELINE, root / "pipeline")
        run = [
            "run", str(root / "pipeline" / "crash_fanout.yaml"), "topic", "--model", "dry-run",
            "--items", str(args.items), "--concurrency", str(args.concurrency),
            "--no-ui", "--quiet",
        ]  # fmt: skip
        (root / "full").mkdir()
        full = _process(run, root / "full", root / "full" / "store.db", None)
        (root / "crash").mkdir()
        db = root / "crash" / "store.db"
        killed = _process(run, root / "crash", db, int(full["events"] * args.kill_at))
        if killed["code"] != -signal.SIGKILL:
            raise SystemExit(f"the run ended ({killed['code']}) before it could be killed")
        with sqlite3.connect(db) as connection:
            (run_id,) = connection.execute("SELECT id FROM runs").fetchone()
        resumed = _process(["resume", run_id, "--no-ui", "--quiet"], root / "crash", db, None)
        print(
            f"{args.items:,}-item fan-out (dry-run model, concurrency {args.concurrency}), "
            f"SQLite; killed at {args.kill_at:.0%} of the events"
        )
        print(f"{'':<22}{'wall s':>8}{'cpu s':>8}{'events':>9}{'steps':>8}")
        for name, sample in (
            ("uninterrupted run", full),
            ("run, killed", killed),
            ("resume to the end", resumed),
        ):
            print(
                f"{name:<22}{sample['wall']:>8.2f}{sample['cpu']:>8.2f}"
                f"{sample['events']:>9.0f}{sample['steps']:>8.0f}"
            )
        replayed = killed["steps"]
        live = resumed["steps"] - killed["steps"]
        print(f"resume: {replayed:.0f} invocations replayed from the memo, {live:.0f} run live")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
