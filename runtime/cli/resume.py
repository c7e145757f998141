"""`agentflow resume RUN`: continue an interrupted run from the run store (docs/resume.md).

The run is re-created from its `runs` row: the pipeline file it ran (compiled
again; a changed source is refused unless `--allow-changed`), its input, and the
model it ran on with that model's settings (`resume_settings.py`). The run's
JSONL export is repaired from the store if it lags, then the run goes on
(`engine/resume.py`): what was committed is served from the store, the rest runs.
A run that finished, or that a live process still owns (unless `--force`), is
refused with exit 2 before anything is touched.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack, redirect_stdout
from pathlib import Path
from typing import Any

import trio

from ..errors import AgentflowError
from ..models.base import Model
from ..pipeline import CompiledPipeline
from ..store import RunNotFoundError, RunRecord, RunStore
from .commands import (
    UsageError,
    _print_output,
    _print_summary,
    _start_ui,
    _wait_for_ctrl_c,
    acquire_log_lock,
    final_output,
)
from .compiled_loader import CompiledModule, compile_and_import
from .executor_options import resume_executor
from .log_lock import LogLock
from .store_options import default_log_path, open_store_for_reading

__all__ = ["add_resume_parser", "cmd_resume"]


def add_resume_parser(
    sub: Any,
    store_options: Callable[[argparse.ArgumentParser], None],
    epilog: str,
    port: Callable[[str], int],
) -> None:
    """The `resume` subcommand's arguments (`port`: the `--port` type `run` uses)."""
    resume = sub.add_parser(
        "resume",
        help="continue an interrupted run (crashed, cancelled, error, waiting) from the run store",
        epilog=epilog,
    )
    resume.add_argument("run", help="the run id (or a prefix naming one run)")
    resume.add_argument(
        "--allow-changed",
        action="store_true",
        help="resume even though the pipeline's source changed since the run started",
    )
    resume.add_argument(
        "--force",
        action="store_true",
        help="take over a run whose owner process still looks alive (it is fenced out)",
    )
    resume.add_argument("--output", metavar="FILE", help="also write the final output to FILE")
    resume.add_argument("--no-ui", action="store_true", help="do not start the web UI")
    resume.add_argument("--host", default="127.0.0.1", help="UI bind address (default 127.0.0.1)")
    resume.add_argument("--port", type=port, default=4000, help="UI port (default 4000; 0: any)")
    resume.add_argument("--json", action="store_true", help="print events as JSON lines")
    resume.add_argument("--quiet", action="store_true", help="print only the summary")
    store_options(resume)


def _pipeline_path(record: RunRecord, settings: dict[str, Any]) -> Path:
    recorded = settings.get("pipeline") or record.pipeline_path
    if not recorded:
        raise UsageError(
            f"run {record.id} has no pipeline file recorded (it was not started by "
            "agentflow run); resume it from your app with resume_run(...)"
        )
    path = Path(recorded)
    if not path.is_file():
        raise UsageError(f"run {record.id} ran {path}, which is gone; restore it to resume the run")
    return path


def _model(compiled: CompiledPipeline, record: RunRecord, settings: dict[str, Any]) -> Model:
    """The run's model, made again as `agentflow run` made it."""
    from ..models.factory import ModelChoice, choose_model

    kinds: dict[str, ModelChoice] = {
        "anthropic": "anthropic",
        "replay": "replay",
        "dry-run": "dry-run",
    }
    kind = kinds.get(str(settings.get("model") or record.model), "auto")
    replay = settings.get("replay")
    if replay:
        return choose_model(compiled.spec, model="replay", cassette=Path(replay), replay_log=None)
    cassette = settings.get("cassette")
    items = settings.get("items")
    return choose_model(
        compiled,
        model=kind,
        cassette=Path(cassette) if cassette else None,
        replay_log=None,
        fail_first=int(settings.get("fail_first") or 0),
        items=3 if items is None else int(items),
        routes=settings.get("routes") or {},
        prompt_caching=bool(settings.get("prompt_caching", True)),
        max_requests_per_minute=settings.get("max_rpm"),
        max_tokens_per_minute=settings.get("max_tpm"),
    )


