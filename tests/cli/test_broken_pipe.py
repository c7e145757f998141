"""`agentflow export RUN | head -1`: the reader leaving early is not an error. The CLI
exits quietly with 141 (128 + SIGPIPE, what `cat` and `agentflowc` give a shell), no
"error", no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENTFLOW = str(Path(sys.executable).parent / "agentflow")


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path: Path) -> None:
    fanout = ROOT / "pipelines" / "research_fanout.yaml"
    done = subprocess.run(
        [AGENTFLOW, "run", str(fanout), "topic", "--model", "dry-run", "--items", "300",
         "--no-ui", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [AGENTFLOW, "runs", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    run_id = json.loads(listed.stdout.splitlines()[0])["id"]
    export = subprocess.Popen(
        [AGENTFLOW, "export", run_id], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert export.stdout is not None and export.stderr is not None
    first = export.stdout.readline()  # then the reader goes away, like `| head -1`
    export.stdout.close()
    err = export.stderr.read().decode()
    assert export.wait(timeout=60) == 141, err
    assert json.loads(first)["seq"] == 0
    assert err == ""
