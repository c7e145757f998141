"""Stage 1: YAML text -> validated YAML tree (typed values) + a map of source positions.

The strictyaml schema is derived from the IR models in `agentflow.runtime.spec`,
so the DSL accepts exactly the IR's keys (unknown keys are rejected) and the two
cannot drift apart. Flow style (`tools: []`) is accepted because the seed's own
example uses it; anchors, tags and duplicate keys are still rejected.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import strictyaml
from pydantic import BaseModel
from strictyaml import utils as strictyaml_utils
from strictyaml.ruamel.comments import CommentedMap, CommentedSeq
from strictyaml.ruamel.error import MarkedYAMLError
from strictyaml.ruamel.error import YAMLError as RuamelYAMLError
from strictyaml.ruamel.events import (
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from strictyaml.ruamel.parser import Parser
from strictyaml.ruamel.reader import Reader
from strictyaml.ruamel.resolver import VersionedResolver
from strictyaml.ruamel.scanner import Scanner

from agentflow.runtime.spec import Loc, PipelineSpec, RouteCase, ShapeSpec

from .diagnostics import CompileError, Diagnostic

__all__ = ["Parsed", "Path", "SourceMap", "parse_text", "pipeline_schema"]

Path = tuple[str | int, ...]
"""A key path into the document: `("agents", 0, "dispatch", "target")`."""


@dataclass(frozen=True)
class SourceMap:
    """Where each key and value of the document is (1-based line and column)."""

    file: str
    keys: dict[Path, tuple[int, int]]
    values: dict[Path, tuple[int, int]]

    def has(self, path: Path) -> bool:
        """True if the document spelled out this key (rather than relying on a default)."""
        return path in self.values

    def value(self, path: Path) -> Loc:
        """The value's position, else the nearest enclosing one that exists."""
        return self._find(path, self.values)

    def key(self, path: Path) -> Loc:
        """The key's position (the item's start for list items), else the nearest enclosing."""
        return self._find(path, self.keys)

    def _find(self, path: Path, table: dict[Path, tuple[int, int]]) -> Loc:
        for end in range(len(path), 0, -1):
            found = table.get(path[:end]) or self.keys.get(path[:end])
            if found is not None:
                return Loc(file=self.file, line=found[0], column=found[1])
        return Loc(file=self.file, line=1, column=1)


@dataclass(frozen=True)
class Parsed:
    """A schema-valid document: plain typed data plus where each part came from."""

    data: dict[str, Any]
    source: SourceMap


class _Int(strictyaml.Int):  # type: ignore[misc]
    """strictyaml's Int, except that text its check lets through but `int()` cannot read
    (`_`, `-_`) is reported like any other non-integer instead of raising ValueError."""

    def validate_scalar(self, chunk: Any) -> Any:
        if _number(chunk.contents, int) is None:
            chunk.expecting_but_found("when expecting an integer")
        return super().validate_scalar(chunk)


class _Float(strictyaml.Float):  # type: ignore[misc]
    """strictyaml's Float, made as strict as `_Int` (`""`, `.`, `e5`, `_` are not floats)."""

    def validate_scalar(self, chunk: Any) -> Any:
        text = chunk.contents
        special = strictyaml_utils.is_infinity(text) or strictyaml_utils.is_not_a_number(text)
        if not special and _number(text, float) is None:
            chunk.expecting_but_found("when expecting a float")
        return super().validate_scalar(chunk)


def _number(text: str, kind: type[int] | type[float]) -> int | float | None:
    """`text` read as strictyaml reads numbers (its check, then `_` dropped), or None."""
    check = strictyaml_utils.is_integer if kind is int else strictyaml_utils.is_decimal
    if not check(text):
        return None
    try:
        return kind(text.replace("_", ""))
    except ValueError:
        return None


_NOT_YAML_KEYS = frozenset({"loc", "implicit_state_machine"})
"""IR fields the compiler fills in itself; a pipeline file may not write them."""


def _free_form(annotation: Any) -> bool:
    """A shape, a route case, or route cases by name: read as plain YAML (see lower.py)."""
    if get_origin(annotation) is dict:
        return get_args(annotation)[1] is RouteCase
    return annotation is ShapeSpec or annotation is RouteCase


