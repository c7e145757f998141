"""Declared data shapes (DSL v2 `input:` and an agent's `output:`): YAML -> `ShapeSpec`.

A shape is a mapping of field name -> field type. A type is written as text
(`str`, `int`, `float`, `bool`, `list[T]`, `optional[T]`) or as a mapping
(`{type: ...}`, `{enum: [...]}`, `{type: list, items: ...}`,
`{type: object, fields: {...}}`, each optionally with `description:` and
`optional: true`). Every problem becomes a diagnostic at the field's position.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from pydantic import BaseModel

from agentflow.runtime.spec import FieldSpec, Loc, NamedField, ShapeSpec

from .diagnostics import Diagnostic, did_you_mean
from .parse import Path, SourceMap

__all__ = ["MAX_SHAPE_DEPTH", "SCALAR_TYPES", "lower_shape"]

MAX_SHAPE_DEPTH = 8
"""How deeply lists, optionals and objects may nest in one field's type."""

SCALAR_TYPES = ("str", "int", "float", "bool")
_WRITTEN_TYPES = (*SCALAR_TYPES, "list[T]", "optional[T]")
_TYPE_HELP = (
    "a type is str, int, float, bool, list[T], optional[T], or a mapping such as "
    "{enum: [a, b]}, {type: list, items: ...} or {type: object, fields: {...}}"
)
_ALIASES = {
    "string": "str",
    "text": "str",
    "integer": "int",
    "number": "float",
    "double": "float",
    "boolean": "bool",
    "array": "list[T]",
    "dict": "{type: object, fields: {...}}",
    "object": "{type: object, fields: {...}}",
    "enum": "{enum: [...]}",
    "list": "list[T]",
    "optional": "optional[T]",
}
_MAPPING_KEYS = ("type", "enum", "items", "fields", "description", "optional")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED_NAMES = frozenset(name for name in dir(BaseModel) if not name.startswith("__")) | {
    "str", "int", "float", "bool", "list", "Literal", "Field", "BaseModel", "ConfigDict", "None",
}  # fmt: skip
"""Names a pydantic model already has (`json`, `copy`, `schema`, ...), or that its annotations
use: not usable as fields (a field `str` would shadow the type in the class body)."""


