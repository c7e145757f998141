"""The public API: what `agentflow.runtime` exports, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import agentflow.runtime as runtime


def test_all_names_exist_and_are_sorted() -> None:
    assert runtime.__all__ == sorted(runtime.__all__)
    for name in runtime.__all__:
        assert getattr(runtime, name) is not None, name


def test_every_public_class_and_function_is_exported() -> None:
    public = {
        name
        for name, value in vars(runtime).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("agentflow.")
    }
    assert public <= set(runtime.__all__), public - set(runtime.__all__)


def test_importing_the_runtime_does_not_import_anthropic() -> None:
    # `import anthropic` costs over a second; only live runs should pay it.
    code = "import sys, agentflow.runtime; print('anthropic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