def _validator_for(annotation: Any) -> Any:
    """The strictyaml validator for one IR field type."""
    origin = get_origin(annotation)
    if _free_form(annotation):
        # A declared shape (`name: type`) or route cases (`case: target` or a mapping) are
        # free-form YAML; lowering reads them and the IR checks them.
        return strictyaml.Any()
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _validator_for(inner[0])
    if origin is Annotated:
        return _validator_for(get_args(annotation)[0])
    if origin is Literal or annotation is str:
        return strictyaml.Str()
    if annotation is int:
        return _Int()
    if annotation is float:
        return _Float()
    if origin is tuple:
        return strictyaml.EmptyList() | strictyaml.Seq(_validator_for(get_args(annotation)[0]))
    if origin is dict:
        return strictyaml.EmptyDict() | strictyaml.MapPattern(strictyaml.Str(), strictyaml.Str())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _map_for(annotation)
    raise TypeError(f"no strictyaml validator for IR field type {annotation!r}")


def _map_for(model: type[BaseModel]) -> Any:
    fields: dict[Any, Any] = {}
    for name, info in model.model_fields.items():
        if name in _NOT_YAML_KEYS:
            continue
        # Every key is optional here: the IR reports all missing keys at once, with paths.
        fields[strictyaml.Optional(name)] = _validator_for(info.annotation)
    return strictyaml.Map(fields)


_SCHEMA = _map_for(PipelineSpec)


def pipeline_schema() -> Any:
    """The strictyaml schema every pipeline file is validated against."""
    return _SCHEMA


def parse_text(text: str, path: str) -> Parsed:
    """Validate `text` against the DSL schema.

    Raises:
        CompileError: with one diagnostic for a YAML syntax or schema error
            (strictyaml stops at the first), or for an empty document.
    """
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        raise CompileError(
            [Diagnostic(path, 1, 1, "the pipeline file is empty; start with 'name: my-pipeline'")]
        )
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        message = (
            f"character U+{ord(bad.group()):04X} is not allowed in YAML; remove it "
            '(use a quoted escape such as "\\t" if you need it in a value)'
        )
        raise CompileError([Diagnostic(path, line, column, message)])
    too_deep = _flow_too_deep(text)
    if too_deep is not None:
        line, column = too_deep
        message = (
            f"flow collections ('[...]' / '{{...}}') nest deeper than {MAX_FLOW_DEPTH} "
            "levels here; a pipeline needs a few at most (YAML parsing slows down "
            "quadratically with this depth)"
        )
        raise CompileError([Diagnostic(path, line, column, message)])
    text, brackets_hidden = _hide_type_brackets(text)
    parsed = _parse_checked(text, path)
    if brackets_hidden:
        parsed = Parsed(data=_show_type_brackets(parsed.data), source=parsed.source)
    return parsed


MAX_FLOW_DEPTH = 32
_BLOCK_SCALAR = re.compile(r"^(\s*)(?:-\s+)*(?:[^#'\"]*?:\s+)?[|>][-+0-9]*\s*(?:#.*)?$")
_NODE_START = frozenset("-:,[{")


def _flow_too_deep(text: str) -> tuple[int, int] | None:
    """(line, column) where `[`/`{` flow collections first nest past MAX_FLOW_DEPTH, if any.

    ruamel's scanner re-checks every open flow level for each token, so 5,000
    nested `[` took 26-100 s to reject; this linear pass runs first. It follows
    only what matters for nesting: quoted scalars, comments, block scalars, and
    brackets where a node may start (`see [1]` in a plain value is text).
    """
    depth = 0
    quote = ""
    block_indent = -1
    for number, line in enumerate(text.splitlines(), start=1):
        if block_indent >= 0:
            if not line.strip() or len(line) - len(line.lstrip()) > block_indent:
                continue
            block_indent = -1
        if depth == 0 and not quote:
            block = _BLOCK_SCALAR.match(line)
            if block is not None:
                block_indent = len(block.group(1))
                continue
        previous = ""  # the last non-space character before this one on the line
        index = 0
        while index < len(line):
            char = line[index]
            if quote:
                if char == "\\" and quote == '"':
                    index += 1
                elif char == quote:
                    if quote == "'" and line[index + 1 : index + 2] == "'":
                        index += 1
                    else:
                        quote = ""
            elif char == "#" and (index == 0 or line[index - 1] in " \t"):
                break
            elif char in "\"'" and (not previous or previous in _NODE_START):
                quote = char
            elif char in "[{" and (depth > 0 or not previous or previous in "-:"):
                depth += 1
                if depth > MAX_FLOW_DEPTH:
                    return number, index + 1
            elif char in "]}" and depth > 0:
                depth -= 1
            if not char.isspace():
                previous = char
            index += 1
    return None


_OPEN_TYPE, _CLOSE_TYPE = "\u27e6", "\u27e7"
"""Stand-ins for the brackets of `list[T]` / `optional[T]` while the YAML is parsed (one
character each, so every line and column stays where it was written)."""
_TYPE_START = re.compile(r"(?<![\w.])(?:list|optional)\[")


