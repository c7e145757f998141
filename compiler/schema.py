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


def pipeline_json_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline YAML file, as a dict."""
    generated = PipelineSpec.model_json_schema()
    generated.pop("title", None)
    generated.pop("description", None)
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
