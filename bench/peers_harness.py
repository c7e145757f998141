"""Run the shared peer harness (../shared/peers-bench, read-only) with bench/peers_agentflow.py
standing in for its fw_agentflow.py.

The harness's scripts find their framework modules next to themselves (`HERE`, from
`os.path.abspath(__file__)`, which does not resolve symlinks), so this script builds a
directory of symlinks: every harness file as it is, except `fw_agentflow.py`, which points at
this project's adapter. Nothing in the harness is edited or copied.

    $HOME/.peers-venv/bin/python bench/peers_harness.py run_all.py --trials 1
    $HOME/.peers-venv/bin/python bench/peers_harness.py c_latency.py --trials 1
    $HOME/.peers-venv/bin/python bench/peers_harness.py compile_bench.py --project .

Results go to $PEERS_OUT (default $HOME/peers-out), as the harness's README says. Run it with
the harness's venv, where agentflow is installed non-editable (what users get).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
HARNESS = Path(os.environ.get("PEERS_HARNESS", BENCH.parent.parent / "shared" / "peers-bench"))
ADAPTER = BENCH / "peers_agentflow.py"


def harness_view(into: Path) -> None:
    """Symlink every harness entry into `into`, with the adapter as fw_agentflow.py."""
    for entry in HARNESS.iterdir():
        if entry.name == "fw_agentflow.py" or entry.name == "__pycache__":
            continue
        (into / entry.name).symlink_to(entry)
    (into / "fw_agentflow.py").symlink_to(ADAPTER)


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