def _hide_type_brackets(text: str) -> tuple[str, bool]:
    """`text` with the brackets of every `list[...]`/`optional[...]` replaced by stand-ins.

    `[` and `]` are YAML flow indicators, so `{email: optional[str]}` (DSL v2's own
    example) would otherwise be a syntax error inside a flow mapping.
    """
    if _OPEN_TYPE in text or _CLOSE_TYPE in text or _TYPE_START.search(text) is None:
        return text, False
    chars = list(text)
    for match in _TYPE_START.finditer(text):
        opening = match.end() - 1
        depth = 0
        for index in range(opening, len(text)):
            char = text[index]
            if char == "\n":
                break
            if char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
                if depth == 0:
                    chars[opening], chars[index] = _OPEN_TYPE, _CLOSE_TYPE
                    break
    return "".join(chars), True


def _show_type_brackets(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(_OPEN_TYPE, "[").replace(_CLOSE_TYPE, "]")
    if isinstance(value, dict):
        return {key: _show_type_brackets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_show_type_brackets(item) for item in value]
    return value


def _parse_checked(text: str, path: str) -> Parsed:
    fast = _fast_parse(text, path)
    if fast is not None:
        return fast
    problem = _key_problem(text, path)
    if problem is not None:
        raise CompileError([problem])
    try:
        document = strictyaml.dirty_load(text, _SCHEMA, label=path, allow_flow_style=True)
    except MarkedYAMLError as exc:
        raise CompileError([_yaml_error_diagnostic(exc, text, path)]) from None
    except (strictyaml.YAMLError, RecursionError) as exc:
        raise CompileError([Diagnostic(path, 1, 1, f"invalid YAML: {exc}")]) from None
    data = document.data
    if not isinstance(data, dict):
        raise CompileError([Diagnostic(path, 1, 1, "the pipeline must be a YAML mapping")])
    source = SourceMap(path, {}, {})
    _record_positions(document._chunk._ruamelparsed, (), source)
    return Parsed(data=data, source=source)


def _record_positions(node: Any, path: Path, source: SourceMap) -> None:
    """Walk the ruamel tree (which keeps 0-based positions) and store 1-based ones."""
    if isinstance(node, CommentedMap):
        for key in node:
            key_path = (*path, str(key))
            line, col = node.lc.key(key)
            source.keys[key_path] = (line + 1, col + 1)
            vline, vcol = node.lc.value(key)
            source.values[key_path] = (vline + 1, vcol + 1)
            _record_positions(node[key], key_path, source)
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            item_path = (*path, index)
            line, col = node.lc.item(index)
            source.keys[item_path] = (line + 1, col + 1)
            source.values[item_path] = (line + 1, col + 1)
            _record_positions(item, item_path, source)


# --- Fast path -------------------------------------------------------------------------------
#
# strictyaml's round-trip loader and validators (a deep copy per node) cost ~90% of a compile.
# The fast path reads the same vendored ruamel parser's events once, with the plain scanner (no
# comment gathering), and applies the same schema rules while building plain data and positions.
# It only ever *accepts*: on anything it cannot vouch for (an error, an anchor, a tag, a block
# scalar, a duplicate or unknown key, a value of the wrong shape) it gives up and `parse_text`
# runs strictyaml itself, so every diagnostic is strictyaml's, exactly as before.


class _GiveUp(Exception):
    """The fast path cannot vouch for this document; strictyaml decides."""


class _EventLoader(Reader, Scanner, Parser, VersionedResolver):  # type: ignore[misc]
    """ruamel's reader, scanner and parser: events only (no composer, no constructor)."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text, loader=self)
        Scanner.__init__(self, loader=self)
        Parser.__init__(self, loader=self)
        VersionedResolver.__init__(self, None, loader=self)


_FastSpec = Any
"""'str' | 'int' | 'float' | 'strmap' | 'any' | ('seq', item spec) | dict of name -> spec."""


def _fast_spec(annotation: Any) -> _FastSpec:
    """The fast-path rule for one IR field type; mirrors `_validator_for`."""
    origin = get_origin(annotation)
    if _free_form(annotation):
        return "any"
    if origin in (Union, types.UnionType):
        return _fast_spec(next(a for a in get_args(annotation) if a is not type(None)))
    if origin is Annotated:
        return _fast_spec(get_args(annotation)[0])
    if origin is Literal or annotation is str:
        return "str"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if origin is tuple:
        return ("seq", _fast_spec(get_args(annotation)[0]))
    if origin is dict:
        return "strmap"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {
            name: _fast_spec(info.annotation)
            for name, info in annotation.model_fields.items()
            if name not in _NOT_YAML_KEYS
        }
    raise TypeError(f"no fast-path rule for IR field type {annotation!r}")


_FAST_SCHEMA: dict[str, _FastSpec] = _fast_spec(PipelineSpec)
_PLAIN_STYLES = (None, "'", '"')
"""Scalar styles whose event value is exactly what strictyaml's constructor yields."""


def _fast_parse(text: str, path: str) -> Parsed | None:
    """`Parsed` for a document strictyaml would accept unchanged, else None (use strictyaml)."""
    loader = _EventLoader(text)
    source = SourceMap(path, {}, {})
    try:
        _expect(loader, StreamStartEvent)
        start = _expect(loader, DocumentStartEvent)
        if start.version is not None or start.tags:
            raise _GiveUp
        if type(loader.peek_event()) is not MappingStartEvent:
            raise _GiveUp
        data = _fast_value(loader, _FAST_SCHEMA, (), source)
        _expect(loader, DocumentEndEvent)
        _expect(loader, StreamEndEvent)
    except (_GiveUp, RuamelYAMLError, RecursionError, ValueError):
        return None
    finally:
        loader.dispose()
    return Parsed(data=data, source=source)


def _key_problem(text: str, path: str) -> Diagnostic | None:
    """A diagnostic for a mapping key the DSL cannot have, else None.

    strictyaml crashes on a complex key (`? [a, b]`: a list or mapping as a key)
    and ruamel applies the `<<` merge key silently; both are refused here, at the
    key's line and column. A YAML syntax error ends the scan: strictyaml reports it.
    """
    loader = _EventLoader(text)
    expecting_key: list[bool | None] = []  # per open collection: None for a sequence
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, NodeEvent):
                at_key = bool(expecting_key) and expecting_key[-1] is True
                if expecting_key and expecting_key[-1] is not None:
                    expecting_key[-1] = not expecting_key[-1]
                mark = event.start_mark
                if at_key and not isinstance(event, ScalarEvent):
                    return Diagnostic(
                        path,
                        mark.line + 1,
                        mark.column + 1,
                        "a complex key (a list or mapping used as a key) is not allowed; "
                        "keys are plain names such as 'id' or 'prompt'",
                    )
                if at_key and event.value == "<<" and event.style is None:
                    return Diagnostic(
                        path,
                        mark.line + 1,
                        mark.column + 1,
                        "the YAML merge key '<<' is not supported; write the keys out in full",
                    )
                if isinstance(event, CollectionStartEvent):
                    expecting_key.append(True if isinstance(event, MappingStartEvent) else None)
            elif isinstance(event, MappingEndEvent | SequenceEndEvent):
                expecting_key.pop()
    except (RuamelYAMLError, RecursionError, ValueError, IndexError):
        return None
    finally:
        loader.dispose()
    return None


