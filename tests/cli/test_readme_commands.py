"""The README's commands work as written after its first two (issue 8, finding 11).

The first command installs into `.venv` and activates it; the tour's commands
(`agentflowc ...`, `agentflow run ...`) then run by name. Here "activated" is
the venv's bin directory first on PATH, as `. .venv/bin/activate` makes it,
and each command runs in a copy of the repository's pipelines and generated
modules (so `--schema > file` and friends write nothing into the checkout).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.sigint import default_sigint

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.DOTALL)


def activated(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of what the tour reads, and the environment of an activated venv."""
    for name in ("pipelines", "generated"):
        shutil.copytree(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    return tmp_path, env


def test_the_install_command_activates_the_venv_before_any_tool_runs() -> None:
    install = bash_blocks()[0].strip()
    steps = [step.strip() for step in install.split("&&")]
    assert steps[0] == "python3 -m venv .venv"
    assert steps[1] == ". .venv/bin/activate"
    assert steps[2].startswith("pip install -e '.[dev]'")
    assert steps[3].startswith("agentflow run pipelines/hello_world.yaml")
    assert bash_blocks()[1].strip() == "python -m pytest"


def test_every_tool_command_is_run_by_name_from_the_venv() -> None:
    for block in bash_blocks():
        for line in block.splitlines():
            assert ".venv/bin/agentflow" not in line, line  # one spelling: the activated one


def test_the_hello_world_command_runs_as_written(tmp_path: Path) -> None:
    cwd, env = activated(tmp_path)
    command = [step.strip() for step in bash_blocks()[0].split("&&")][3]
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command} --port 0"],  # port 4000 may be taken on a CI machine
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,  # a background CI job ignores SIGINT
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "ctrl+c to exit" in line:
                proc.send_signal(signal.SIGINT)
                break
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (lines, err)
    out = "".join(lines)
    assert "OFFLINE REPLAY of pipelines/hello_world.cassette.jsonl" in out
    assert "SUCCEEDED in state 'complete'" in out


def test_the_compile_tour_runs_as_written(tmp_path: Path) -> None:
    cwd, env = activated(tmp_path)
    compile_block = next(b for b in bash_blocks() if "agentflowc pipelines/*.yaml" in b)
    commands = [line.split("  #")[0].strip() for line in compile_block.splitlines()]
    assert len(commands) == 5
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    assert (cwd / "pipeline.schema.json").stat().st_size > 0
