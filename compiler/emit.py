"""Emit stage: a checked pipeline -> the source of its typed Python module.

All names and literals are computed here into a view-model of plain strings;
`templates/module.py.j2` only lays them out. Strings from YAML reach the output
only as `py_str` literals, escaped comments/docstrings, or validated ids. The
result is deterministic (no timestamps, no set or hash ordering) and is
`compile()`d before it is returned.
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from typing import Any, Protocol

import jinja2
from pydantic import BaseModel

from agentflow.runtime import spec as spec_module
from agentflow.runtime.pipeline import declared_triggers, derive_transitions
from agentflow.runtime.spec import AgentSpec, PipelineSpec, ToolSpec

from . import naming
from .bounds import agent_summary, pipeline_summary
from .emit_models import V2Parts, has_v2_parts, v2_parts
from .pysource import (
    Atom,
    Call,
    Concat,
    Dict,
    EmitError,
    Expr,
    Tuple,
    assign,
    check_identifier,
    docstring_text,
    fmt,
    one_line,
    py_str,
    signature,
)

__all__ = [
    "EmitError",
    "LoadedLike",
    "compiler_version",
    "emit_module",
    "module_name",
    "source_reference",
]

NO_TRIGGER = ("_NONE", "_none")
"""The Trigger member of a pipeline that declares no triggers (an Enum needs one member);
the same placeholder `agentflow.runtime.pipeline.compile_spec` uses."""

_RESERVED = frozenset(
    {
        "AgentContext", "AgentId", "AgentOutput", "COMPILED", "Callable", "CompiledPipeline",
        "DefaultHandlers", "ENTRY", "Final", "Handlers", "INITIAL", "LogSink", "Mapping",
        "MappingProxyType", "Model", "PIPELINE", "PLUGIN_TOOLS", "PROMPTS", "Protocol",
        "RunOptions", "RunResult", "SOURCE_PATH", "SOURCE_SHA256", "Sequence", "State",
        "TERMINAL", "TRANSITIONS", "Tool", "Trigger", "annotations", "enum", "plugin_tools",
        "run", "run_default_agent", "run_pipeline", "Pipeline", "pipeline",
        "check_plugin_classes",
    }
    | set(spec_module.__all__)  # the spec classes PIPELINE is built from
)  # fmt: skip


class LoadedLike(Protocol):
    """What the emitter needs of `agentflow.compiler.load.LoadedPipeline`."""

    @property
    def spec(self) -> PipelineSpec: ...
    @property
    def prompts(self) -> Mapping[str, str]: ...
    @property
    def source_path(self) -> str: ...
    @property
    def source_sha256(self) -> str: ...
    @property
    def children(self) -> Mapping[str, LoadedLike]: ...


def module_name(spec: PipelineSpec) -> str:
    """The generated module's name for `spec` (snake_case of its `name`).

    Raises:
        EmitError: the name gives no valid Python module name.
    """
    name = naming.module_name(spec.name)
    if not naming.is_python_identifier(name):
        raise EmitError(
            f"pipeline name {spec.name!r} gives no valid Python module name ({name!r}); "
            "start the name with a letter and use letters, digits, '-' or '_'."
        )
    return name


def compiler_version() -> str:
    """The installed agentflow version, written into every generated header."""
    try:
        return metadata.version("agentflow")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


@cache
def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: resources.files("agentflow.templates").joinpath(name).read_text("utf-8")
    )
    return jinja2.Environment(
        loader=loader,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def emit_module(
    loaded: LoadedLike,
    module_dir: str | os.PathLike[str] | None = None,
    *,
    child_modules: Mapping[str, str] | None = None,
) -> str:
    """The generated module's source for a loaded, checked pipeline.

    Args:
        loaded: the pipeline.
        module_dir: the directory the module is written to. The module names its
            pipeline file relative to it (`../pipelines/x.yaml`), so the output does
            not depend on how the path was spelled or where agentflowc ran. None
            (a module compiled in memory): the path as given.
        child_modules: sub-pipeline agent id -> the module its child is imported
            from; by default each child's own module name (its file next to this one).

    Raises:
        EmitError: an id is not a usable Python name, a plugin path is malformed,
            or the rendered source does not compile (a bug in the emitter).
    """
    module_name(loaded.spec)
    source = source_reference(loaded.source_path, module_dir)
    if child_modules is None:
        children: Mapping[str, LoadedLike] = getattr(loaded, "children", {})
        child_modules = {agent: module_name(child.spec) for agent, child in children.items()}
    view = _view_model(loaded, source, relative=module_dir is not None, children=child_modules)
    code = _environment().get_template("module.py.j2").render(**view)
    try:
        compile(code, f"<generated from {one_line(loaded.source_path)}>", "exec")
    except SyntaxError as exc:  # pragma: no cover - an emitter bug, never the user's
        raise EmitError(
            f"internal error: the generated module does not compile ({exc}); "
            "please report this with the pipeline file."
        ) from exc
    return code


@dataclass(frozen=True, slots=True)
class _Plugin:
    factory: str
    tool_id: str
    name: str
    path: str
    call: str


def source_reference(source_path: str, module_dir: str | os.PathLike[str] | None) -> str:
    """How a generated module names its pipeline file: POSIX, relative to `module_dir`."""
    if module_dir is None:
        return source_path.replace("\\", "/")
    try:
        relative = os.path.relpath(os.path.abspath(source_path), os.path.abspath(module_dir))
    except ValueError:  # pragma: no cover - another drive (Windows): no relative path
        relative = os.path.abspath(source_path)
    return posixpath.normpath(relative.replace(os.sep, "/"))


def _view_model(
    loaded: LoadedLike, source: str, *, relative: bool, children: Mapping[str, str]
) -> dict[str, Any]:
    spec = loaded.spec
    for state in spec.state_machine.states:
        check_identifier(state.id, "state id")
    for agent in spec.agents:
        check_identifier(agent.id, "agent id")
    triggers = [(value.replace(".", "_").upper(), value) for value, _ in declared_triggers(spec)]
    plugins, plugin_imports, plugin_check = _plugins(spec.tools)
    terminal = [Atom(f"State.{t.upper()}") for t in spec.state_machine.terminal]
    plugin_table = Call(
        "MappingProxyType",
        ((None, Dict(tuple((Atom(p.tool_id), Atom(p.factory), None) for p in plugins))),),
    )
    spec_names: set[str] = set()
    pipeline = fmt(_model_expr(spec, spec_names), indent=0, prefix=len("PIPELINE: Final = "))
    typed = has_v2_parts(spec)
    taken = _RESERVED | {p.factory for p in plugins} | {f"_handler_{a.id}" for a in spec.agents}
    v2 = v2_parts(spec, taken, children) if typed else V2Parts()
    return {
        "typed": typed,
        "v2": v2,
        "version": compiler_version(),
        "source_comment": one_line(source),
        "relative": relative,
        "sha256": one_line(loaded.source_sha256),
        "sha256_literal": py_str(loaded.source_sha256),
        "docstring": docstring_text(pipeline_summary(spec, source)),
        "spec_import": fmt(
            Call("", tuple((None, Atom(n)) for n in sorted(spec_names))),
            indent=0,
            prefix=len("from agentflow.runtime.spec import "),
        ),
        "plugin_imports": plugin_imports,
        "source_path": assign("SOURCE_PATH: Final", py_str(source)),
        "states": [_member(s.id.upper(), s.id) for s in spec.state_machine.states],
        "initial": assign("INITIAL: Final", f"State.{spec.state_machine.initial.upper()}"),
        "terminal": fmt(
            Call("frozenset", ((None, Tuple(tuple(terminal), braces="{}")),)),
            indent=0,
            prefix=len("TERMINAL: Final[frozenset[State]] = "),
        ),
        "agents": [_member(a.id.upper(), a.id) for a in spec.agents],
        "entry": assign("ENTRY: Final", f"AgentId.{spec.entry_agent.upper()}"),
        "triggers": [_member(n, v) for n, v in triggers or [NO_TRIGGER]],
        "no_triggers": not triggers,
        "transitions": _transitions(spec),
        "prompts": _prompts(spec, loaded.prompts),
        "pipeline": pipeline,
        "handlers": [_handler(agent, spec, v2) for agent in spec.agents],
        "plugins": plugins,
        "plugin_check": plugin_check,
        "plugin_table": fmt(
            plugin_table,
            indent=0,
            prefix=len("PLUGIN_TOOLS: Final[Mapping[str, Callable[[], Tool]]] = "),
        ),
    }


def _transitions(spec: PipelineSpec) -> str:
    entries: list[tuple[Expr, Expr, str | None]] = []
    previous = None
    for state, trigger, target in derive_transitions(spec):
        comment = f"from {state}" if state != previous else None
        previous = state
        key = Tuple(
            (Atom(f"State.{state.upper()}"), Atom(f"Trigger.{trigger.replace('.', '_').upper()}"))
        )
        entries.append((key, Atom(f"State.{target.upper()}"), comment))
    prefix = "TRANSITIONS: Final[Mapping[tuple[State, Trigger], State]] = "
    table = Call("MappingProxyType", ((None, Dict(tuple(entries))),))
    return fmt(table, indent=0, prefix=len(prefix))


def _prompts(spec: PipelineSpec, prompts: Mapping[str, str]) -> str:
    entries: list[tuple[Expr, Expr, str | None]] = []
    for agent in spec.agents:
        if agent.handler is not None or agent.pipeline is not None:
            continue  # a handler agent runs a function, a sub-pipeline agent its child
        if agent.id not in prompts:
            raise EmitError(
                f"no prompt text for agent '{agent.id}'; the loader must read every prompt file."
            )
        entries.append((Atom(py_str(agent.id)), Concat(prompts[agent.id]), None))
    prefix = "PROMPTS: Final[Mapping[str, str]] = "
    return fmt(
        Call("MappingProxyType", ((None, Dict(tuple(entries))),)), indent=0, prefix=len(prefix)
    )


def _member(name: str, value: str) -> str:
    """An enum member line (inside the class body, indented by 4)."""
    return assign(name, py_str(value), indent=4)


def _handler(agent: AgentSpec, spec: PipelineSpec, v2: V2Parts) -> dict[str, str]:
    """The Protocol stub, the default method's signature, docstring body and body."""
    first, *rest = [docstring_text(line) for line in agent_summary(agent, spec)]
    indent = "\n" + " " * 8
    head, params = f"async def {agent.id}", "self, ctx: AgentContext"
    returns = v2.return_types.get(agent.id, "AgentOutput")
    return {
        "stub": signature(head, params, f" -> {returns}: ...", indent=4),
        "signature": signature(head, params, f" -> {returns}:", indent=4),
        "doc": first + "\n" + indent + indent.join(rest) + indent,
        "body": v2.bodies.get(agent.id, "return await run_default_agent(ctx)"),
    }


