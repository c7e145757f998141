"""`agentflow run --executor ray --ray-address ADDR`: a real command joins the test's
cluster, runs the agents in actors, and ends with the result, output and verified log
of `--executor local`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import ray

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipelines" / "research_fanout.yaml"


def _run(cwd: Path, *options: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable, "-m", "agentflow.runtime.cli", "run", str(PIPELINE), "cats",
            "--model", "dry-run", "--no-ui", "--no-store", "--json", "--jsonl", "run.jsonl",
            *options,
        ],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    verified = subprocess.run(
        [sys.executable, "-m", "agentflow.runtime.cli", "verify", "run.jsonl",
         "--pipeline", str(PIPELINE)],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return next(e for e in events if e["kind"] == "run_finished")["payload"]


def test_agentflow_run_on_the_cluster_ends_as_a_local_run(
    ray_cluster: Path, tmp_path: Path
) -> None:
    address = ray.get_runtime_context().gcs_address
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    before = _invocation_actors()
    local = _run(tmp_path / "local", "--executor", "local")
    assert _invocation_actors() == before
    remote = _run(tmp_path / "ray", "--executor", "ray", "--ray-address", address)
    assert len(_invocation_actors() - before) >= 1  # the command's actors, in other jobs
    assert remote == local
    assert remote["status"] == "succeeded"


def _invocation_actors() -> set[str]:
    """The ids of every invocation actor the cluster has seen (alive or not)."""
    actors = ray._private.state.actors().values()
    return {a["ActorID"] for a in actors if a["ActorClassName"] == "_InvocationActor"}
