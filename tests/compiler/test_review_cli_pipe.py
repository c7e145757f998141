"""Second reader, DSL v2 part 2: `agentflowc --explain/--graph | head`.

A reader that stops early (head) closed the pipe under agentflowc, which reported
"internal error: BrokenPipeError ... this is a bug" and exited 70. It now stops
quietly with 141, the status of a command that SIGPIPE ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", [("--explain",), ("--graph", "mermaid")])
def test_a_closed_pipe_is_not_an_internal_error(mode: tuple[str, ...]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before agentflowc writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agentflow.compiler", *mode, "pipelines/supervisor.yaml"],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141