def _expect(loader: _EventLoader, kind: type) -> Any:
    event = loader.get_event()
    if type(event) is not kind:
        raise _GiveUp
    return event


def _fast_value(loader: _EventLoader, spec: _FastSpec, path: Path, source: SourceMap) -> Any:
    """Consume one node's events; its value as strictyaml's validator for `spec` returns it."""
    event = loader.get_event()
    kind = type(event)
    if event.anchor is not None or getattr(event, "tag", None) is not None:
        raise _GiveUp
    if kind is ScalarEvent:
        if event.style not in _PLAIN_STYLES:
            raise _GiveUp
        return _fast_scalar(event.value, spec)
    if kind is MappingStartEvent and (spec in ("strmap", "any") or isinstance(spec, dict)):
        return _fast_mapping(loader, spec, path, source)
    if kind is SequenceStartEvent and (spec == "any" or isinstance(spec, tuple)):
        items: list[Any] = []
        while type(loader.peek_event()) is not SequenceEndEvent:
            mark = loader.peek_event().start_mark
            item_path = (*path, len(items))
            source.keys[item_path] = source.values[item_path] = (mark.line + 1, mark.column + 1)
            items.append(
                _fast_value(loader, "any" if spec == "any" else spec[1], item_path, source)
            )
        loader.get_event()
        return items
    raise _GiveUp


def _fast_scalar(value: str, spec: _FastSpec) -> Any:
    if spec in ("str", "any"):
        return value
    if value == "" and (spec == "strmap" or isinstance(spec, tuple)):
        return {} if spec == "strmap" else []  # strictyaml's EmptyDict / EmptyList
    if spec in ("int", "float"):
        number = _number(value, int if spec == "int" else float)
        if number is not None:
            return number
    raise _GiveUp


