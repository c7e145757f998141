"""Stage 2: schema-valid YAML data -> the frozen IR (`PipelineSpec`), every node with its `loc`.

Value checks that the IR itself states (id pattern, ranges, enum values,
required keys) are done by pydantic; each of its errors becomes a diagnostic
at the position of the offending key or value, all of them at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from agentflow.runtime.spec import Loc, PipelineSpec

from .diagnostics import CompileError, Diagnostic, did_you_mean, sort_diagnostics
from .naming import IDENTIFIER_PATTERN, suggest_identifier
from .parse import Parsed, Path, SourceMap

__all__ = ["lower"]

_PLAIN_MAPS = frozenset({"config"})
"""Keys whose mapping is user data (dict[str, str]), not an IR node: no `loc` added."""


def lower(parsed: Parsed) -> PipelineSpec:
    """Build the IR from a parsed document.

    Raises:
        CompileError: every value the IR rejects, each at its source position.
    """
    data = _with_locs(parsed.data, (), parsed.source)
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        diagnostics = [_diagnostic(error, parsed) for error in exc.errors()]
        raise CompileError(sort_diagnostics(diagnostics, parsed.source.file)) from None


def _with_locs(value: Any, path: Path, source: SourceMap) -> Any:
    if isinstance(value, dict):
        if path and path[-1] in _PLAIN_MAPS:
            return dict(value)
        lowered = {key: _with_locs(item, (*path, key), source) for key, item in value.items()}
        lowered["loc"] = source.key(path) if path else Loc(file=source.file, line=1, column=1)
        return lowered
    if isinstance(value, list):
        return [_with_locs(item, (*path, index), source) for index, item in enumerate(value)]
    return value


def _field_name(path: Path) -> str:
    """`("agents", 0, "retry", "max_attempts")` -> `"retry.max_attempts"`."""
    names: list[str] = []
    while path and isinstance(path[-1], int):
        path = path[:-1]
    for part in reversed(path):
        if isinstance(part, int):
            break
        names.append(part)
    return ".".join(reversed(names)) or "item"


_SINGULAR = {"agents": "agent", "tools": "tool", "states": "state"}


def _describe(path: Path, data: Any) -> str:
    """How to name the mapping at `path` in a message: `agent 'writer_agent'`, `'retry'`."""
    if not path:
        return "the pipeline"
    if not isinstance(path[-1], int):
        return f"'{_field_name(path)}'"
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    kind = _SINGULAR.get(str(path[-2]), "item") if len(path) > 1 else "item"
    if isinstance(node, dict) and isinstance(node.get("id"), str):
        return f"{kind} '{node['id']}'"
    return f"{kind} {path[-1] + 1} of '{_field_name(path[:-1])}'"


def _diagnostic(error: ErrorDetails, parsed: Parsed) -> Diagnostic:
    source = parsed.source
    path: Path = tuple(part for part in error["loc"] if isinstance(part, int | str))
    kind = error["type"]
    given = error.get("input")
    ctx = error.get("ctx") or {}
    field = _field_name(path)
    if kind == "missing":
        loc = source.key(path[:-1]) if path[:-1] else Loc(file=source.file, line=1, column=1)
        message = f"{_describe(path[:-1], parsed.data)} is missing the required key '{path[-1]}'"
    else:
        loc = source.value(path)
        if kind == "string_pattern_mismatch" and ctx.get("pattern") == IDENTIFIER_PATTERN:
            suggestion = suggest_identifier(str(given))
            hint = f" (try '{suggestion}')" if suggestion else ""
            what = "" if field.endswith("id") else f" for '{field}'"
            message = (
                f"'{given}' is not a valid id{what}: ids must match "
                f"[a-z][a-z0-9_]* because they become Python identifiers{hint}"
            )
        elif kind == "literal_error":
            expected = str(ctx.get("expected", "")).replace(" or ", ",")
            choices = [choice.strip(" '") for choice in expected.split(",")]
            message = (
                f"'{field}' must be {ctx.get('expected')}, got '{given}'"
                f"{did_you_mean(str(given), choices)}"
            )
        elif kind in _BOUNDS:
            op, bound = _BOUNDS[kind], next(iter(ctx.values()), "?")
            message = f"'{field}' must be {op} {bound}, got {given}"
        else:
            message = f"'{field}': {error['msg']}"
    return Diagnostic(loc.file, loc.line, loc.column, message)


_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}
