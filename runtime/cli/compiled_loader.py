"""Compile a pipeline YAML in memory: import the generated module, or only inspect it.

`agentflow run` executes exactly the code `agentflowc` would write to
`generated/`, so what runs is what CI type-checks. `agentflow verify` and
`serve` only read a finished run: `load_for_inspection` builds the same
`CompiledPipeline` (spec, states, triggers, transitions) without executing the
generated module, so nothing a pipeline names (its plugin modules) is imported.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CannotStartError, PipelineDefinitionError
from ..pipeline import CompiledPipeline, compile_spec

if TYPE_CHECKING:  # the compiler is imported lazily: `agentflow run` pays for it only here
    from agentflow.compiler.load import LoadedPipeline

__all__ = ["CompiledModule", "PipelineInvalidError", "compile_and_import", "load_for_inspection"]


class PipelineInvalidError(CannotStartError):
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

    A sub-pipeline's module is executed first, under its own private name, and the
    parent's module imports it from there (`agentflow_generated_<child>`), so the
    run uses exactly the code compiled now, whatever else is on the path.

    Raises:
        PipelineInvalidError: the pipeline has errors (the message lists them all).
    """
    loaded = _load_checked(path)
    module, source = _exec_module(loaded, {})
    return CompiledModule(module, source, tuple(str(w) for w in loaded.warnings))


def _exec_module(
    loaded: LoadedPipeline, done: dict[str, types.ModuleType]
) -> tuple[types.ModuleType, str]:
    """Exec `loaded`'s module (its children's first; `done`: module name -> executed)."""
    from agentflow.compiler.emit import emit_module, module_name

    child_modules: dict[str, str] = {}
    for agent, child in loaded.children.items():
        child_name = module_name(child.spec)
        if child_name not in done:
            done[child_name] = _exec_module(child, done)[0]
        child_modules[agent] = done[child_name].__name__
    source = emit_module(loaded, child_modules=child_modules)
    name = f"agentflow_generated_{module_name(loaded.spec)}"
    module = types.ModuleType(name)
    module.__file__ = f"<agentflow generated from {loaded.source_path}>"
    sys.modules[name] = module  # dataclasses and pydantic resolve annotations through it
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    except ImportError as exc:  # a plugin tool's or handler's module (the imports YAML adds)
        del sys.modules[name]
        named = [
            f"plugin tool '{tool.id}' ({tool.plugin})" for tool in loaded.spec.tools if tool.plugin
        ]
        named += [f"handler of '{a.id}' ({a.handler})" for a in loaded.spec.agents if a.handler]
        raise PipelineInvalidError(
            f"{loaded.source_path}: cannot import a module the pipeline names: {exc}. It "
            f"names: {', '.join(named)}. Install the package that provides it, or add its "
            "directory to PYTHONPATH."
        ) from None
    except PipelineDefinitionError as exc:  # a plugin that is not a Tool class
        del sys.modules[name]
        raise PipelineInvalidError(str(exc)) from None
    _also_as_natural_name(module, module_name(loaded.spec))
    return module, source


def _also_as_natural_name(module: types.ModuleType, natural: str) -> None:
    """Make `import <natural>` find this module, when nothing else has that name.

    A `handler:` function imports the generated module's classes by its natural
    name (`from support_triage import RouterOutput`). Registering the in-memory
    module there spares users `PYTHONPATH=generated` and gives the handler the
    very classes the run uses; a real module of that name (imported already, or
    importable, e.g. `generated/` on the path) is never shadowed.
    """
    if natural in sys.modules:
        return
    try:
        found = importlib.util.find_spec(natural)
    except (ImportError, ValueError):
        found = None
    if found is None:
        sys.modules[natural] = module


def load_for_inspection(path: str | Path) -> CompiledPipeline:
    """Load and check `path` into a `CompiledPipeline` without executing any generated code.

    Plugin tools are not imported (the result has no plugin factories), so
    inspecting a run (`agentflow verify --pipeline`, `agentflow serve`) runs no
    code a pipeline names. States, triggers and the transition table come from
    the same derivation the generated module uses (`derive_transitions`).

    Raises:
        PipelineInvalidError: the pipeline has errors (the message lists them all).
    """
    return _inspected(_load_checked(path))


def _inspected(
    loaded: LoadedPipeline, memo: dict[int, CompiledPipeline] | None = None
) -> CompiledPipeline:
    """`loaded` as a `CompiledPipeline` without executing its module; a child that
    several agents include is built once (`memo`, by identity)."""
    memo = {} if memo is None else memo
    known = memo.get(id(loaded))
    if known is not None:
        return known
    # `Any`: mypy checks this package as `runtime.*` from the repo but the
    # compiler imports it as `agentflow.runtime.*`; at run time they are one module.
    spec: Any = loaded.spec
    built = memo[id(loaded)] = compile_spec(
        spec,
        loaded.prompts,
        source_path=loaded.source_path.replace("\\", "/"),
        source_sha256=loaded.source_sha256,
        children={agent: _inspected(child, memo) for agent, child in loaded.children.items()},
    )
    return built


def _load_checked(path: str | Path) -> LoadedPipeline:
    """The compiler's load and checks; every diagnostic becomes a `PipelineInvalidError`."""
    from agentflow.compiler.diagnostics import CompileError
    from agentflow.compiler.load import load_pipeline

    try:
        return load_pipeline(path)
    except CompileError as exc:
        raise PipelineInvalidError(str(exc)) from None
