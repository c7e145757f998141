"""What `agentflow run` keeps in the run store so `agentflow resume` can re-create the run.

The run's row holds its pipeline path, input and options; `options["resume"]` adds
what the run's model was made from (`settings`): the model kind it ran on, the
cassette or recording it replayed, the dry-run switches, prompt caching and the
rate limits. Paths are absolute, so a resume works from another directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["settings"]


def settings(args: argparse.Namespace, model_name: str) -> dict[str, Any]:
    """The resume settings of an `agentflow run` with `args` whose model is `model_name`."""
    pipeline = Path(args.pipeline)
    cassette = Path(args.cassette) if args.cassette else pipeline.with_suffix(".cassette.jsonl")
    return {
        "pipeline": str(pipeline.resolve()),
        "model": model_name,
        "cassette": str(cassette.resolve()),
        "replay": str(Path(args.replay).resolve()) if args.replay else None,
        "fail_first": args.fail_first,
        "items": args.items,
        "routes": {router: list(cases) for router, cases in args.route},
        "prompt_caching": not getattr(args, "no_prompt_cache", False),
        "concurrency": args.concurrency,
        "seed": args.seed,
        "max_model_calls": getattr(args, "max_model_calls", None),
        "max_rpm": getattr(args, "max_rpm", None),
        "max_tpm": getattr(args, "max_tpm", None),
        # where invocations ran (docs/scale.md): a resume runs them there again
        "executor": getattr(args, "executor", None),
        "ray_address": getattr(args, "ray_address", None),
        "ray_model_calls": getattr(args, "ray_model_calls", None),
    }
