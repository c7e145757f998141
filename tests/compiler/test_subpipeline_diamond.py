"""A diamond of includes (each level including the next twice) costs what its files cost.

d levels are 2^d references to the last file: the loader, `--explain` and `--graph`
must handle each child once, not once per reference (20 levels ran for minutes);
and a pipeline whose expansion runs more than 10,000 agents is refused (its log, UI
graph and dry-run route table would name 2^d agents).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEPTH = 11  # 6,142 agents expanded; 12 levels are 12,286 (over the limit)


def _write_diamond(base: Path, depth: int = DEPTH) -> Path:
    for level in range(depth):
        child = f"l{level + 1}.yaml"
        (base / f"l{level}.yaml").write_text(
            f"name: l{level}\nagents:\n"
            f"  - id: a\n    pipeline: {child}\n    dispatch: {{strategy: sequential, target: b}}\n"
            f"  - id: b\n    pipeline: {child}\n"
        )
    (base / f"l{depth}.yaml").write_text(
        f"name: l{depth}\nagents:\n  - id: leaf\n    instructions: Say hi.\n"
    )
    return base / "l0.yaml"


def _agentflowc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentflow.compiler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,  # a safety net: the exponential version never finished
    )


def test_explain_counts_each_child_once_and_states_the_exact_bound(tmp_path: Path) -> None:
    top = _write_diamond(tmp_path)
    done = _agentflowc(str(top), "--explain", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # every reference runs: 2^20 leaf calls, and 2 + 4 + ... + 2^20 sub-pipeline agents
    assert f"per run: model calls <= {2**DEPTH}\n" in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_graph_draws_each_child_once(tmp_path: Path, fmt: str) -> None:
    top = _write_diamond(tmp_path)
    done = _agentflowc(str(top), "--graph", fmt, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith(("digraph", "flowchart"))]
    assert len(heads) == DEPTH + 1  # one graph per file, each file once
    top = lines[: heads[1]]
    assert len(top) < 20 * DEPTH, len(top)  # each child drawn once, not 2^20 clusters
    runs = [line for line in top if "runs" in line]
    assert len(runs) == 2 * DEPTH  # both agents of every level point at their child


def test_a_diamond_that_expands_past_10000_agents_is_refused(tmp_path: Path) -> None:
    top = _write_diamond(tmp_path, depth=20)
    done = _agentflowc(str(top), "--explain", cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert (
        "l8.yaml:4:15: error: with its sub-pipelines expanded this pipeline has 12,286 agents"
        in done.stderr
    ), done.stderr
    assert "Traceback" not in done.stderr
