"""`agentflow run --executor local|ray --ray-address ADDR --ray-model-calls N` (docs/scale.md).

`--executor local` runs every invocation in this process, whatever the pipeline
says; `--executor ray` makes Ray the default (`defaults.executor`), agents that
say `executor: local` staying here; without the option the pipeline decides.
Ray is imported only when some agent runs on it. The actors rebuild the run's
pipeline and model from what is pickled here: the YAML's absolute path (each
actor compiles it as `agentflow run` did) and the model choice's plain options.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CannotStartError
from ..pipeline import CompiledPipeline
from .compiled_loader import compile_and_import

if TYPE_CHECKING:  # the engine and the models load with the run, not with the parser
    from ..engine.invocation import InvocationExecutor
    from ..models.base import Model

__all__ = [
    "add_executor_options",
    "build_executor",
    "load_for_actor",
    "model_choice",
    "model_for_actor",
    "resume_executor",
    "start_executor",
]


def add_executor_options(run: argparse.ArgumentParser, positive: Any) -> None:
    """Add the executor options to `agentflow run`'s parser."""
    run.add_argument(
        "--executor",
        choices=["local", "ray"],
        default=None,
        help=(
            "where agent invocations run: local (all in this process) or ray (Ray is the "
            "default; agents with executor: local stay here); default: the pipeline's"
        ),
    )
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster to join (ray start --head prints it); default: a local one",
    )
    run.add_argument(
        "--ray-model-calls",
        type=positive,
        metavar="N",
        help=(
            "with Ray: at most N model calls at once on the cluster (the cluster needs the "
            "custom resource agentflow_model_calls; a local cluster gets N of it)"
        ),
    )


def _ray_agents(args: argparse.Namespace, compiled: CompiledPipeline) -> list[str]:
    if args.executor == "local":
        return []
    fallback = args.executor or compiled.spec.defaults.executor
    return [a.id for a in compiled.spec.agents if (a.executor or fallback) == "ray"]


def build_executor(
    args: argparse.Namespace,
    compiled: CompiledPipeline,
    pipeline_path: Path,
    model_choice: dict[str, Any],
) -> InvocationExecutor | None:
    """The run's executor: `LocalExecutor` for `--executor local`, None when every agent
    runs here anyway (no Ray import), else a `RayExecutor` (the run enters it: `async with`).

    Raises:
        CannotStartError: some agent runs on Ray and the `ray` extra is not installed,
            or a Ray option was given with `--executor local`.
    """
    remote = _ray_agents(args, compiled)
    if args.executor == "local" and (args.ray_address or args.ray_model_calls):
        raise CannotStartError(
            "--ray-address / --ray-model-calls need --executor ray (or a pipeline whose "
            "agents say executor: ray); drop them or --executor local"
        )
    if args.executor == "local":  # every agent here, whatever the pipeline says
        from ..executors.local import LocalExecutor

        return LocalExecutor()
    if not remote:
        if args.ray_address or args.ray_model_calls:
            raise CannotStartError(
                "--ray-address / --ray-model-calls: no agent of this pipeline runs on Ray; "
                "add --executor ray (or executor: ray in its YAML)"
            )
        return None
    try:
        from ..executors.ray_executor import RayExecutor
    except ImportError as exc:
        raise CannotStartError(
            f"agents {', '.join(remote)} run on Ray (executor: ray), but Ray cannot be "
            f"imported ({exc}); install it with pip install 'agentflow[ray]', or run them "
            "here with --executor local"
        ) from None
    return RayExecutor(
        compiled,
        functools.partial(load_for_actor, str(pipeline_path.resolve())),
        model_factory=functools.partial(model_for_actor, model_choice),
        address=args.ray_address,
        default="ray" if args.executor == "ray" else None,
        max_model_calls=args.ray_model_calls,
    )


def start_executor(executor: object, args: argparse.Namespace) -> None:
    """Connect a Ray executor to its cluster now, on the main thread, before the run
    (a precondition: a cluster that cannot be reached refuses the run, exit 2).

    Raises:
        CannotStartError: Ray could not start or reach `--ray-address`.
    """
    start = getattr(executor, "start", None)
    if start is None:
        return
    try:
        start()
    except Exception as exc:
        where = f"the Ray cluster at {args.ray_address}" if args.ray_address else "a local Ray"
        first = (str(exc).splitlines() or [""])[0]
        raise CannotStartError(f"cannot start {where}: {type(exc).__name__}: {first}") from None


def model_choice(args: argparse.Namespace, pipeline_path: Path, model: Model) -> dict[str, Any]:
    """The plain options that rebuild, in an actor, the model `agentflow run` chose (the
    kind it resolved to: `auto` is decided once, here)."""
    if args.replay:
        return {"model": "replay", "cassette": str(Path(args.replay).resolve())}
    kind = model.name if model.name in ("replay", "dry-run") else "anthropic"
    cassette = (
        Path(args.cassette) if args.cassette else pipeline_path.with_suffix(".cassette.jsonl")
    )
    return {
        "model": kind,
        "cassette": str(cassette.resolve()),
        "fail_first": args.fail_first,
        "items": 3 if args.items is None else args.items,
        "routes": dict(args.route),
        "prompt_caching": not getattr(args, "no_prompt_cache", False),
    }


def resume_executor(
    compiled: CompiledPipeline, pipeline_path: Path, settings: dict[str, Any], model: Model
) -> InvocationExecutor | None:
    """`agentflow resume`: the executor the run had, from the options `agentflow run`
    recorded (`resume_settings.py`), started on this (main) thread."""
    args = argparse.Namespace(
        executor=settings.get("executor"),
        ray_address=settings.get("ray_address"),
        ray_model_calls=settings.get("ray_model_calls"),
    )
    if settings.get("replay"):
        choice: dict[str, Any] = {"model": "replay", "cassette": settings["replay"]}
    else:
        items = settings.get("items")
        choice = {
            "model": model.name if model.name in ("replay", "dry-run") else "anthropic",
            "cassette": settings.get("cassette"),
            "fail_first": int(settings.get("fail_first") or 0),
            "items": 3 if items is None else int(items),
            "routes": settings.get("routes") or {},
            "prompt_caching": bool(settings.get("prompt_caching", True)),
        }
    executor = build_executor(args, compiled, pipeline_path, choice)
    start_executor(executor, args)
    return executor


def load_for_actor(path: str) -> tuple[CompiledPipeline, object]:
    """In a Ray actor: compile and import the pipeline as `agentflow run` did."""
    module = compile_and_import(path)
    return module.compiled, module.default_handlers()


def model_for_actor(choice: dict[str, Any], pipeline: CompiledPipeline) -> Model:
    """In a Ray actor: the model `agentflow run` chose, from its plain options."""
    from ..models.factory import choose_model

    options = dict(choice)
    if options.get("cassette") is not None:
        options["cassette"] = Path(options["cassette"])
    target: Any = pipeline.spec if options.get("model") == "replay" else pipeline
    return choose_model(target, replay_log=None, **options)
