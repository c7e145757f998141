"""The import graph of `agentflow.runtime` and `agentflow.compiler` (docs/architecture.md).

Read from the source with `ast`, nothing imported. Every import statement counts:
module-level ones, those under `if TYPE_CHECKING:` and those inside functions
(the lazy imports that keep `anthropic` or the compiler off the start-up path).
A cycle through a type-only or a lazy import is still a cycle in the design, so
none of them is excluded.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import agentflow.compiler
import agentflow.runtime

RUNTIME = "agentflow.runtime"
COMPILER = "agentflow.compiler"

# The runtime's layers, lowest first: a module may import its own layer and the ones
# below it, never one above. Each entry is a module (`errors`) or a wing (`engine`,
# meaning the package and everything in it), relative to agentflow.runtime.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "spec", "usage"),  # the IR, the error tree, token counts: no runtime imports
    ("tools",),  # the Tool protocol, the builtin and example tools
    ("agents", "pipeline"),  # what agents return; CompiledPipeline and its transitions
    ("models",),  # the Model protocol and the models
    ("events",),  # the event model, the hub, the LogSink protocol, verify, replay diff
    ("sinks",),  # console, file, webhook, memory sinks
    ("store",),  # the run store: SQLite/PostgreSQL, the writer thread, run history
    ("engine",),  # running a pipeline
    ("executors",),  # where invocations run: in the process, or in Ray actors
    ("ui",),  # the run UI
    ("cli",),  # the `agentflow` command
    ("",),  # agentflow.runtime itself: the public API re-exports
)

# The runtime modules the compiler may import: the IR it builds and checks against,
# and what it shares with the runtime so that what compiles is what runs.
COMPILER_MAY_IMPORT = frozenset(
    {
        "agentflow.runtime.spec",  # the IR
        "agentflow.runtime.errors",  # PipelineDefinitionError
        "agentflow.runtime.agents",  # AgentOutput's fields, PROMPT_VARIABLES
        "agentflow.runtime.pipeline",  # derive_transitions, declared_triggers, compile_spec
        "agentflow.runtime.engine.jsonpath",  # feedback_path's parser
        "agentflow.runtime.engine.prompting",  # the prompt sandbox
    }
)


def _modules(package: object) -> dict[str, tuple[Path, bool]]:
    """Module name -> (source file, is a package) for every module of `package`."""
    name = package.__name__  # type: ignore[attr-defined]
    (root,) = (Path(p) for p in package.__path__)  # type: ignore[attr-defined]
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join([name, *parts])] = (path, is_package)
    return found


MODULES = {**_modules(agentflow.runtime), **_modules(agentflow.compiler)}


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The modules of ours that one import statement loads (named ones, not their parents)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        # `from pkg import mod` loads pkg.mod; `from mod import name` loads mod.
        targets = [
            f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
            for alias in node.names
        ]
    for target in targets:
        while target and target not in MODULES:  # `import a.b.c` where c is no module
            target = target.rpartition(".")[0]
        if target and target != module:
            yield target


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (any import statement, anywhere in it)."""
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = {
            target
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for target in _imported(module, is_package, node)
        }
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(target) == 1:
                return [*path[path.index(target) :], target]
            elif target not in state:
                state[target] = 1
                path.append(target)
                stack.append(iter(sorted(graph[target])))
    return None


def layer_of(module: str) -> int:
    """The index in LAYERS of a runtime module."""
    relative = module.removeprefix(RUNTIME).removeprefix(".")
    for index, layer in enumerate(LAYERS):
        for entry in layer:
            if relative == entry or (entry and relative.startswith(entry + ".")):
                return index
    raise AssertionError(f"{module} is in no layer of LAYERS: place it there")


def test_find_cycle_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_graph_sees_type_checking_and_function_level_imports() -> None:
    graph = import_graph()
    # `if TYPE_CHECKING: from agentflow.compiler.load import LoadedPipeline` and the
    # function-level `from agentflow.compiler.emit import ...` in the CLI's loader.
    assert {"agentflow.compiler.load", "agentflow.compiler.emit"} <= graph[
        "agentflow.runtime.cli.compiled_loader"
    ]
    # `from ..models.factory import model_for_run`, inside run_pipeline.
    assert "agentflow.runtime.models.factory" in graph["agentflow.runtime.engine.runner"]
    # `from . import aggregator` names a module, not the package.
    assert "agentflow.runtime.engine.aggregator" in graph["agentflow.runtime.engine.qa_loop"]
    assert "agentflow.runtime.engine" not in graph["agentflow.runtime.engine.qa_loop"]


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_runtime_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in sorted(import_graph().items())
        if module.startswith(RUNTIME)
        for target in sorted(targets)
        if target.startswith(RUNTIME) and layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_every_runtime_module_has_a_layer() -> None:
    for module in MODULES:
        if module.startswith(RUNTIME):
            layer_of(module)


def test_compiler_imports_only_the_ir_and_what_it_shares_with_the_runtime() -> None:
    used = {
        target
        for module, targets in import_graph().items()
        if module.startswith(COMPILER)
        for target in targets
        if target.startswith(RUNTIME)
    }
    assert used <= COMPILER_MAY_IMPORT, sorted(used - COMPILER_MAY_IMPORT)
