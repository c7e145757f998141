"""Compile every scenario pipeline once per session, with the real `agentflowc`."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from .helpers import compile_all, import_generated


class Compiled:
    """The session's compiled scenario modules, imported on demand."""

    def __init__(self, out_dir: Path, stderr: str) -> None:
        self.out_dir = out_dir
        self.stderr = stderr
        self._modules: dict[str, ModuleType] = {}

    def __getitem__(self, name: str) -> ModuleType:
        if name not in self._modules:
            self._modules[name] = import_generated(self.out_dir / f"{name}.py")
        return self._modules[name]


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    out_dir = tmp_path_factory.mktemp("scenario_generated")
    proc = compile_all(out_dir)
    assert proc.returncode == 0, proc.stderr
    return Compiled(out_dir, proc.stderr)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test runs in its own directory (tool workspaces), never against live Claude."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
