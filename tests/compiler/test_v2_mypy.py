"""mypy --strict on the typed surfaces of a DSL v2 module (DSL-V2.md section 1, issue 9).

tests/compiler/mypy_v2/pipeline.yaml is compiled into a temporary directory and
type-checked with `bad_app.py` and the handler modules it names. Every line of
`bad_app.py` marked `# error: <code>` must be reported with that code; in the
generated module, exactly the call of the handler function whose return type is
wrong (`wrong` -> typed_app_bad_handlers.archive_text) must be; nothing else.
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

CASE = ROOT / "tests" / "compiler" / "mypy_v2"
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")
_MARK = re.compile(r"#\s*error:\s*(?P<code>[a-z-]+)")


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[tuple[str, int, str]]]:
    work = tmp_path_factory.mktemp("mypy-v2")
    for name in ("bad_app.py", "typed_app_handlers.py", "typed_app_bad_handlers.py"):
        shutil.copy(CASE / name, work / name)
    compiled = subprocess.run(
        [sys.executable, "-m", "agentflow.compiler", str(CASE / "pipeline.yaml"), "-o", str(work)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert compiled.returncode == 0, compiled.stderr
    run = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(work / ".mypy_cache"), "--no-error-summary",
            "--hide-error-context", "--no-pretty",
            "typed_app.py", "bad_app.py", "typed_app_handlers.py", "typed_app_bad_handlers.py",
        ],
        capture_output=True, text=True, cwd=work, env={**os.environ, "MYPYPATH": str(work)},
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


def _marked(path: Path) -> set[tuple[str, int, str]]:
    found = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = _MARK.search(line)
        if match:
            found.add((path.name, number, match["code"]))
    return found


def test_every_marked_misuse_is_a_mypy_error(
    checked: tuple[Path, set[tuple[str, int, str]]],
) -> None:
    work, errors = checked
    expected = _marked(work / "bad_app.py")
    assert len(expected) >= 9
    assert {e for e in errors if e[0] == "bad_app.py"} == expected


def test_a_handler_function_with_the_wrong_return_type_fails_mypy(
    checked: tuple[Path, set[tuple[str, int, str]]],
) -> None:
    work, errors = checked
    source = (work / "typed_app.py").read_text().splitlines()
    call = next(n for n, line in enumerate(source, 1) if "return await _handler_wrong(ctx)" in line)
    assert {e for e in errors if e[0] == "typed_app.py"} == {("typed_app.py", call, "return-value")}


def test_well_typed_handler_modules_pass(checked: tuple[Path, set[tuple[str, int, str]]]) -> None:
    _, errors = checked
    assert {e for e in errors if e[0].startswith("typed_app_")} == set()
