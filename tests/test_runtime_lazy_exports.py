"""`agentflow.runtime` loads its re-exports on first use (PEP 562) without losing anything.

Each public name is the very object its defining module holds; importing a light
module does not import the engine; and type checkers still see the real names
(a misspelt import is an error, not an `object`).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import agentflow.runtime as runtime

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def test_each_public_name_is_the_object_of_its_defining_module() -> None:
    assert set(runtime._EXPORTS) == set(runtime.__all__)
    for name, module in runtime._EXPORTS.items():
        home = importlib.import_module(module, "agentflow.runtime")
        assert getattr(runtime, name) is getattr(home, name), name


def test_star_import_and_dir_list_every_public_name() -> None:
    names = _fresh(
        "import json\n"
        "namespace = {}\n"
        "exec('from agentflow.runtime import *', namespace)\n"
        "import agentflow.runtime as rt\n"
        "print(json.dumps([sorted(set(namespace) - {'__builtins__'}), dir(rt)]))"
    )
    starred, listed = json.loads(names)
    assert starred == sorted(runtime.__all__)
    assert set(runtime.__all__) <= set(listed)


def test_an_unknown_name_is_an_attribute_error() -> None:
    out = _fresh(
        "import agentflow.runtime as rt\n"
        "try:\n    rt.RunOptionz\nexcept AttributeError as exc:\n    print(exc)\n"
        "try:\n    from agentflow.runtime import Pipelin\nexcept ImportError as exc:\n"
        "    print(type(exc).__name__)"
    )
    assert out.splitlines() == [
        "module 'agentflow.runtime' has no attribute 'RunOptionz'",
        "ImportError",
    ]


def test_importing_errors_or_spec_does_not_import_the_engine() -> None:
    code = (
        "import sys, json, agentflow.runtime.errors, agentflow.runtime.spec\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'trio'"
        " or m.startswith('agentflow.runtime.engine'))))"
    )
    assert json.loads(_fresh(code)) == []


def test_mypy_sees_the_real_names(tmp_path: Path) -> None:
    app = tmp_path / "uses_runtime.py"
    app.write_text(
        "import agentflow.runtime as rt\n"
        "from agentflow.runtime import RunOptions, RunOptionz\n"  # line 2: attr-defined
        "options: int = RunOptions()\n"  # line 3: assignment (real type, not Any/object)
        "rt.Pipelin\n"  # line 4: attr-defined
        "count: int = rt.Usage().input_tokens\n"  # fine
    )
    run = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
            "--no-error-summary", "--hide-error-context", "--no-pretty", str(app),
        ],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=300,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stdout + run.stderr
    found = sorted(
        (int(line.split(":")[1]), line.rsplit("[", 1)[1].rstrip("]"))
        for line in run.stdout.splitlines()
        if ": error: " in line
    )
    assert found == [(2, "attr-defined"), (3, "assignment"), (4, "attr-defined")], run.stdout
