"""`agentflow run --executor ray --ray-address ADDR`: a real command joins the test's
cluster, runs the agents in actors, and ends with the result, output and verified log
of `--executor local`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.sigint import default_sigint

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


SLOW = Path(__file__).parent / "pipelines" / "slow.yaml"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_run_interrupted_on_ray_resumes_on_ray_with_every_item_once(
    ray_cluster: Path, tmp_path: Path, stop: signal.Signals
) -> None:
    """`agentflow resume` re-creates the run's Ray executor from its recorded options,
    after a Ctrl-C (the run is `cancelled`) or a SIGKILL of the orchestrator (the run
    stays `running` with a dead owner)."""
    address = ray.get_runtime_context().gcs_address
    common = ["--no-ui", "--json", "--store", str(tmp_path / "s.db")]
    model = ["--model", "dry-run"]  # the handlers call none; the CLI wants a model
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the pipeline's handlers: tests.ray
    run = subprocess.Popen(
        [sys.executable, "-m", "agentflow.runtime.cli", "run", str(SLOW), "4",
         "--executor", "ray", "--ray-address", address, "--jsonl", "run.jsonl", *model, *common],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
        preexec_fn=default_sigint,
    )  # fmt: skip
    assert run.stdout is not None
    run_id = None
    try:
        for line in run.stdout:  # interrupt after the first item's work is done
            event = json.loads(line)
            run_id = event["run_id"]
            if event["kind"] == "agent_completed" and event["agent"] == "work":
                run.send_signal(stop)
                break
        run.communicate(timeout=120)
    finally:
        run.kill()
    assert run_id is not None
    before = _invocation_actors()
    resumed = subprocess.run(
        [sys.executable, "-m", "agentflow.runtime.cli", "resume", run_id, *common],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert len(_invocation_actors() - before) >= 1  # the resume ran its work on Ray
    log = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in log]
    assert "run_resumed" in kinds and kinds[-2:] == ["run_finished", "log_sealed"]
    assert log[-2]["payload"]["status"] == "succeeded"
    done = Counter(
        e["item"] for e in log if e["kind"] == "agent_completed" and e["agent"] == "work"
    )
    assert done == Counter({f"item-{k}": 1 for k in range(1, 5)})
    verified = subprocess.run(
        [sys.executable, "-m", "agentflow.runtime.cli", "verify", "run.jsonl",
         "--pipeline", str(SLOW)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
