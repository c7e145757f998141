"""What the Ray tests and the benchmark hand the actors: module-level, so picklable."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.base import Model
from agentflow.runtime.pipeline import CompiledPipeline

PIPELINES = Path(__file__).parent / "pipelines"
KEY = "sk-ant-ray-test"


def load(name: str) -> tuple[CompiledPipeline, object]:
    """Compile `pipelines/<name>.yaml` and import it: the pipeline and its DefaultHandlers."""
    module = compile_and_import(PIPELINES / f"{name}.yaml")
    return module.compiled, module.default_handlers()


def anthropic_at(base_url: str, pipeline: CompiledPipeline) -> Model:
    """Live Claude's client, pointed at the fake API (real HTTP)."""
    return AnthropicModel(api_key=KEY, base_url=base_url, backoff_base_s=0.01)


def event_multiset(events: list[Any]) -> Counter[str]:
    """The run's events up to order, timestamps, seq and hashes (the seal's included)."""
    return Counter(
        json.dumps(
            [e.kind.value, e.agent, e.item, e.attempt, _unhashed(e.payload)],
            sort_keys=True,
            default=str,
        )
        for e in events
    )


def _unhashed(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != "sha256"}