def _fast_mapping(
    loader: _EventLoader, spec: _FastSpec, path: Path, source: SourceMap
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    while type(loader.peek_event()) is not MappingEndEvent:
        key_event = loader.get_event()
        if type(key_event) is not ScalarEvent or key_event.anchor is not None:
            raise _GiveUp
        key = key_event.value
        if key_event.tag is not None or key_event.style not in _PLAIN_STYLES:
            raise _GiveUp
        free = spec in ("strmap", "any")
        if key in result or key in ("", "<<") or (not free and key not in spec):
            raise _GiveUp
        key_path = (*path, key)
        value_mark = loader.peek_event().start_mark
        source.keys[key_path] = (key_event.start_mark.line + 1, key_event.start_mark.column + 1)
        source.values[key_path] = (value_mark.line + 1, value_mark.column + 1)
        rule = "str" if spec == "strmap" else "any" if spec == "any" else spec[key]
        result[key] = _fast_value(loader, rule, key_path, source)
    loader.get_event()
    return result


_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
"""Characters YAML does not allow in a stream (the parser would fail without a position)."""

_KEY_LINE = re.compile(r"^(\s*(?:-\s+)?)([^:#]+?):(\s+)(\S)")


def _yaml_error_diagnostic(exc: MarkedYAMLError, text: str, path: str) -> Diagnostic:
    """One clean diagnostic line from a ruamel/strictyaml error (no multi-line dump)."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else 1
    problem = " ".join(str(exc.problem or "").split())
    context = " ".join(str(exc.context or "").split())
    if isinstance(exc, strictyaml.YAMLValidationError):
        message, column, line = _validation_message(context, problem, text, line)
    elif isinstance(exc, strictyaml.DuplicateKeysDisallowed):
        message = f"{problem or context}; each key may appear once, merge or remove the repeats"
    elif isinstance(exc, strictyaml.DisallowedToken):
        message = f"{problem or context} (strictyaml keeps pipelines plain: no anchors or tags)"
    else:
        parts = [p for p in (context, problem) if p]
        message = "YAML syntax error: " + ("; ".join(parts) or "cannot parse")
    return Diagnostic(path, line, column, message)


def _validation_message(context: str, problem: str, text: str, line: int) -> tuple[str, int, int]:
    """strictyaml's 'when expecting X / found Y' as a sentence, and a better column and line."""
    lines = text.splitlines()
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    stripped = source_line.lstrip(" -")
    key_column = len(source_line) - len(stripped) + 1
    match = _KEY_LINE.match(source_line)
    unexpected = re.match(r"unexpected key not in schema '(.*)'", problem)
    if unexpected:
        key = unexpected.group(1)
        line, key_column = _find_key(lines, key, line, key_column)
        message = f"unknown key '{key}'; see docs/dsl.md for the keys allowed here"
        return message, key_column, line
    owner_key = match.group(2).strip() if match else None
    if problem in ("found a sequence", "found a mapping"):
        # The error is about a block value: name the key that owns it, on an earlier line.
        match, owner_key = None, None
        owner = _block_owner(lines, line)
        if owner is not None:
            line, key_column, owner_key = owner
    column = match.start(4) + 1 if match else key_column
    expecting = context.removeprefix("when expecting ").removeprefix("while parsing ")
    expecting = "a string" if expecting == "a str" else expecting
    found = problem.removeprefix("found ")
    if expecting and found:
        where = f"'{owner_key}' " if owner_key else ""
        return f"{where}expected {expecting}, found {found}", column, line
    return (problem or context or "invalid value"), column, line


def _block_owner(lines: list[str], line: int) -> tuple[int, int, str] | None:
    """(line, column, key) of the `key:` whose block value starts at `line`, if any."""
    for number in range(min(line - 1, len(lines)), 0, -1):
        text = lines[number - 1]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        owner = re.match(r"^(\s*(?:-\s+)?)([^:#\s][^:#]*?):\s*(#.*)?$", text)
        return (number, owner.end(1) + 1, owner.group(2)) if owner else None
    return None


def _find_key(lines: list[str], key: str, line: int, column: int) -> tuple[int, int]:
    """The (line, column) of `key:` at or before `line` (strictyaml marks its value)."""
    pattern = re.compile(rf"^(\s*(?:-\s+)?){re.escape(key)}\s*:")
    for number in range(min(line, len(lines)), 0, -1):
        match = pattern.match(lines[number - 1])
        if match:
            return number, match.end(1) + 1
    return line, column
