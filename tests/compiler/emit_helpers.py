"""Shared helpers of the emitter tests: hand-built loaded pipelines and importing emitted code."""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentflow.runtime.spec import PipelineSpec

__all__ = ["ROOT", "HandLoaded", "import_source", "import_with_children", "pipeline_files"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class HandLoaded:
    """A `LoadedPipeline` built by hand (no loader, no checks): feeds the emitter directly."""

    spec: PipelineSpec
    prompts: dict[str, str]
    source_path: str = "pipelines/hand.yaml"
    source_sha256: str = "0" * 64
    warnings: list[str] = field(default_factory=list)


def import_source(source: str, name: str, directory: Path) -> types.ModuleType:
    """Write `source` to `directory/name.py` and import it as a real module."""
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def import_with_children(loaded: Any, name: str, directory: Path) -> types.ModuleType:
    """`import_source` of `loaded`'s module, its sub-pipelines' modules written next to it
    and importable by their natural names while it is imported."""
    from agentflow.compiler.emit import emit_module, module_name

    pending, natural = list(loaded.children.values()), []
    while pending:
        child = pending.pop()
        pending.extend(child.children.values())
        natural.append(module_name(child.spec))
        (directory / f"{natural[-1]}.py").write_text(emit_module(child), encoding="utf-8")
    sys.path.insert(0, str(directory))
    try:
        return import_source(emit_module(loaded), name, directory)
    finally:
        sys.path.remove(str(directory))
        for child_name in natural:
            sys.modules.pop(child_name, None)


def pipeline_files() -> list[str]:
    """The example pipelines, as paths relative to the repository root."""
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pipelines").glob("*.yaml"))