def cmd_resume(args: argparse.Namespace) -> int:
    """`agentflow resume`: check the run can be resumed, re-create it, run it to its end."""
    from ..engine.resume import FINISHED, check_resumable

    store = open_store_for_reading(args)
    try:
        try:
            record = store.run(args.run)
        except RunNotFoundError as exc:
            raise UsageError(str(exc)) from None
        if record.status in FINISHED:  # nothing to run; its log may need completing
            return _complete_finished_log(store, record)
        settings = (
            dict(record.options.get("resume") or {}) if isinstance(record.options, dict) else {}
        )
        module = compile_and_import(_pipeline_path(record, settings))
        for warning in module.warnings:
            print(warning, file=sys.stderr)
        # Refused before anything is touched (open_resume checks again, under the lease).
        check_resumable(
            record,
            module.compiled.source_sha256,
            allow_changed=args.allow_changed,
            force=args.force,
        )
        try:
            model = _model(module.compiled, record, settings)
        except AgentflowError as exc:  # no key, no cassette: the run cannot go on
            raise UsageError(str(exc)) from None
        log_path = Path(record.jsonl_path) if record.jsonl_path else default_log_path(record.id)
        executor = resume_executor(  # Ray, if the run ran there (or its YAML says so)
            module.compiled, _pipeline_path(record, settings), settings, model
        )
        run = functools.partial(trio.run, restrict_keyboard_interrupt_to_checkpoints=True)
        go = functools.partial(
            _resume_async, args, store, record, module, model, settings, log_path,
            executor=executor,
        )  # fmt: skip
        if args.json:  # stdout carries only the events' JSON lines
            with redirect_stdout(sys.stderr):
                return run(go, sys.__stdout__ or sys.stdout)
        return run(go, sys.stdout)
    finally:
        store.close()


def _complete_finished_log(store: RunStore, record: RunRecord) -> int:
    """`agentflow resume` on a finished run: seal / repair its log if a kill left it
    broken (exit 0, saying what was done), else refuse (exit 2): nothing to resume."""
    from ..engine.resume import ResumeRefused, complete_finished_log

    log_path = Path(record.jsonl_path) if record.jsonl_path else default_log_path(record.id)
    lock = LogLock(log_path)  # no other process writes the log while it is completed
    acquire_log_lock(lock)
    try:
        done = trio.run(complete_finished_log, store, record, log_path)
    except ResumeRefused as exc:
        raise UsageError(str(exc)) from None
    finally:
        lock.release()
    if not done:
        raise UsageError(
            f"run {record.id} finished ({record.status}); only an unfinished run (running, "
            "cancelled, error, waiting) can be resumed. Start a new run with agentflow run"
        )
    print(
        f"run {record.id} had finished ({record.status}); nothing to run. Its log was "
        f"incomplete (its process was killed as it ended): {'; '.join(done)}"
    )
    return 0


async def _resume_async(
    args: argparse.Namespace,
    store: RunStore,
    record: RunRecord,
    module: CompiledModule,
    model: Model,
    settings: dict[str, Any],
    log_path: Path,
    events_out: Any,
    *,
    executor: Any = None,
) -> int:
    from ..engine.resume import open_resume
    from ..engine.runner import RunOptions
    from ..sinks.console import ConsoleSink

    compiled = module.compiled
    human = sys.stderr if args.json else sys.stdout
    sinks = [] if args.quiet else [ConsoleSink(stream=events_out, json=args.json)]
    options = RunOptions(
        max_concurrency=settings.get("concurrency"),
        seed=settings.get("seed"),
        max_model_calls=settings.get("max_model_calls"),
        keep_history=not args.no_ui,
        audit_log=log_path,
        executor=executor,
    )
    lock = LogLock(log_path)
    acquire_log_lock(lock)
    try:
        resumption = await open_resume(
            compiled, store, record.id, sinks=sinks, options=options,
            allow_changed=args.allow_changed, force=args.force,
        )  # fmt: skip
        hub = resumption.hub
        async with trio.open_nursery() as nursery:
            shutdown = trio.Event()
            ui_url = None
            if not args.no_ui:
                ui_url = await _start_ui(nursery, hub, compiled, args, shutdown, model.name)
            if not args.quiet:
                print(f"resuming run {record.id} ({record.status}) -> audit log {log_path}")
                if ui_url is not None:
                    print(f"observability UI -> {ui_url}")
            async with AsyncExitStack() as stack:
                if hasattr(model, "__aenter__"):
                    await stack.enter_async_context(model)  # type: ignore[arg-type]
                if hasattr(executor, "__aenter__"):  # Ray: started already, stopped after
                    await stack.enter_async_context(executor)
                result = await resumption.run(handlers=module.default_handlers(), model=model)
            output = final_output(result) if result.status != "waiting" else None
            _print_summary(result, log_path, hub)
            stats = resumption.stats
            changed = stats.request_mismatches
            print(
                f"resume: served from the run store: {stats.steps_served} invocation(s), "
                f"{stats.turns_served} model turn(s), {stats.tools_served} tool result(s); "
                f"run live: {stats.live_invocations} invocation(s), {stats.live_turns} model "
                f"turn(s)" + (f" ({changed} with a changed request)" if changed else ""),
                file=human,
            )
            _print_output(output, args.output, human)
            if ui_url is not None:
                await _wait_for_ctrl_c("ctrl+c to exit")
            shutdown.set()
    finally:
        lock.release()
    if result.status == "waiting":
        return 3  # a human step waits for `agentflow answer`
    return 0 if result.ok else 1
