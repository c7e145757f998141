"""`agentflowc` imports only what compiling needs: never the trio runtime or the HTTP stack.

Each case runs `agentflow.compiler.cli.main` in a fresh interpreter and then looks at
`sys.modules` (what was imported, not how long it took: timings live in
bench/bench_compile.py and bench/RESULTS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIPELINES = sorted(str(path) for path in (REPO / "pipelines").glob("*.yaml"))

# Packages only running a pipeline needs (trio and the model / UI stack).
RUNTIME_ONLY = ("trio", "anthropic", "httpx", "quart", "hypercorn")

PROBE = """\
import json, sys
from agentflow.compiler.cli import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def _compile_in_fresh_interpreter(*argv: str) -> tuple[int, set[str]]:
    """Run agentflowc's `main(argv)` in a new Python; return its exit status and sys.modules."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["status"], set(report["modules"])


def _runtime_only_modules(modules: set[str]) -> list[str]:
    return sorted(
        name for name in modules if any(name == p or name.startswith(p + ".") for p in RUNTIME_ONLY)
    )


@pytest.mark.parametrize(
    "mode", [[], ["--explain"], ["--graph", "mermaid"], ["--graph", "dot"]], ids=str
)
def test_compiling_does_not_import_the_runtime_stack(tmp_path: Path, mode: list[str]) -> None:
    status, modules = _compile_in_fresh_interpreter(*PIPELINES, "-o", str(tmp_path), *mode)
    assert status == 0
    if not mode:
        written = list(tmp_path.glob("*.py"))
        assert len(written) == len(PIPELINES) > 0
    assert _runtime_only_modules(modules) == []
    # The compiler does use the runtime's IR (spec) and errors, so the check above
    # is not vacuous: agentflow.runtime is imported, just not its engine's trio side.
    assert "agentflow.runtime.spec" in modules
    assert "agentflow.runtime.engine.runner" not in modules


def test_check_mode_does_not_import_the_runtime_stack(tmp_path: Path) -> None:
    first, _ = _compile_in_fresh_interpreter(*PIPELINES, "-o", str(tmp_path))
    assert first == 0
    status, modules = _compile_in_fresh_interpreter(*PIPELINES, "-o", str(tmp_path), "--check")
    assert status == 0
    assert _runtime_only_modules(modules) == []


def test_an_invalid_pipeline_does_not_import_the_runtime_stack(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nagents: []\nnot_a_key: 1\n")
    status, modules = _compile_in_fresh_interpreter(str(bad), "-o", str(tmp_path / "out"))
    assert status == 1
    assert _runtime_only_modules(modules) == []