def _model_expr(node: BaseModel, used: set[str]) -> Expr:
    """`node` as a constructor call with keyword arguments for its non-default fields."""
    used.add(type(node).__name__)
    args: list[tuple[str | None, Expr]] = []
    for name, field in type(node).model_fields.items():
        if name == "loc":
            continue
        value = getattr(node, name)
        if field.is_required() or value != field.get_default(call_default_factory=True):
            args.append((name, _value_expr(value, used)))
    return Call(type(node).__name__, tuple(args))


def _value_expr(value: object, used: set[str]) -> Expr:
    if isinstance(value, BaseModel):
        return _model_expr(value, used)
    if isinstance(value, tuple):
        return Tuple(tuple(_value_expr(v, used) for v in value))
    if isinstance(value, dict):
        return Dict(tuple((Atom(py_str(k)), _value_expr(v, used), None) for k, v in value.items()))
    if isinstance(value, str):
        return Atom(py_str(value))
    if isinstance(value, float) and not math.isfinite(value):
        return Atom(f"float({py_str(repr(value))})")
    if value is None or isinstance(value, bool | int | float):
        return Atom(repr(value))
    raise EmitError(f"internal error: cannot emit a {type(value).__name__} in PIPELINE")


def _plugins(tools: tuple[ToolSpec, ...]) -> tuple[list[_Plugin], list[str], str]:
    """Factories, `from module import Class` lines, and the import-time class check."""
    plugins: list[_Plugin] = []
    imports: dict[tuple[str, str], str] = {}
    checked: list[tuple[Expr, Expr, str | None]] = []
    for tool in tools:
        if tool.type != "plugin":
            continue
        check_identifier(tool.id, "tool id")
        module, cls = _split_plugin(tool)
        if (module, cls) not in imports:
            taken = set(imports.values()) | _RESERVED
            imports[(module, cls)] = cls if cls not in taken else f"_{cls}_{tool.id}"
        local = imports[(module, cls)]
        args: tuple[tuple[str | None, Expr], ...]
        if all(naming.is_python_identifier(k) for k in tool.config):
            args = tuple((k, Atom(py_str(v))) for k, v in sorted(tool.config.items()))
        else:
            items = tuple((Atom(py_str(k)), Atom(py_str(v)), None) for k, v in tool.config.items())
            args = (("**", Dict(items)),)
        call = fmt(Call(local, args), indent=4, prefix=len("    return "))
        path = docstring_text(one_line(tool.plugin or ""))
        plugins.append(_Plugin(f"_tool_{tool.id}", py_str(tool.id), tool.id, path, call))
        checked.append(
            (Atom(py_str(tool.id)), Tuple((Atom(local), Atom(py_str(tool.plugin or "")))), None)
        )
    lines = [
        f"from {m} import {c}" if c == local else f"from {m} import {c} as {local}"
        for (m, c), local in sorted(imports.items())
    ]
    if not plugins:
        return plugins, lines, ""
    lines.insert(0, "from agentflow.runtime.tools.registry import check_plugin_classes")
    check = fmt(
        Call("check_plugin_classes", ((None, Atom("SOURCE_PATH")), (None, Dict(tuple(checked))))),
        indent=0,
        prefix=0,
    )
    return plugins, lines, check


def _split_plugin(tool: ToolSpec) -> tuple[str, str]:
    module, _, cls = (tool.plugin or "").partition(":")
    parts = [*module.split("."), cls]
    if not all(naming.is_python_identifier(p) for p in parts):
        raise EmitError(
            f"plugin path {tool.plugin!r} of tool '{tool.id}' is not 'package.module:Class'; "
            "write it as an importable module path, a colon, and the class name."
        )
    return module, cls
