"""`agentflow run --executor / --ray-address / --ray-model-calls` refusals (exit 2, no
traceback), none of which needs Ray: a pipeline that asks for Ray where it cannot be
imported, and Ray options where no agent runs on Ray."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "pipelines" / "hello_world.yaml"

# `agentflow` with `import ray` failing as it does where the extra is not installed
NO_RAY = (
    "import sys; sys.modules['ray'] = None; "
    "from agentflow.runtime.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def _agentflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_RAY, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_executor_ray_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    done = _agentflow(
        "run", str(HELLO), "x", "--executor", "ray", "--model", "dry-run", "--no-ui",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "agentflow: error: agents writer_agent, reviewer_agent run on Ray (executor: ray), "
        "but Ray cannot be imported (import of ray halted; None in sys.modules); install it "
        "with pip install 'agentflow[ray]', or run them here with --executor local"
    )
    assert not (tmp_path / ".agentflow").exists()  # refused before any file


def test_a_pipeline_that_says_executor_ray_needs_ray_too(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        textwrap.dedent(
            """\
            name: p
            defaults:
              executor: ray
            agents:
              - id: a
                instructions: Answer.
            """
        )
    )
    done = _agentflow("run", str(pipeline), "x", "--model", "dry-run", "--no-ui", cwd=tmp_path)
    assert done.returncode == 2
    assert "agents a run on Ray (executor: ray), but Ray cannot be imported" in done.stderr
    local = _agentflow(
        "run", str(pipeline), "x", "--model", "dry-run", "--no-ui", "--no-store",
        "--executor", "local", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr


def test_ray_options_without_ray_agents_are_refused(tmp_path: Path) -> None:
    done = _agentflow(
        "run", str(HELLO), "x", "--ray-address", "127.0.0.1:6379", "--model", "dry-run",
        "--no-ui", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "agentflow: error: --ray-address / --ray-model-calls: no agent of this pipeline runs "
        "on Ray; add --executor ray (or executor: ray in its YAML)"
    )
    done = _agentflow(
        "run", str(HELLO), "x", "--executor", "local", "--ray-model-calls", "4",
        "--model", "dry-run", "--no-ui", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--ray-address / --ray-model-calls need --executor ray" in done.stderr
