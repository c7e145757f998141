"""Compile a pipeline YAML in memory and import the generated module.

`agentflow run` executes exactly the code `agentflowc` would write to
`generated/`, so what runs is what CI type-checks.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AgentflowError
from .pipeline import CompiledPipeline

__all__ = ["CompiledModule", "PipelineInvalidError", "compile_and_import"]


class PipelineInvalidError(AgentflowError):
    """Raised when the pipeline YAML does not compile; the message lists every diagnostic."""


@dataclass(frozen=True)
class CompiledModule:
    """The imported generated module of a pipeline, with its source text."""

    module: types.ModuleType
    source: str
    warnings: tuple[str, ...]

    @property
    def compiled(self) -> CompiledPipeline:
        pipeline = self.module.COMPILED
        assert isinstance(pipeline, CompiledPipeline)
        return pipeline

    def default_handlers(self) -> Any:
        return self.module.DefaultHandlers()


def compile_and_import(path: str | Path) -> CompiledModule:
    """Load, check and emit `path`, then exec the module under a private name.

    Raises:
        PipelineInvalidError: the pipeline has errors (the message lists them all).
    """
    from agentflow.compiler.diagnostics import CompileError
    from agentflow.compiler.emit import emit_module, module_name
    from agentflow.compiler.load import load_pipeline

    try:
        loaded = load_pipeline(path)
    except CompileError as exc:
        raise PipelineInvalidError(str(exc)) from None
    source = emit_module(loaded)
    name = f"agentflow_generated_{module_name(loaded.spec)}"
    module = types.ModuleType(name)
    module.__file__ = f"<agentflow generated from {loaded.source_path}>"
    sys.modules[name] = module  # dataclasses and pydantic resolve annotations through it
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    except ImportError as exc:  # a plugin tool's module (the only imports YAML adds)
        del sys.modules[name]
        plugins = ", ".join(
            f"'{tool.id}' ({tool.plugin})" for tool in loaded.spec.tools if tool.plugin
        )
        raise PipelineInvalidError(
            f"{loaded.source_path}: cannot import a plugin tool: {exc}. Plugin tools: "
            f"{plugins}. Install the package that provides it, or add its directory to "
            "PYTHONPATH."
        ) from None
    return CompiledModule(module, source, tuple(str(w) for w in loaded.warnings))
