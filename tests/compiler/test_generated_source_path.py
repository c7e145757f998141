"""A committed generated module finds its pipeline's files from any working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_default_cassette_of_a_generated_module_does_not_depend_on_the_cwd(
    tmp_path: Path,
) -> None:
    # SOURCE_PATH is written relative to generated/ (so --check is spelling-free);
    # COMPILED.source_path must still point at the real YAML wherever the app runs.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import hello_world\n"
        "from agentflow.runtime.models.factory import default_cassette\n"
        "print(default_cassette(hello_world.COMPILED))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "generated")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cassette = Path(out)
    assert cassette.is_file(), out
    assert cassette.resolve() == (ROOT / "pipelines" / "hello_world.cassette.jsonl").resolve()
