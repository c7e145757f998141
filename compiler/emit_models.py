"""Emit the DSL v2 parts of a generated module: shape models, handler imports, accessors.

One pydantic model per declared shape (`<Agent>Output`, `PipelineInput`), nested
objects and list items as their own classes, enums as `Literal` aliases; the
`OUTPUT_MODELS` / `INPUT_MODEL` tables; `handler:` functions imported under a
private name and checked to be `async def` on import; and the typed accessors
`outputs(ctx)` / `history(ctx)` (with `joined(ctx)` for a join, `children(ctx)` for
a reduce); each router's case names as a `Literal` alias (`<Router>Case`, the type of
its implicit `route` field); a sub-pipeline agent's child module imported
(`import <child> as _pipeline_<agent>`), its default body running the child, and the
`CHILDREN` table. A v1 pipeline has none of these (`has_v2_parts`), so its module is
unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

from agentflow.runtime.spec import AgentSpec, FieldSpec, NamedField, PipelineSpec, ShapeSpec

from .naming import pascal_case
from .pysource import (
    LINE_LENGTH,
    Atom,
    Call,
    Concat,
    Dict,
    EmitError,
    Expr,
    Tuple,
    fmt,
    py_str,
    signature,
    width,
)

__all__ = ["V2Parts", "has_v2_parts", "v2_parts"]

MODEL_IMPORTS = frozenset(
    {
        "BaseModel", "ConfigDict", "Field", "Literal", "TextOutput", "run_typed_agent",
        "inspect", "PipelineDefinitionError", "OUTPUT_MODELS", "INPUT_MODEL", "Outputs",
        "History", "outputs", "history", "PipelineInput", "CHILDREN", "run_subpipeline",
        "Joined", "joined", "children", "BranchFailure", "ChildResult", "HUMAN_ANSWERS",
        "run_human_step",
    }
)  # fmt: skip
"""Names the v2 parts of a module define or import (model names must avoid them)."""


def has_v2_parts(spec: PipelineSpec) -> bool:
    """True if the module gets any DSL v2 part (shapes, handler functions, sub-pipelines)."""
    return spec.input is not None or any(
        agent.output is not None or agent.handler is not None or agent.pipeline is not None
        for agent in spec.agents
    )


@dataclass
class V2Parts:
    """Source fragments for the template (each a complete block or line)."""

    model_blocks: list[str] = field(default_factory=list)
    output_models: str = ""
    input_model: str = ""
    run_input: str = 'input: object = ""'
    handler_imports: list[str] = field(default_factory=list)
    handler_check: str = ""
    return_types: dict[str, str] = field(default_factory=dict)
    bodies: dict[str, str] = field(default_factory=dict)
    accessors: str = ""
    gather_import: str = ""
    """`from agentflow.runtime.agents import ...` for `joined` / `children`, if used."""
    gather_exports: list[str] = field(default_factory=list)
    gathers: str = ""
    """The `Joined` view and the `joined(ctx)` / `children(ctx)` functions, if used."""
    subpipelines: str = ""
    """The `CHILDREN` table (sub-pipeline agent -> its child's COMPILED); "" if none."""
    human_answers: str = ""
    """The `HUMAN_ANSWERS` table (human agent -> its answer model); "" if none."""


class _Models:
    """Allocates class names and writes the model classes, children before parents."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.blocks: list[str] = []
        self.fixed: dict[int, str] = {}
        """`id()` of an enum FieldSpec -> the alias already written for it."""

    def name(self, wanted: str) -> str:
        name, number = wanted, 2
        while name in self.taken:
            name, number = f"{wanted}{number}", number + 1
        self.taken.add(name)
        return name

    def shape(self, shape: ShapeSpec, class_name: str, doc: str) -> str:
        return self.object(shape.fields, class_name, doc)

    def object(self, fields: tuple[NamedField, ...], wanted: str, doc: str) -> str:
        name = self.name(wanted)
        header = f"class {name}(BaseModel):"
        if width(header) > LINE_LENGTH:  # as ruff lays it out
            header = f"class {name}(\n    BaseModel\n):"
        lines = [header, f'    """{doc}"""', ""]
        lines.append('    model_config = ConfigDict(extra="forbid")')
        lines.append("")
        for named in fields:
            lines.append(self.field_line(named, name))
        self.blocks.append("\n".join(lines))
        return name

    def annotation(self, spec: FieldSpec, owner: str, field_name: str) -> str:
        stem = owner + pascal_case(field_name)
        text: str
        if spec.kind in ("str", "int", "float", "bool"):
            text = spec.kind
        elif spec.kind == "enum" and id(spec) in self.fixed:
            text = self.fixed[id(spec)]
        elif spec.kind == "enum":
            alias = self.name(stem)
            values = Tuple(tuple(Atom(py_str(v)) for v in spec.values), braces="[]")
            literal = fmt(values, indent=0, prefix=len(f"{alias} = Literal"))
            self.blocks.append(f"{alias} = Literal{literal}")
            text = alias
        elif spec.kind == "object":
            text = self.object(spec.fields, stem, f"Field {field_name} of {owner}.")
        elif spec.kind == "list":
            if spec.items is None:  # pragma: no cover - lowering always sets it
                raise EmitError(f"internal error: list field '{field_name}' has no item type")
            item_spec = spec.items
            if item_spec.kind == "object":
                inner = self.object(item_spec.fields, stem + "Item", f"An item of {field_name}.")
                if item_spec.optional:
                    inner += " | None"
            else:
                inner = self.annotation(item_spec, owner, field_name)
            text = f"list[{inner}]"
        else:  # pragma: no cover - FieldSpec.kind is a closed Literal
            raise EmitError(f"internal error: unknown field kind {spec.kind!r}")
        if spec.optional:
            text += " | None"
        return text

    def field_line(self, named: NamedField, owner: str) -> str:
        spec = named.type
        annotation = self.annotation(spec, owner, named.name)
        head = f"    {named.name}: {annotation}"
        args: list[tuple[str | None, Expr]] = []
        if spec.optional:
            args.append(("default", Atom("None")))
        if spec.description is not None:
            args.append(("description", Concat(spec.description)))
        if not args:
            fits_alone = width(annotation) + 8 <= LINE_LENGTH
            if width(head) > LINE_LENGTH and _is_name(annotation) and fits_alone:  # as ruff does
                return f"    {named.name}: (\n        {annotation}\n    )"
            return head
        if args == [("default", Atom("None"))]:
            return head + " = None"
        return head + " = " + fmt(Call("Field", tuple(args)), indent=4, prefix=len(head) + 3)


def v2_parts(
    spec: PipelineSpec, taken: Set[str], child_modules: Mapping[str, str] | None = None
) -> V2Parts:
    """The v2 fragments of `spec`'s module; `taken` holds the module's other names.

    `child_modules` maps each sub-pipeline agent to the module its child's code is
    imported from (by default the child's natural module name).
    """
    parts = V2Parts()
    models = _Models(set(taken) | MODEL_IMPORTS)
    output_classes: dict[str, str] = {}
    if spec.input is not None:
        models.taken.discard("PipelineInput")
        name = models.shape(spec.input, "PipelineInput", "The run's input (the `input:` shape).")
        parts.input_model = f"INPUT_MODEL: Final[type[BaseModel] | None] = {name}"
        parts.run_input = f"input: {name} | Mapping[str, object]"
    else:
        parts.input_model = "INPUT_MODEL: Final[type[BaseModel] | None] = None"
    for agent in spec.agents:
        _case_alias(agent, models)
    for agent in spec.agents:
        if agent.output is not None:
            wanted = pascal_case(agent.id) + "Output"
            doc = f"What agent {agent.id} answers (its `output:` shape)."
            output_classes[agent.id] = models.shape(agent.output, wanted, doc)
    parts.model_blocks = models.blocks
    table = Dict(tuple((Atom(py_str(a)), Atom(c), None) for a, c in output_classes.items()))
    prefix = "OUTPUT_MODELS: Final[Mapping[str, type[BaseModel]]] = "
    parts.output_models = prefix + fmt(
        Call("MappingProxyType", ((None, table),)), indent=0, prefix=len(prefix)
    )
    checked: list[tuple[Expr, Expr, str | None]] = []
    for agent in spec.agents:
        returns = output_classes.get(agent.id, "AgentOutput")
        parts.return_types[agent.id] = returns
        if agent.pipeline is not None:
            local = f"_pipeline_{agent.id}"
            call = Call(
                "run_subpipeline",
                (
                    (None, Atom("ctx")),
                    (None, Atom(f"{local}.COMPILED")),
                    (None, Atom(f"{local}.DefaultHandlers()")),
                ),
            )
            parts.bodies[agent.id] = _return_await(call)
        elif agent.human is not None and agent.id in output_classes:
            call = Call("run_human_step", ((None, Atom("ctx")), (None, Atom(returns))))
            parts.bodies[agent.id] = _return_await(call)
        elif agent.handler is not None:
            local = _import_handler(agent, parts)
            parts.bodies[agent.id] = _return_await(Call(local, ((None, Atom("ctx")),)))
            checked.append(
                (Atom(py_str(agent.id)), Tuple((Atom(local), Atom(py_str(agent.handler)))), None)
            )
        elif agent.id in output_classes:
            call = Call("run_typed_agent", ((None, Atom("ctx")), (None, Atom(returns))))
            parts.bodies[agent.id] = _return_await(call)
        else:
            parts.bodies[agent.id] = "return await run_default_agent(ctx)"
    if checked:
        call = Call("_check_handlers", ((None, Dict(tuple(checked))),))
        parts.handler_check = fmt(call, indent=0, prefix=0)
    parts.accessors = _accessors(spec, output_classes)
    _gathers(spec, output_classes, parts)
    _subpipelines(spec, child_modules or {}, parts)
    _human_answers(spec, output_classes, parts)
    return parts


def _human_answers(spec: PipelineSpec, output_classes: Mapping[str, str], parts: V2Parts) -> None:
    """The human step body's import and the `HUMAN_ANSWERS` table (docs/human.md)."""
    humans = [agent.id for agent in spec.agents if agent.human is not None]
    if not humans:
        return
    parts.handler_imports.append("from agentflow.runtime.engine.human import run_human_step")
    table = Dict(tuple((Atom(py_str(a)), Atom(output_classes[a]), None) for a in humans))
    prefix = "HUMAN_ANSWERS: Final[Mapping[str, type[BaseModel]]] = "
    parts.human_answers = prefix + fmt(
        Call("MappingProxyType", ((None, table),)), indent=0, prefix=len(prefix)
    )


def _subpipelines(spec: PipelineSpec, child_modules: Mapping[str, str], parts: V2Parts) -> None:
    """The child modules' imports and the `CHILDREN` table of the sub-pipeline agents."""
    agents = [agent for agent in spec.agents if agent.pipeline is not None]
    if not agents:
        return
    parts.handler_imports.append("from agentflow.runtime.engine.subpipeline import run_subpipeline")
    for agent in agents:
        module = child_modules.get(agent.id)
        if module is None:
            raise EmitError(
                f"internal error: no module for the sub-pipeline of agent '{agent.id}'; the "
                "loader must compile every child"
            )
        parts.handler_imports.append(f"import {module} as _pipeline_{agent.id}")
    table = Dict(
        tuple((Atom(py_str(a.id)), Atom(f"_pipeline_{a.id}.COMPILED"), None) for a in agents)
    )
    prefix = "CHILDREN: Final[Mapping[str, CompiledPipeline]] = "
    parts.subpipelines = prefix + fmt(
        Call("MappingProxyType", ((None, table),)), indent=0, prefix=len(prefix)
    )


def _is_name(annotation: str) -> bool:
    return annotation.isidentifier()


def _return_await(call: Call) -> str:
    """`return await f(...)` in a method body (indented by 8), wrapped as ruff does."""
    return "return await " + fmt(call, indent=8, prefix=len("        return await "))


def _import_handler(agent: AgentSpec, parts: V2Parts) -> str:
    module, _, function = (agent.handler or "").partition(":")
    local = f"_handler_{agent.id}"
    line = f"from {module} import {function} as {local}"
    if len(line) > LINE_LENGTH:
        line = f"from {module} import (\n    {function} as {local},\n)"
    parts.handler_imports.append(line)
    return local


def _accessors(spec: PipelineSpec, output_classes: dict[str, str]) -> str:
    """`class Outputs` / `class History`: one typed property per agent."""
    out = [
        "class Outputs:",
        '    """Typed view of `ctx.outputs`: the latest output of each agent on this item or',
        "    an ancestor item. Reading an agent that has not run there raises LookupError.",
        '    """',
        "",
        '    __slots__ = ("_ctx",)',
        "",
        "    def __init__(self, ctx: AgentContext) -> None:",
        "        self._ctx = ctx",
    ]
    hist = [
        "class History:",
        '    """Typed view of `ctx.history`: every output of each agent on this item, oldest',
        '    first (empty if it has not run)."""',
        "",
        '    __slots__ = ("_ctx",)',
        "",
        "    def __init__(self, ctx: AgentContext) -> None:",
        "        self._ctx = ctx",
    ]
    for agent in spec.agents:
        model = output_classes.get(agent.id, "TextOutput")
        for lines, function, returns in (
            (out, "_latest", model),
            (hist, "_all", f"tuple[{model}, ...]"),
        ):
            call = Call(
                function,
                ((None, Atom("self._ctx")), (None, Atom(py_str(agent.id))), (None, Atom(model))),
            )
            head = f"def {agent.id}(self) -> {returns}:"
            if width(head) + 4 > LINE_LENGTH:  # ruff gives a lone `self` its trailing comma
                head = signature(f"def {agent.id}", "self,", f" -> {returns}:", indent=4)
            lines += [
                "",
                "    @property",
                "    " + head,
                "        return " + fmt(call, indent=8, prefix=len("        return ")),
            ]
    return "\n".join(out) + "\n\n\n" + "\n".join(hist)


def _case_alias(agent: AgentSpec, models: _Models) -> None:
    """`<Router>Case = Literal[<case names>]` for a router; its `on` field takes this type
    when it is an enum of exactly those names (always so for the implicit output), so
    mypy rejects a handler that returns any other route."""
    dispatch = agent.dispatch
    if dispatch is None or dispatch.strategy != "route" or not dispatch.cases:
        return
    alias = models.name(pascal_case(agent.id) + "Case")
    values = Tuple(tuple(Atom(py_str(v)) for v in dispatch.cases), braces="[]")
    literal = fmt(values, indent=0, prefix=len(f"{alias} = Literal"))
    models.blocks.append(f"{alias} = Literal{literal}")
    fields = agent.output.fields if agent.output is not None else ()
    field_name = "route" if dispatch.on is None else dispatch.on
    on = next((f.type for f in fields if f.name == field_name), None)
    if on is not None and on.kind == "enum" and on.values == tuple(dispatch.cases):
        models.fixed[id(on)] = alias


def _gathers(spec: PipelineSpec, output_classes: dict[str, str], parts: V2Parts) -> None:
    """`class Joined` + `joined(ctx)` when a broadcast has a join; `children(ctx)` when a
    fan-out has a reduce."""
    joined: list[str] = []
    reduces = False
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        if dispatch.strategy == "parallel_broadcast" and dispatch.join is not None:
            joined += [t for t in dispatch.targets if t not in joined]
        if dispatch.strategy == "parallel_fan_out" and dispatch.reduce is not None:
            reduces = True
    imports = (["BranchFailure"] if joined else []) + (["ChildResult"] if reduces else [])
    if not imports:
        return
    parts.gather_import = "from agentflow.runtime.agents import " + ", ".join(imports)
    blocks: list[str] = []
    if joined:
        parts.gather_exports += ["Joined", "joined"]
        blocks.append(_joined_source(joined, output_classes))
    if reduces:
        parts.gather_exports.append("children")
        blocks.append(_CHILDREN_SOURCE)
    parts.gathers = "\n\n\n".join(blocks)


_CHILDREN_SOURCE = '''\
def children(ctx: AgentContext) -> tuple[ChildResult, ...]:
    """The fan-out's child items in item order, for a reduce agent's handler: each one's
    id, status (its item_finished status), output (the latest non-QA output on it, or
    None) and reason (why it aborted, or None)."""
    return ctx.children'''

_JOINED_HEAD = '''\
def _joined(ctx: AgentContext, agent: str, model: type[_M]) -> _M | BranchFailure:
    found = ctx.joined.get(agent)
    if found is None:
        raise LookupError(
            f"agent '{agent}' is not joined on work item '{ctx.item.id}' (read "
            "joined(ctx) in the handler of a broadcast's join agent)"
        )
    if isinstance(found, BranchFailure | model):
        return found
    return model.model_validate(found.model_dump())


class Joined:
    """Typed view of `ctx.joined`, for a join agent: each target of its broadcast ->
    that target's latest output on this item, or a BranchFailure if the target
    failed. Reading a target that is not joined here raises LookupError."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: AgentContext) -> None:
        self._ctx = ctx'''

_JOINED_TAIL = '''

def joined(ctx: AgentContext) -> Joined:
    """Typed outputs of the joined broadcast's targets, for a join agent's handler:
    `joined(ctx).<target>`."""
    return Joined(ctx)'''


def _joined_source(targets: list[str], output_classes: dict[str, str]) -> str:
    lines = [_JOINED_HEAD]
    for target in targets:
        model = output_classes.get(target, "TextOutput")
        returns = f"{model} | BranchFailure"
        call = Call(
            "_joined",
            ((None, Atom("self._ctx")), (None, Atom(py_str(target))), (None, Atom(model))),
        )
        head = f"def {target}(self) -> {returns}:"
        if width(head) + 4 > LINE_LENGTH:
            head = signature(f"def {target}", "self,", f" -> {returns}:", indent=4)
        lines += [
            "",
            "    @property",
            "    " + head,
            "        return " + fmt(call, indent=8, prefix=len("        return ")),
        ]
    return "\n".join(lines) + "\n" + _JOINED_TAIL