class _Lowering:
    """Collects diagnostics while one shape is read."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.problems: list[Diagnostic] = []

    def fail(self, path: Path, message: str, *, key: bool = False) -> None:
        loc = self.source.key(path) if key else self.source.value(path)
        self.problems.append(Diagnostic(loc.file, loc.line, loc.column, message))

    def loc(self, path: Path) -> Loc:
        return self.source.key(path)

    def fields(self, raw: Any, path: Path, depth: int, what: str) -> tuple[NamedField, ...] | None:
        if not isinstance(raw, dict) or not raw:
            self.fail(
                path,
                f"{what} must be a mapping of field name -> type with at least one field "
                "(e.g. 'summary: str')",
            )
            return None
        fields: list[NamedField] = []
        for name, written in raw.items():
            field_path = (*path, name)
            problem = _name_problem(str(name))
            if problem:
                self.fail(field_path, problem, key=True)
                continue
            field_type = self.field_type(written, field_path, depth, str(name))
            if field_type is not None:
                fields.append(NamedField(name=name, type=field_type, loc=self.loc(field_path)))
        return tuple(fields) if len(fields) == len(raw) else None

    def field_type(self, written: Any, path: Path, depth: int, name: str) -> FieldSpec | None:
        if depth > MAX_SHAPE_DEPTH:
            self.fail(
                path,
                f"field '{name}' nests types more than {MAX_SHAPE_DEPTH} levels deep; "
                "flatten the shape",
            )
            return None
        if isinstance(written, str):
            return self.written_type(written, path, depth, name)
        if isinstance(written, dict):
            return self.mapping_type(written, path, depth, name)
        self.fail(path, f"field '{name}' has no type; {_TYPE_HELP}")
        return None

    def written_type(self, text: str, path: Path, depth: int, name: str) -> FieldSpec | None:
        """`str`, `list[int]`, `optional[list[str]]`, ... read without recursion."""
        wrappers: list[str] = []
        rest = text.strip()
        while True:
            match = re.fullmatch(r"(list|optional)\s*\[(.*)\]", rest)
            if match is None:
                break
            wrappers.append(match.group(1))
            rest = match.group(2).strip()
            if depth + len(wrappers) > MAX_SHAPE_DEPTH:
                self.fail(
                    path,
                    f"field '{name}' nests types more than {MAX_SHAPE_DEPTH} levels deep; "
                    "flatten the shape",
                )
                return None
        if rest not in SCALAR_TYPES:
            self.fail(path, _unknown_type(rest, text, name))
            return None
        spec = FieldSpec(kind=rest, loc=self.loc(path))
        optional = False
        for wrapper in reversed(wrappers):
            if wrapper == "optional":
                if optional or spec.optional:
                    self.fail(path, f"field '{name}': optional[optional[...]] says it twice")
                    return None
                spec = spec.model_copy(update={"optional": True})
            else:
                spec = FieldSpec(kind="list", items=spec, loc=self.loc(path))
        return spec

    def mapping_type(
        self, written: dict[str, Any], path: Path, depth: int, name: str
    ) -> FieldSpec | None:
        unknown = [key for key in written if key not in _MAPPING_KEYS]
        if unknown:
            key = unknown[0]
            self.fail(
                (*path, key),
                f"unknown key '{key}' in the type of field '{name}'"
                f"{did_you_mean(key, _MAPPING_KEYS)}; allowed: {', '.join(_MAPPING_KEYS)} "
                f"(to declare nested fields write {{type: object, fields: {{{key}: ...}}}})",
                key=True,
            )
            return None
        description = written.get("description")
        if description is not None and not isinstance(description, str):
            self.fail((*path, "description"), f"field '{name}': 'description' must be text")
            return None
        optional = self.flag(written, path, name)
        if optional is None:
            return None
        spec = self.mapping_kind(written, path, depth, name)
        if spec is None:
            return None
        if optional and spec.optional:
            self.fail(path, f"field '{name}' says optional twice; keep 'optional: true'")
            return None
        return spec.model_copy(
            update={"optional": optional or spec.optional, "description": description}
        )

    def flag(self, written: dict[str, Any], path: Path, name: str) -> bool | None:
        raw = written.get("optional", "false")
        value = raw.lower() if isinstance(raw, str) else None
        if value not in ("true", "false"):
            self.fail((*path, "optional"), f"field '{name}': 'optional' must be true or false")
            return None
        return value == "true"

    def mapping_kind(
        self, written: dict[str, Any], path: Path, depth: int, name: str
    ) -> FieldSpec | None:
        kind = written.get("type")
        if "enum" in written:
            if kind not in (None, "enum"):
                self.fail((*path, "type"), f"field '{name}' has both 'enum' and 'type: {kind}'")
                return None
            return self.enum(written["enum"], (*path, "enum"), name)
        if kind is None:
            self.fail(path, f"field '{name}' needs 'type:' or 'enum:'; {_TYPE_HELP}")
            return None
        if not isinstance(kind, str):
            self.fail((*path, "type"), f"field '{name}': 'type' must be text; {_TYPE_HELP}")
            return None
        if kind == "enum":
            self.fail(path, f"field '{name}' is an enum without values; add 'enum: [a, b]'")
            return None
        extra = "items" if kind != "list" and "items" in written else None
        extra = extra or ("fields" if kind != "object" and "fields" in written else None)
        if extra is not None:
            self.fail((*path, extra), f"field '{name}': '{extra}' does not go with 'type: {kind}'")
            return None
        if kind == "list":
            if "items" not in written:
                self.fail(path, f"field '{name}' is a list without 'items:'; or write list[T]")
                return None
            items_path = (*path, "items")
            items = written["items"]
            if isinstance(items, dict) and not _is_type_mapping(items):
                fields = self.fields(items, items_path, depth + 2, f"the items of '{name}'")
                if fields is None:
                    return None
                element = FieldSpec(kind="object", fields=fields, loc=self.loc(items_path))
            else:
                found = self.field_type(items, items_path, depth + 1, name)
                if found is None:
                    return None
                element = found
            return FieldSpec(kind="list", items=element, loc=self.loc(path))
        if kind == "object":
            fields = self.fields(
                written.get("fields"), (*path, "fields"), depth + 1, f"the fields of '{name}'"
            )
            if fields is None:
                return None
            return FieldSpec(kind="object", fields=fields, loc=self.loc(path))
        return self.written_type(kind, (*path, "type"), depth, name)

    def enum(self, raw: Any, path: Path, name: str) -> FieldSpec | None:
        if not isinstance(raw, list) or not raw:
            self.fail(path, f"field '{name}': an enum needs at least one value, e.g. [a, b]")
            return None
        seen: set[str] = set()
        for index, value in enumerate(raw):
            if not isinstance(value, str) or not value:
                self.fail(
                    (*path, index),
                    f"enum value {index + 1} of field '{name}' is not a string; "
                    "enum values are non-empty text such as 'billing'",
                )
                return None
            if value in seen:
                self.fail((*path, index), f"enum value '{value}' of field '{name}' is repeated")
                return None
            seen.add(value)
        return FieldSpec(kind="enum", values=tuple(raw), loc=self.loc(path))


def _is_type_mapping(items: dict[str, Any]) -> bool:
    """`items: {enum: [...]}` / `items: {type: ...}` is the element's type; any other
    mapping (`items: {title: str}`) lists the fields of object elements."""
    return ("enum" in items or "type" in items) and all(key in _MAPPING_KEYS for key in items)


def _name_problem(name: str) -> str | None:
    if not _FIELD_NAME.match(name):
        return (
            f"field name '{name}' is not an identifier: use letters, digits and '_', "
            "starting with a letter (it becomes a Python attribute)"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"field name '{name}' is a Python keyword; rename it (e.g. '{name}_')"
    if name in _RESERVED_NAMES or name.startswith("model_"):
        return (
            f"field name '{name}' clashes with a name the generated pydantic model uses; rename it "
            f"(e.g. '{name}_value')"
        )
    return None


def _unknown_type(base: str, text: str, name: str) -> str:
    alias = _ALIASES.get(base.lower())
    hint = f" (did you mean '{alias}'?)" if alias else did_you_mean(base, _WRITTEN_TYPES)
    shown = f"'{text}'" if base == text.strip() else f"'{base}' in '{text}'"
    return f"unknown type {shown} for field '{name}'{hint}; {_TYPE_HELP}"


def lower_shape(
    raw: Any, path: Path, source: SourceMap, what: str
) -> tuple[ShapeSpec | None, list[Diagnostic]]:
    """The `ShapeSpec` written at `path` (`what` names it in messages), or its problems."""
    lowering = _Lowering(source)
    fields = lowering.fields(raw, path, 1, what)
    if fields is None or lowering.problems:
        return None, lowering.problems
    return ShapeSpec(fields=fields, loc=source.key(path)), []
