"""Choosing the model of a run, and saying which one it is.

`choose_model(..., model="auto")` picks live Claude when `ANTHROPIC_API_KEY`
is set, else the offline replay of the cassette next to the pipeline
(`pipelines/x.yaml` -> `pipelines/x.cassette.jsonl`). `describe_model` is the
one line the CLI banner and UI show, so nobody mistakes a replay for Claude.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ..errors import ModelError
from ..pipeline import CompiledPipeline
from ..spec import PipelineSpec
from .anthropic import AnthropicModel
from .base import Model
from .pricing import PriceTable

__all__ = ["ModelChoice", "choose_model", "default_cassette", "describe_model"]

ModelChoice = Literal["auto", "replay", "anthropic"]


def default_cassette(pipeline: PipelineSpec | CompiledPipeline) -> Path | None:
    """`<yaml stem>.cassette.jsonl` next to the pipeline's source, if the source is known."""
    if isinstance(pipeline, CompiledPipeline):
        source = pipeline.source_path or (pipeline.spec.loc.file if pipeline.spec.loc else "")
    else:
        source = pipeline.loc.file if pipeline.loc else ""
    if not source:
        return None
    path = Path(source)
    return path.with_name(f"{path.stem}.cassette.jsonl")


def choose_model(
    spec: PipelineSpec | CompiledPipeline,
    *,
    model: ModelChoice = "auto",
    cassette: Path | None = None,
    replay_log: Path | None = None,
    prices: PriceTable | None = None,
) -> Model:
    """Build the model a run uses.

    Args:
        spec: the pipeline (its `defaults.base_url` / `timeout_s`, and its source
            path to find the default cassette).
        model: "anthropic" (live), "replay" (offline), or "auto": live if
            $ANTHROPIC_API_KEY is set, else replay.
        cassette: the replay cassette; default `<yaml stem>.cassette.jsonl`.
        replay_log: a run's audit log to replay instead (it is a cassette too);
            takes precedence over `cassette`.
        prices: the price table for live runs.

    Returns:
        An unopened model: enter it with `async with` (AnthropicModel needs it).

    Raises:
        ModelError: live Claude was asked for without an API key, or replay has
            no cassette to read.
    """
    pipeline_spec = spec.spec if isinstance(spec, CompiledPipeline) else spec
    if model == "auto":
        model = "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "replay"
    if model == "anthropic":
        return AnthropicModel(
            base_url=os.environ.get("ANTHROPIC_BASE_URL") or pipeline_spec.defaults.base_url,
            timeout_s=pipeline_spec.defaults.timeout_s,
            prices=prices,
        )
    path = replay_log or cassette or default_cassette(spec)
    if path is None:
        raise ModelError(
            "offline replay needs a cassette, and this pipeline's source file is unknown: "
            "pass --cassette PATH (or --replay RUN.jsonl), or set ANTHROPIC_API_KEY to run live"
        )
    if not path.is_file():
        raise ModelError(
            f"offline replay: cassette {path} does not exist. Record one with a live run "
            "(set ANTHROPIC_API_KEY; the run's audit log is a cassette) and pass it with "
            "--cassette, or replay a previous run with --replay RUN.jsonl"
        )
    from .replay import ReplayModel

    return ReplayModel(path)


def describe_model(model: Model) -> str:
    """One line for banners: which model answers, and whether it is live."""
    if model.name == "replay":
        path = getattr(model, "path", None) or getattr(model, "cassette", None)
        return f"OFFLINE REPLAY of {path} — no model is called"
    if isinstance(model, AnthropicModel):
        return f"live Claude via {model.base_url}"
    return f"{model.name} model ({type(model).__name__})"
