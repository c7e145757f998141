"""Run the shared peer harness (../shared/peers-bench, read-only) with bench/peers_agentflow.py
standing in for its fw_agentflow.py.

The harness's scripts find their framework modules next to themselves (`HERE`, and
`sys.path[0]`, which Python sets to a symlinked script's real directory), so this script
builds a temporary view of the harness: byte-for-byte copies of its scripts, a symlink to
its pipelines, and the adapter as `fw_agentflow.py`. Nothing in the harness is edited.

    $HOME/.peers-venv/bin/python bench/peers_harness.py run_all.py --trials 1
    $HOME/.peers-venv/bin/python bench/peers_harness.py c_latency.py --trials 1
    $HOME/.peers-venv/bin/python bench/peers_harness.py compile_bench.py --project .

Results go to $PEERS_OUT (default $HOME/peers-out), as the harness's README says. Run it with
the harness's venv, where agentflow is installed non-editable (what users get).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
HARNESS = Path(os.environ.get("PEERS_HARNESS", BENCH.parent.parent / "shared" / "peers-bench"))
ADAPTER = BENCH / "peers_agentflow.py"


def harness_view(into: Path) -> None:
    """Copy the harness's files into `into` (directories as symlinks), with the adapter
    as fw_agentflow.py."""
    for entry in HARNESS.iterdir():
        if entry.name in ("fw_agentflow.py", "__pycache__"):
            continue
        if entry.is_dir():
            (into / entry.name).symlink_to(entry)
        else:
            shutil.copyfile(entry, into / entry.name)
    shutil.copyfile(ADAPTER, into / "fw_agentflow.py")


def main(argv: list[str]) -> int:
    if not argv or not argv[0].endswith(".py"):
        print(__doc__, file=sys.stderr)
        return 2
    script, *rest = argv
    os.environ.setdefault("PEERS_OUT", str(Path.home() / "peers-out"))
    Path(os.environ["PEERS_OUT"]).mkdir(parents=True, exist_ok=True)
    if "--project" in rest:  # compile_bench.py: a path relative to where we were started
        at = rest.index("--project") + 1
        rest[at] = str(Path(rest[at]).resolve())
    with tempfile.TemporaryDirectory(prefix="peers-view-") as tmp:
        view = Path(tmp)
        harness_view(view)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ beside the harness
        return subprocess.run(
            [sys.executable, str(view / script), *rest], cwd=view, env=env
        ).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
