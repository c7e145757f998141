"""Prompt template checks: jinja2 syntax, and only the variables an agent's context provides.

Prompts are rendered at run time in a sandboxed jinja2 environment with
`AgentContext.prompt_variables()`; a typo such as `{{ imput }}` would render as
an empty string and silently degrade the prompt, so the compiler rejects it.
The same goes for field paths into declared shapes (`{{ input.ticket }}`,
`{{ outputs.classifier.category }}`, `{{ history.writer }}`): `reference_problems`
checks them against the shapes, and `outputs.X` only where X has surely run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import TemplateSyntaxError, meta, nodes

from agentflow.runtime.agents import GATHER_VARIABLES, PROMPT_VARIABLES
from agentflow.runtime.engine.prompting import PromptSandbox
from agentflow.runtime.spec import FieldSpec, NamedField, PipelineSpec

from .diagnostics import did_you_mean
from .flow import same_item_graph

__all__ = [
    "Reference",
    "gather_problems",
    "reference_problems",
    "template_problems",
    "template_references",
]

_CHECKED_ROOTS = frozenset({"input", "outputs", "history", "joined", "item"})
_KNOWN_VARIABLES = PROMPT_VARIABLES | GATHER_VARIABLES


@dataclass(frozen=True)
class Reference:
    """`outputs.classifier.category` in a template: its root name, the parts after it
    (attribute names as str, constant indexes as int), and its line."""

    root: str
    parts: tuple[str | int, ...]
    line: int


_ENV = PromptSandbox()  # the runtime's sandbox: compiling folds constants through it


def template_problems(text: str) -> list[tuple[int, str]]:
    """(1-based template line, message) for each problem in a prompt template."""
    return list(_template_problems(text))


@lru_cache(maxsize=256)
def _template_problems(text: str) -> tuple[tuple[int, str], ...]:
    """Cached: many agents share one prompt file, and parsing a template costs ~0.15 ms."""
    try:
        tree = _ENV.parse(text)
        _ENV.compile(tree)  # as the runtime will: Python limits how deep the generated code nests
    except TemplateSyntaxError as exc:
        return ((exc.lineno or 1, f"template syntax error: {exc.message}"),)
    except (RecursionError, SyntaxError, MemoryError) as exc:  # IndentationError is a SyntaxError
        reason = exc.msg if isinstance(exc, SyntaxError) else "too deep to parse"
        return ((1, f"the template nests too deeply ({reason}); flatten its blocks"),)
    problems: list[tuple[int, str]] = []
    available = ", ".join(sorted(PROMPT_VARIABLES))
    for name in sorted(meta.find_undeclared_variables(tree) - _KNOWN_VARIABLES):
        problems.append(
            (
                _first_use(text, name),
                f"prompt uses undefined variable '{name}'{did_you_mean(name, PROMPT_VARIABLES)}; "
                f"available: {available}",
            )
        )
    return tuple(problems)


def _first_use(text: str, name: str) -> int:
    """The line where `name` first appears as a template name token (1 if not found)."""
    try:
        for line, token, value in _ENV.lex(text):
            if token == "name" and value == name:
                return line
    except TemplateSyntaxError:
        pass
    return 1


@lru_cache(maxsize=256)
def template_references(text: str) -> tuple[Reference, ...]:
    """Every maximal `input.…`/`outputs.…`/`history.…` access chain in a template
    (none for a template that does not parse: `template_problems` reports it)."""
    try:
        tree = _ENV.parse(text)
    except (TemplateSyntaxError, RecursionError, SyntaxError, MemoryError):
        return ()
    found: list[Reference] = []
    pending: list[nodes.Node] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, nodes.Getattr | nodes.Getitem):
            parts: list[str | int] = []
            base: nodes.Node = node
            while isinstance(base, nodes.Getattr | nodes.Getitem):
                if isinstance(base, nodes.Getattr):
                    parts.append(base.attr)
                elif isinstance(base.arg, nodes.Const) and isinstance(base.arg.value, str | int):
                    parts.append(base.arg.value)
                else:  # a computed index: check the chain up to it, and the index itself
                    pending.append(base.arg)
                    parts.clear()
                base = base.node
            if isinstance(base, nodes.Name) and base.name in _CHECKED_ROOTS and parts:
                found.append(Reference(base.name, tuple(reversed(parts)), node.lineno))
            elif not isinstance(base, nodes.Name):
                pending.append(base)
            continue
        pending.extend(node.iter_child_nodes())
    return tuple(sorted(found, key=lambda ref: (ref.line, ref.root, str(ref.parts))))


def reference_problems(
    text: str,
    reader: str,
    spec: PipelineSpec,
    runs_before: Callable[[str, str], bool] | None,
) -> list[tuple[int, str]]:
    """(template line, message) for each field path that the shapes or the order of
    agents rule out. `runs_before(x, reader)` says whether x runs before the reader on
    every path (None: the dispatch graph is broken, which is reported elsewhere)."""
    problems: list[tuple[int, str]] = []
    agents = {agent.id: agent for agent in spec.agents}
    item_kinds: list[tuple[str, tuple[NamedField, ...]]] | None = None
    for ref in template_references(text):
        if ref.root == "item":
            if item_kinds is None:
                item_kinds = _item_kinds(spec, reader)
            for what, fields in item_kinds:
                problem = _path_problem(fields, ref.parts, "item", what)
                if problem:
                    problems.append((ref.line, problem))
                    break
            continue
        if ref.root == "input":
            if spec.input is not None:
                problem = _path_problem(spec.input.fields, ref.parts, "input", "the input")
                if problem:
                    problems.append((ref.line, problem))
            continue
        name = ref.parts[0]
        if ref.root == "joined":
            problem = _joined_problem(ref, reader, spec)
            if problem:
                problems.append((ref.line, problem))
            continue
        if not isinstance(name, str) or name not in agents:
            problems.append(
                (
                    ref.line,
                    f"'{ref.root}.{name}' names no agent{did_you_mean(str(name), agents)}",
                )
            )
            continue
        written = f"{ref.root}.{name}"
        if ref.root == "outputs":
            if name == reader:
                problems.append(
                    (
                        ref.line,
                        f"'{written}': an agent cannot read its own latest output; use "
                        f"'history.{name}' for its earlier ones",
                    )
                )
                continue
            if name in (joined_targets(spec, reader) or ()):
                problems.append(
                    (
                        ref.line,
                        f"'{written}': agent '{name}' is a joined branch of '{reader}', and a "
                        "branch that failed leaves no output (the join still runs); read "
                        f"'joined.{name}', its output or its failure",
                    )
                )
                continue
            if runs_before is not None and not runs_before(name, reader):
                problems.append(
                    (
                        ref.line,
                        f"'{written}': agent '{name}' does not run before '{reader}' on every "
                        "path that reaches it, so its output may not be there; read it only "
                        f"from agents that every path reaches through '{name}' (where parallel "
                        "branches meet, read a branch's output inside that branch)",
                    )
                )
                continue
            rest = ref.parts[1:]
        else:
            rest = ref.parts[1:]
            if not rest:
                continue
            if not isinstance(rest[0], int):
                if rest[0] in _LIST_METHODS:
                    continue
                problems.append(
                    (
                        ref.line,
                        f"'{written}' is a list of outputs, oldest first; index it "
                        f"('{written}[-1].…') or loop over it",
                    )
                )
                continue
            rest = rest[1:]
        output = agents[name].output
        fields = output.fields if output is not None else _TEXT_FIELDS
        what = f"agent '{name}'" + ("" if output is not None else " (which answers text)")
        problem = _path_problem(fields, rest, written, what)
        if problem:
            problems.append((ref.line, problem))
    return problems


def _item_kinds(spec: PipelineSpec, reader: str) -> list[tuple[str, tuple[NamedField, ...]]]:
    """Each kind of work item `reader` runs on, with its declared fields: the main item
    (the run input, `input:`) and the children of each fan-out whose path reaches the
    reader (a typed fan-out's `items:` element). Empty when any of them has no declared
    object shape: then `item.…` cannot be checked (v1 work items are any JSON)."""
    kinds: list[tuple[str, tuple[NamedField, ...]]] = []
    for what, fields, reached in _item_starts(spec):
        if reader in reached:
            if fields is None:
                return []
            kinds.append((what, fields))
    return kinds


ItemStart = tuple[str, tuple[NamedField, ...] | None, frozenset[str]]
_ITEM_STARTS: dict[int, tuple[PipelineSpec, list[ItemStart]]] = {}


def _item_starts(spec: PipelineSpec) -> list[ItemStart]:
    """(what the item is, its declared fields or None, the agents it reaches) for the
    main item and each fan-out's children; computed once per spec (every prompt that
    reads `item.…` asks: per reader it would be quadratic in a long pipeline)."""
    cached = _ITEM_STARTS.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    graph = same_item_graph(spec)
    starts: list[tuple[str, str, tuple[NamedField, ...] | None]] = [
        (spec.entry_agent, "the run input", spec.input.fields if spec.input else None)
    ]
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None or dispatch.strategy != "parallel_fan_out" or not dispatch.target:
            continue
        element: tuple[NamedField, ...] | None = None
        if dispatch.items is not None and agent.output is not None:
            field = next((f.type for f in agent.output.fields if f.name == dispatch.items), None)
            items = field.items if field is not None and field.kind == "list" else None
            if items is not None and items.kind == "object":
                element = items.fields
        starts.append((dispatch.target, f"each work item of fan-out '{agent.id}'", element))
    found: list[ItemStart] = []
    for start, what, fields in starts:
        seen, stack = {start}, [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        found.append((what, fields, frozenset(seen)))
    if len(_ITEM_STARTS) >= 64:
        _ITEM_STARTS.clear()
    _ITEM_STARTS[id(spec)] = (spec, found)
    return found


_LIST_METHODS = frozenset({"count", "index"})
_TEXT_FIELDS = (NamedField(name="text", type=FieldSpec(kind="str")),)
"""An agent without `output:` answers `TextOutput`: one field, `text`."""


def _path_problem(
    fields: tuple[NamedField, ...], parts: tuple[str | int, ...], written: str, what: str
) -> str | None:
    """The first part of `parts` the shape `fields` does not have, as a message."""
    current: tuple[NamedField, ...] | None = fields
    spec: FieldSpec | None = None
    for part in parts:
        if current is None:
            if spec is not None and spec.kind == "list" and isinstance(part, int):
                spec = spec.items
                current = spec.fields if spec is not None and spec.kind == "object" else None
                continue
            return None  # a scalar's own attributes (`.upper()`), or a list method
        if not isinstance(part, str):
            return f"'{written}' is an object; index it by field name, not [{part}]"
        by_name = {field.name: field for field in current}
        if part not in by_name:
            hint = did_you_mean(part, by_name) or f"; its fields: {', '.join(by_name)}"
            return f"'{written}.{part}': {what} has no field '{part}'{hint}"
        written = f"{written}.{part}"
        spec = by_name[part].type
        current = spec.fields if spec.kind == "object" else None
    return None


_FAILURE_FIELDS = frozenset({"failed", "error"})
"""What `joined.<target>` holds for a branch that failed (runtime `BranchFailure`)."""


def joined_targets(spec: PipelineSpec, reader: str) -> tuple[str, ...] | None:
    """The targets of the broadcasts `reader` joins (in listed order), or None if it
    joins none."""
    found: list[str] | None = None
    for agent in spec.agents:
        dispatch = agent.dispatch
        if (
            dispatch is not None
            and dispatch.strategy == "parallel_broadcast"
            and (dispatch.join == reader)
        ):
            found = (found or []) + [t for t in dispatch.targets if t not in (found or [])]
    return None if found is None else tuple(found)


def _reduces(spec: PipelineSpec, reader: str) -> bool:
    return any(
        a.dispatch is not None
        and a.dispatch.strategy == "parallel_fan_out"
        and a.dispatch.reduce == reader
        for a in spec.agents
    )


def gather_problems(text: str, reader: str, spec: PipelineSpec) -> list[tuple[int, str]]:
    """(template line, message) for `joined` outside a join agent's prompt and `children`
    outside a reduce agent's (the runtime renders them empty there)."""
    try:
        used = meta.find_undeclared_variables(_ENV.parse(text)) & GATHER_VARIABLES
    except (TemplateSyntaxError, RecursionError, SyntaxError, MemoryError):
        return []
    problems: list[tuple[int, str]] = []
    if "joined" in used and joined_targets(spec, reader) is None:
        problems.append(
            (
                _first_use(text, "joined"),
                f"'joined' is only set for a broadcast's join agent, and agent '{reader}' "
                "joins no broadcast (name it in a parallel_broadcast's 'join:')",
            )
        )
    if "children" in used and not _reduces(spec, reader):
        problems.append(
            (
                _first_use(text, "children"),
                f"'children' is only set for a fan-out's reduce agent, and agent '{reader}' "
                "reduces no fan-out (name it in a parallel_fan_out's 'reduce:')",
            )
        )
    return problems


def _joined_problem(ref: Reference, reader: str, spec: PipelineSpec) -> str | None:
    """`joined.<target>.<field…>`: a target of the joined broadcast, a field it answers
    (or `failed` / `error` of a failed branch)."""
    targets = joined_targets(spec, reader)
    if targets is None:
        return None  # gather_problems reports it once
    name = ref.parts[0]
    if not isinstance(name, str) or name not in targets:
        return (
            f"'joined.{name}': '{name}' is not a target of a broadcast that agent '{reader}' "
            f"joins{did_you_mean(str(name), targets)}; its targets: {', '.join(targets)}"
        )
    rest = ref.parts[1:]
    if rest and rest[0] in _FAILURE_FIELDS:
        return None
    agent = spec.agent(name)
    fields = agent.output.fields if agent.output is not None else _TEXT_FIELDS
    what = f"agent '{name}'" + ("" if agent.output is not None else " (which answers text)")
    return _path_problem(fields, rest, f"joined.{name}", what)
