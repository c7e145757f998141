"""A `handler:` whose module cannot be imported: `agentflow run` names the agent and
the handler path (it said "cannot import a plugin tool ... Plugin tools: .")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_an_unimportable_handler_module_is_named_as_a_handler(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        'name: hx\nagents:\n  - id: triage\n    handler: "no_such_module_xyz:route"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "agentflow.runtime.cli.main", "run", "p.yaml", "--no-ui",
         "--model", "dry-run", "--jsonl", "run.jsonl"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "No module named 'no_such_module_xyz'" in done.stderr
    assert "handler of 'triage' (no_such_module_xyz:route)" in done.stderr
    assert "plugin tool" not in done.stderr  # the pipeline has none
    assert not (tmp_path / "run.jsonl").exists()
