"""The examples in examples/ run as their docstrings say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_custom_reviewer_example_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(ROOT / "generated")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_reviewer.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The rule-based reviewer passes the first (short) draft: one verdict, no retry.
    assert done.stdout.splitlines()[0] == "verdict on main attempt 1: True"
    assert done.stdout.splitlines()[-1].startswith("succeeded complete ")
    assert (tmp_path / "workspace" / "draft.md").exists()  # the writer's tool call really ran
