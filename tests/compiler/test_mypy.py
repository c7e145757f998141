"""mypy --strict on the generated modules and on apps that use them (one mypy run).

`mypy_app/good_app.py` overrides one agent and must type-check; every line of
`mypy_app/bad_app.py` marked `# error: <code>` must be reported with that code,
and nothing else may be.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .emit_helpers import ROOT

APP = ROOT / "tests" / "compiler" / "mypy_app"
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, int, str]]:
    cache = tmp_path_factory.mktemp("mypy-cache")
    run = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache),
            "--no-error-summary", "--hide-error-context", "--no-pretty",
            "generated/", str((APP / "good_app.py").relative_to(ROOT)),
            str((APP / "bad_app.py").relative_to(ROOT)), "examples/",
        ],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT / "generated")},
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 2 would be a crash or usage error
    errors = set()
    for line in run.stdout.splitlines():
        match = _ERROR.match(line)
        if match:
            errors.add((Path(match["file"]).as_posix(), int(match["line"]), match["code"]))
        else:
            assert ": note: " in line, f"unexpected mypy output: {line}"
    return errors


def test_generated_modules_pass_mypy_strict(mypy_errors: set[tuple[str, int, str]]) -> None:
    assert {e for e in mypy_errors if e[0].startswith("generated/")} == set()


def test_an_app_overriding_one_agent_passes(mypy_errors: set[tuple[str, int, str]]) -> None:
    assert {e for e in mypy_errors if e[0].endswith("good_app.py")} == set()


def test_the_examples_pass(mypy_errors: set[tuple[str, int, str]]) -> None:
    assert {e for e in mypy_errors if e[0].startswith("examples/")} == set()


def test_wrong_handler_signatures_and_writes_are_rejected(
    mypy_errors: set[tuple[str, int, str]],
) -> None:
    source = (APP / "bad_app.py").read_text(encoding="utf-8").splitlines()
    expected = {
        ("tests/compiler/mypy_app/bad_app.py", number, m.group(1))
        for number, text in enumerate(source, start=1)
        if (m := re.search(r"# error: ([a-z-]+)$", text))
    }
    assert len(expected) == 4
    assert {e for e in mypy_errors if e[0].endswith("bad_app.py")} == expected
