"""mypy --strict on the typed surfaces of routes, joins and reduces (DSL-V2.md sections 4-5).

tests/compiler/mypy_route/pipeline.yaml is compiled into a temporary directory and
type-checked with `app.py` (the project's settings, with pydantic's mypy plugin set to
`init_typed`): every line marked `# error: <code>` must be reported with that code (a
handler returning an unknown route among them), nothing else may be, and the
generated module itself must be clean.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .emit_helpers import ROOT

CASE = ROOT / "tests" / "compiler" / "mypy_route"
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")
_MARK = re.compile(r"#\s*error:\s*(?P<code>[a-z-]+)")


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[tuple[str, int, str]]]:
    work = tmp_path_factory.mktemp("mypy-route")
    shutil.copy(CASE / "app.py", work / "app.py")
    compiled = subprocess.run(
        [sys.executable, "-m", "agentflow.compiler", str(CASE / "pipeline.yaml"), "-o", str(work)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert compiled.returncode == 0, compiled.stderr
    # The project's mypy settings, with pydantic's plugin typing model constructors
    # (`init_typed`): then `RouterOutput(route="wrte")` is an error too (docs/dsl.md).
    config = work / "mypy.toml"
    config.write_text(
        (ROOT / "pyproject.toml").read_text() + "\n[tool.pydantic-mypy]\ninit_typed = true\n"
    )
    run = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--config-file", str(config),
            "--cache-dir", str(work / ".mypy_cache"), "--no-error-summary",
            "--hide-error-context", "--no-pretty", "route_app.py", "app.py",
        ],
        capture_output=True, text=True, cwd=work, env={**os.environ, "MYPYPATH": str(work)},
        timeout=600,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stdout + run.stderr
    errors: set[tuple[str, int, str]] = set()
    for line in run.stdout.splitlines():
        match = _ERROR.match(line)
        if match:
            errors.add((Path(match["file"]).name, int(match["line"]), match["code"]))
        else:
            assert ": note: " in line, f"unexpected mypy output: {line}"
    return work, errors


def test_an_unknown_route_and_every_other_marked_misuse_fail_mypy(
    checked: tuple[Path, set[tuple[str, int, str]]],
) -> None:
    work, errors = checked
    expected = {
        ("app.py", number, match["code"])
        for number, line in enumerate((work / "app.py").read_text().splitlines(), 1)
        if (match := _MARK.search(line))
    }
    assert len(expected) == 6
    assert {e for e in errors if e[0] == "app.py"} == expected


def test_the_generated_module_type_checks(checked: tuple[Path, set[tuple[str, int, str]]]) -> None:
    work, errors = checked
    assert {e for e in errors if e[0] == "route_app.py"} == set()
    source = (work / "route_app.py").read_text()
    assert 'RouterCase = Literal["write", "split", "stop"]' in source
    assert "    route: RouterCase\n" in source
