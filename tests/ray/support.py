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
    """The run's events up to order, timestamps, seq and hashes (the seal's included),
    and how a turn's streamed text was cut into `model_text` batches (every ~200 ms:
    timing): each turn's batches count as one event with the whole text."""
    texts: dict[tuple[Any, ...], str] = {}
    counted: Counter[str] = Counter()
    for e in events:
        if e.kind.value == "model_text":
            key = (e.agent, e.item, e.attempt, e.payload["turn"])
            texts[key] = texts.get(key, "") + e.payload["text"]
            continue
        payload = _unhashed(e.payload)
        if e.kind.value in ("log_sealed", "run_finished"):
            payload.pop("events", None)
        counted[
            json.dumps([e.kind.value, e.agent, e.item, e.attempt, payload], sort_keys=True)
        ] += 1
    for (agent, item, attempt, turn), text in texts.items():
        counted[json.dumps(["model_text", agent, item, attempt, {"turn": turn, "text": text}])] += 1
    return counted


def _unhashed(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != "sha256"}
