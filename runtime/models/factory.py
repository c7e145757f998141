"""Choosing the model of a run, and saying which one it is.

`choose_model(..., model="auto")` picks live Claude when `ANTHROPIC_API_KEY`
is set, else the offline replay of the cassette next to the pipeline
(`pipelines/x.yaml` -> `pipelines/x.cassette.jsonl`); `model="dry-run"` gives
synthetic answers. `describe_model` is the one line the CLI banner and UI
show, so nobody mistakes a replay or a dry run for Claude. `anthropic_model`
configures the live model from the pipeline (base URL, timeout, retries);
`model_for_run` is what `run_pipeline(model=None)` uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ..errors import ModelError
from ..pipeline import CompiledPipeline
from ..spec import PipelineSpec
from .anthropic import AnthropicModel
from .base import Model
from .pricing import PriceTable

__all__ = [
    "ModelChoice",
    "NoModelError",
    "anthropic_model",
    "choose_model",
    "default_cassette",
    "describe_model",
    "model_for_run",
]

ModelChoice = Literal["auto", "replay", "anthropic", "dry-run"]


class NoModelError(ModelError):
    """Raised when a run needs a model and none can be chosen (no key, no cassette)."""


def anthropic_model(
    spec: PipelineSpec | CompiledPipeline,
    *,
    prices: PriceTable | None = None,
    prompt_caching: bool = True,
    max_requests_per_minute: int | None = None,
    max_tokens_per_minute: int | None = None,
) -> AnthropicModel:
    """An unopened `AnthropicModel` configured by the pipeline.

    base URL: $ANTHROPIC_BASE_URL, else `defaults.base_url`, else the public API;
    `timeout_s`: `defaults.timeout_s`; `max_retries` (transport retries after the
    first try of each call): `defaults.retry.max_attempts`; rate-limit caps: the
    arguments (the CLI's `--max-rpm` / `--max-tpm`), else
    `defaults.max_requests_per_minute` / `max_tokens_per_minute`.

    Raises:
        ModelError: $ANTHROPIC_API_KEY is not set, or the pipeline's own `base_url`
            names a host other than Anthropic's or this machine's (see
            `_check_pipeline_base_url`).
    """
    defaults = (spec.spec if isinstance(spec, CompiledPipeline) else spec).defaults
    from_env = os.environ.get("ANTHROPIC_BASE_URL")
    if not from_env and defaults.base_url:
        _check_pipeline_base_url(defaults.base_url)
    return AnthropicModel(
        base_url=from_env or defaults.base_url,
        timeout_s=defaults.timeout_s,
        max_retries=defaults.retry.max_attempts,
        prices=prices,
        prompt_caching=prompt_caching,
        max_requests_per_minute=max_requests_per_minute or defaults.max_requests_per_minute,
        max_tokens_per_minute=max_tokens_per_minute or defaults.max_tokens_per_minute,
    )


_TRUSTED_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "api.anthropic.com"})


def _check_pipeline_base_url(url: str) -> None:
    """Refuse a YAML `base_url` that would send the API key to a third party.

    A pipeline file may come from someone else; the key is the user's. The YAML
    may point at Anthropic over https or at this machine (a local proxy or test
    server); anything else (another host, or plain http off this machine) takes
    the user's own `ANTHROPIC_BASE_URL` to confirm it.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    loopback = host in ("localhost", "127.0.0.1", "::1")
    if (loopback or parts.scheme == "https") and (
        host in _TRUSTED_HOSTS or host.endswith(".anthropic.com")
    ):
        return
    raise ModelError(
        f"the pipeline's defaults.base_url ({url}) would send your ANTHROPIC_API_KEY to "
        f"{host or 'an unknown host'}; if you trust it, set ANTHROPIC_BASE_URL={url} "
        "(the environment is yours, the pipeline file may not be)"
    )


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
    fail_first: int = 0,
    items: int = 3,
    routes: Mapping[str, Sequence[str]] | None = None,
    prompt_caching: bool = True,
    max_requests_per_minute: int | None = None,
    max_tokens_per_minute: int | None = None,
) -> Model:
    """Build the model a run uses.

    Args:
        spec: the pipeline (its `defaults.base_url` / `timeout_s` / `retry`, and
            its source path to find the default cassette).
        model: "anthropic" (live), "replay" (offline), "dry-run" (synthetic
            answers, see DryRunModel), or "auto": live if $ANTHROPIC_API_KEY is
            set, else replay.
        cassette: the replay cassette; default `<yaml stem>.cassette.jsonl`.
        replay_log: a run's audit log to replay instead (it is a cassette too);
            takes precedence over `cassette`.
        prices: the price table for live runs.
        fail_first: (dry-run) QA agents fail their first N attempts per item.
        items: (dry-run) how many work items a fan-out agent returns.
        routes: (dry-run) router id -> the cases it takes (see DryRunModel),
            checked against `spec`.
        prompt_caching: (live) mark prompts for Anthropic's prompt cache.
        max_requests_per_minute, max_tokens_per_minute: (live) rate-limit caps over
            the pipeline's `defaults` (see `anthropic_model`).

    Returns:
        An unopened model: enter it with `async with` (AnthropicModel needs it).

    Raises:
        ModelError: live Claude was asked for without an API key, or replay has
            no cassette to read (`NoModelError` when "auto" found neither).
        RouteChoiceError: (dry-run) `routes` names no router of `spec`, or no case of it.
    """
    if model == "dry-run":
        from .dry_run import DryRunModel

        dry_run = DryRunModel(fail_first=fail_first, items=items, routes=routes)
        dry_run.check_routes(spec)
        return dry_run
    auto = model == "auto"
    if auto:
        model = "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "replay"
    if model == "anthropic":
        return anthropic_model(
            spec,
            prices=prices,
            prompt_caching=prompt_caching,
            max_requests_per_minute=max_requests_per_minute,
            max_tokens_per_minute=max_tokens_per_minute,
        )
    path = replay_log or cassette or default_cassette(spec)
    if auto and (path is None or not path.is_file()):
        where = f"no cassette at {path}" if path is not None else "no cassette path"
        raise NoModelError(
            f"no model to run with: no ANTHROPIC_API_KEY and {where}. Set "
            "ANTHROPIC_API_KEY for live Claude, pass --cassette PATH to replay a recording, "
            "or use --model dry-run to walk the pipeline with synthetic answers"
        )
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
    if model.name == "dry-run":
        return "DRY RUN: synthetic answers, no model is called"
    if model.name == "replay":
        path = getattr(model, "path", None) or getattr(model, "cassette", None)
        return f"OFFLINE REPLAY of {path} — no model is called"
    if isinstance(model, AnthropicModel):
        return f"live Claude via {model.base_url}"
    return f"{model.name} model ({type(model).__name__})"


def model_for_run(
    spec: PipelineSpec | CompiledPipeline, default_agents: Sequence[str]
) -> AnthropicModel | None:
    """The model `run_pipeline(model=None)` opens: live Claude when a default agent body runs.

    Args:
        spec: the pipeline (configures the live model, see `anthropic_model`).
        default_agents: the agents whose handler is the default agent body (they run
            from their prompt: `plan.runs_default_body`).

    Returns:
        An unopened AnthropicModel when some agent runs from its prompt and
        $ANTHROPIC_API_KEY is set; None when every agent is the app's own.

    Raises:
        NoModelError: an agent runs from its prompt and no key is set.
    """
    if not default_agents:
        return None
    if os.environ.get("ANTHROPIC_API_KEY"):
        return anthropic_model(spec)
    raise NoModelError(
        f"agent '{default_agents[0]}' runs from its prompt and needs a model, but none was given "
        "(model=None) and ANTHROPIC_API_KEY is not set. Set ANTHROPIC_API_KEY for live "
        "Claude, pass model=ReplayModel(path) to replay a recorded cassette, or "
        "model=DryRunModel() to walk the pipeline with synthetic answers "
        "(agentflow.runtime.models.replay / .dry_run)"
    )
