"""The JSON Schema of the pipeline DSL, for editors (committed as docs/pipeline.schema.json).

It is generated from the IR models, which mirror the DSL key for key; source
locations (`loc`) are excluded. `agentflowc --schema` prints it.
"""

from __future__ import annotations

import json
from typing import Any

from agentflow.runtime.spec import PipelineSpec

__all__ = ["SCHEMA_DIALECT", "pipeline_json_schema", "schema_text"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


_TYPE_TEXT = r"^\s*((list|optional)\s*\[\s*)*(str|int|float|bool)(\s*\])*\s*$"

_SHAPE: dict[str, Any] = {
    "description": "A data shape: field name -> field type (docs/dsl.md, 'Typed data').",
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_]*$"},
    "additionalProperties": {"$ref": "#/$defs/FieldType"},
}
_FIELD_TYPE: dict[str, Any] = {
    "description": (
        "str, int, float, bool, list[T], optional[T], or a mapping: {type: ...}, "
        "{enum: [...]}, {type: list, items: ...}, {type: object, fields: {...}}; any "
        "mapping may add description and optional: true."
    ),
    "anyOf": [
        {"type": "string", "pattern": _TYPE_TEXT},
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string"},
                "enum": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "items": {"anyOf": [{"$ref": "#/$defs/FieldType"}, {"$ref": "#/$defs/Shape"}]},
                "fields": {"$ref": "#/$defs/Shape"},
                "description": {"type": "string"},
                "optional": {"type": "boolean"},
            },
        },
    ],
}


_ROUTE_CASE: dict[str, Any] = {
    "description": "An agent id, end or abort; or a mapping with target, max_iterations, "
    "on_exhausted.",
    "anyOf": [
        {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        {"$ref": "#/$defs/RouteCase"},
    ],
}


def _yaml_form(generated: dict[str, Any]) -> None:
    """Describe the keys as written in YAML where the IR differs: shapes are `name: type`
    mappings, a route case may be its target alone, and the compiler fills
    `implicit_state_machine` (state_machine is optional)."""
    defs = generated["$defs"]
    dispatch = defs["DispatchSpec"]["properties"]
    dispatch["cases"]["additionalProperties"] = _ROUTE_CASE
    dispatch["default"]["anyOf"][0] = _ROUTE_CASE
    for name in ("FieldSpec", "NamedField", "ShapeSpec"):
        defs.pop(name, None)
    defs["Shape"], defs["FieldType"] = _SHAPE, _FIELD_TYPE
    shape_ref = {"$ref": "#/$defs/Shape"}
    generated["properties"]["input"] = shape_ref
    defs["AgentSpec"]["properties"]["output"] = shape_ref
    generated["properties"].pop("implicit_state_machine", None)
    generated["required"] = [key for key in generated["required"] if key != "state_machine"]


def pipeline_json_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline YAML file, as a dict."""
    generated = PipelineSpec.model_json_schema()
    generated.pop("title", None)
    generated.pop("description", None)
    _yaml_form(generated)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "agentflow pipeline",
        "description": (
            "A multi-agent pipeline for agentflowc (see docs/dsl.md). The compiler also "
            "runs semantic checks that a schema cannot express (references, state and "
            "dispatch graphs, prompt templates)."
        ),
        **generated,
    }


def schema_text() -> str:
    """The schema as stable, indented JSON text ending in a newline."""
    return json.dumps(pipeline_json_schema(), indent=2, ensure_ascii=False) + "\n"
