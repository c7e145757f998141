"""Tool schemas for structured outputs: a QA verdict, fan-out work items, a typed output.

A model gives a structured answer by calling a tool whose `input_schema` is
the JSON Schema of a pydantic model (`QAVerdict`, `WorkItems`, or a typed
agent's generated output model, carried by the request). The schema is
generated from the model, then made self-contained: pydantic puts nested
models in `$defs` and points at them with `$ref`; the Messages API takes
plain inline schemas most reliably, so refs are inlined and `$defs` dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ..agents import QAVerdict, WorkItems
from .base import STRUCTURED_TOOL_NAMES, AnswerKind, OutputKind, ToolSchema

__all__ = ["STRUCTURED_MODELS", "inline_schema", "structured_tool", "structured_tool_choice"]

STRUCTURED_MODELS: Mapping[OutputKind, type[BaseModel]] = {
    "verdict": QAVerdict,
    "items": WorkItems,
}

_DESCRIPTIONS: Mapping[AnswerKind, str] = {
    "verdict": (
        "Submit your review verdict. Call this exactly once, when you have finished "
        "reviewing: passed=true if the work is acceptable as it is, otherwise "
        "passed=false with one issue per problem (blocking issues must be fixed)."
    ),
    "items": (
        "Submit the work items to dispatch. Call this exactly once, when you are done: "
        "one entry per independent unit of work."
    ),
    "output": (
        "Submit your answer. Call this exactly once, when you are done, with input "
        "that matches the schema: it is your whole answer."
    ),
}


def inline_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return `schema` with every local `$ref` replaced by its `$defs` entry.

    Raises:
        ValueError: the schema is recursive (a model that contains itself).
    """
    defs: Mapping[str, Any] = schema.get("$defs", {})

    def resolve(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in seen:
                    raise ValueError(f"cannot inline recursive schema reference {ref!r}")
                merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
                return resolve(merged, seen | {name})
            return {k: resolve(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    result: dict[str, Any] = resolve(dict(schema), frozenset())
    return result


def structured_tool(output: AnswerKind, schema: Mapping[str, Any] | None = None) -> ToolSchema:
    """The tool a model calls to give a structured `output` ("verdict", "items", "output").

    `schema` is the typed answer's JSON schema (required for "output", ignored otherwise).

    Raises:
        KeyError: `output` is "text", which has no structured tool.
        ValueError: `output` is "output" and `schema` is None.
    """
    if output == "output":
        if schema is None:
            raise ValueError("a typed answer ('output') needs its JSON schema")
        input_schema = inline_schema(schema)
    else:
        input_schema = inline_schema(STRUCTURED_MODELS[output].model_json_schema())
    return ToolSchema(
        name=STRUCTURED_TOOL_NAMES[output],
        description=_DESCRIPTIONS[output],
        input_schema=input_schema,
    )


def structured_tool_choice(output: AnswerKind, *, has_other_tools: bool) -> dict[str, Any] | None:
    """The `tool_choice` for a turn: None (the API's "auto") for plain text.

    Without other tools the structured tool is forced by name. With other tools
    the model must call *some* tool every turn ("any"), so the runner's loop
    ends exactly when the structured tool is called, never on loose text.
    """
    if output == "text":
        return None
    if has_other_tools:
        return {"type": "any"}
    return {"type": "tool", "name": STRUCTURED_TOOL_NAMES[output]}
