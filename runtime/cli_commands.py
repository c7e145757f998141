"""The `agentflow` subcommands (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from .compiled_loader import CompiledModule, compile_and_import, load_for_inspection
from .errors import AgentflowError
from .hub import EventHub
from .models.base import Model
from .pipeline import CompiledPipeline, derive_transitions
from .run_ids import new_run_id

__all__ = ["UsageError", "cmd_run", "cmd_serve", "cmd_verify"]


class UsageError(AgentflowError):
    """Raised for a command-line argument that cannot be used (a bad file, a bad value)."""


def _read_input(args: argparse.Namespace) -> Any:
    """The run input: `--input TEXT|@FILE` or the positional topic; JSON if it parses.

    Raises:
        UsageError: the input file cannot be read as UTF-8 text.
    """
    raw: str | None = args.input_text if args.input_text is not None else args.topic
    if raw is None:
        return ""
    if raw.startswith("@"):
        path = Path(raw[1:])
        try:
            raw = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not input
        except UnicodeDecodeError as exc:
            raise UsageError(f"--input @{path}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise UsageError(f"--input @{path}: cannot read it: {exc.strerror}") from None
    stripped = raw.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return raw


def _default_log_path(compiled: CompiledPipeline) -> Path:
    """`<pipeline name>-run.jsonl` in the current directory, the name made file-safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", compiled.spec.name).strip("-.") or "pipeline"
    return Path(f"{safe}-run.jsonl")


def _choose_model(
    args: argparse.Namespace, pipeline_path: Path, compiled: CompiledPipeline
) -> Model:
    from .models.factory import choose_model

    cassette = (
        Path(args.cassette) if args.cassette else pipeline_path.with_suffix(".cassette.jsonl")
    )
    if args.replay:
        return choose_model(
            compiled.spec, model="replay", cassette=Path(args.replay), replay_log=None
        )
    return choose_model(
        compiled.spec,
        model=args.model,
        cassette=cassette,
        replay_log=None,
        fail_first=args.fail_first,
    )


def cmd_run(args: argparse.Namespace) -> int:
    """`agentflow run`: compile in memory, run with sinks and (optionally) the UI."""
    pipeline_path = Path(args.pipeline)
    compiled_module = compile_and_import(pipeline_path)
    for warning in compiled_module.warnings:
        print(warning, file=sys.stderr)
    compiled = compiled_module.compiled
    run_input = _read_input(args)
    model = _choose_model(args, pipeline_path, compiled)
    log_path = Path(args.jsonl) if args.jsonl else _default_log_path(compiled)
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")  # one run per audit log: start it empty
    except OSError as exc:
        raise UsageError(f"audit log {log_path}: cannot write it: {exc.strerror}") from None
    return trio.run(_run_async, args, compiled_module, model, log_path, run_input)


def _print_banner(model: Model, log_path: Path, ui_url: str | None) -> None:
    from .models.factory import describe_model

    description = describe_model(model)
    if model.name in ("replay", "dry-run"):
        print("=" * 72)
        print(f"  {description}")
        if os.environ.get("ANTHROPIC_API_KEY"):
            print("  For live Claude, drop --model/--replay (or use --model anthropic).")
        else:
            print("  Set ANTHROPIC_API_KEY to run against live Claude.")
        print("=" * 72)
    else:
        print(f"model -> {description}")
    if ui_url is not None:
        print(f"observability UI -> {ui_url}")
    print(f"audit log -> {log_path}")


async def _run_async(
    args: argparse.Namespace,
    compiled_module: CompiledModule,
    model: Model,
    log_path: Path,
    run_input: Any,
) -> int:
    from .runner import RunOptions, run_pipeline
    from .sinks.console import ConsoleSink
    from .sinks.file import FileSink

    compiled = compiled_module.compiled
    run_id = new_run_id()
    sinks: list[Any] = [FileSink(log_path)]
    if not args.quiet:
        sinks.append(ConsoleSink(json=args.json))
    hub = EventHub(
        run_id=run_id,
        pipeline_hash=compiled.source_sha256,
        sinks=sinks,
        keep_history=not args.no_ui,
    )
    options = RunOptions(
        run_id=run_id,
        max_concurrency=args.concurrency,
        seed=args.seed,
        keep_history=not args.no_ui,
    )
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        ui_url = None
        if not args.no_ui:
            ui_url = await _start_ui(nursery, hub, compiled, args, shutdown, model.name)
        _print_banner(model, log_path, ui_url)
        async with AsyncExitStack() as stack:
            if hasattr(model, "__aenter__"):
                await stack.enter_async_context(model)  # type: ignore[arg-type]
            async with hub.running():
                result = await run_pipeline(
                    compiled,
                    run_input,
                    handlers=compiled_module.default_handlers(),
                    model=model,
                    hub=hub,
                    options=options,
                )
        _print_summary(result, log_path)
        if args.record:
            _write_cassette(log_path, Path(args.record))
        if args.replay:
            _report_replay(Path(args.replay), log_path)
        if ui_url is not None:
            print("ctrl+c to exit")
            await _wait_for_ctrl_c()
        shutdown.set()
    return 0 if result.ok else 1


async def _start_ui(
    nursery: trio.Nursery,
    hub: EventHub,
    compiled: CompiledPipeline,
    args: argparse.Namespace,
    shutdown: trio.Event,
    model_name: str,
) -> str:
    from .ui.server import UiConfig, serve_ui

    config = UiConfig(host=args.host, port=args.port)
    serve = functools.partial(serve_ui, model_name=model_name)
    url: str = await nursery.start(serve, hub, compiled, config, shutdown)
    return url


async def _wait_for_ctrl_c() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _print_summary(result: Any, log_path: Path) -> None:
    usage = result.usage
    counts: dict[str, int] = {}
    for item in result.items:
        counts[item.status] = counts.get(item.status, 0) + 1
    items = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(
        f"run {result.run_id}: {result.status.upper()} in state '{result.final_state}'"
        f" ({items}; {usage.model_calls} model call{'' if usage.model_calls == 1 else 's'}, "
        f"{usage.input_tokens}+{usage.output_tokens} tokens, ${usage.cost_usd:.4f})"
    )
    if result.reason:
        print(f"reason: {result.reason}")
    print(f"audit log -> {log_path} ({result.events} events)")


def _write_cassette(log_path: Path, cassette: Path) -> None:
    """Keep the audit log's model_response events: that is a replay cassette."""
    kept = 0
    with log_path.open(encoding="utf-8") as src, cassette.open("w", encoding="utf-8") as dst:
        for line in src:
            if '"kind":"model_response"' in line:
                dst.write(line)
                kept += 1
    print(f"cassette -> {cassette} ({kept} model responses)")


def _report_replay(recorded: Path, new_log: Path) -> None:
    from .replay_diff import compare_logs

    divergence = compare_logs(recorded, new_log)
    if divergence is None:
        print(f"replay: the run followed the recorded path of {recorded} exactly")
    else:
        print(f"replay: the run departs from {recorded}:\n{divergence}")


def _check_log_matches(log: Path, compiled: CompiledPipeline) -> None:
    """Refuse a log another pipeline wrote; warn when the same pipeline's YAML has changed.

    Raises:
        UsageError: the log is empty, or its run_started names another pipeline.
    """
    try:
        with log.open(encoding="utf-8") as lines:
            first = lines.readline()
    except (OSError, UnicodeDecodeError):
        return  # the caller's own reading reports it
    if not first.strip():
        raise UsageError(f"{log}: empty log: no events to show")
    try:
        event = json.loads(first)
    except json.JSONDecodeError:
        return
    if not isinstance(event, dict) or event.get("kind") != "run_started":
        return
    name = (event.get("payload") or {}).get("pipeline")
    if name is not None and name != compiled.spec.name:
        raise UsageError(
            f"{log} is a run of pipeline '{name}', not of '{compiled.spec.name}' "
            f"({compiled.source_path}); pass the pipeline YAML that run used"
        )
    if event.get("pipeline_hash") not in ("", None, compiled.source_sha256):
        print(
            f"agentflow: warning: {compiled.source_path} has changed since {log} was written "
            "(its source hash differs)",
            file=sys.stderr,
        )


def cmd_verify(args: argparse.Namespace) -> int:
    """`agentflow verify`: hash chain, seq, and transitions against the pipeline's table."""
    from .verify import verify_log

    table = None
    if args.pipeline:
        compiled = load_for_inspection(args.pipeline)  # imports nothing the YAML names
        _check_log_matches(Path(args.log), compiled)
        table = {(s, t): target for s, t, target in derive_transitions(compiled.spec)}
    report = verify_log(Path(args.log), table)
    print(report.render() if hasattr(report, "render") else report)
    return 0 if report.ok else 1


def cmd_serve(args: argparse.Namespace) -> int:
    """`agentflow serve`: the UI over a finished run's audit log, until Ctrl-C."""
    compiled = load_for_inspection(args.pipeline)  # imports nothing the YAML names
    _check_log_matches(Path(args.log), compiled)
    return trio.run(_serve_async, args, compiled)


async def _serve_async(args: argparse.Namespace, compiled: CompiledPipeline) -> int:
    from .ui.server import UiConfig, UiSource, serve_log

    source = UiSource.from_log(Path(args.log), compiled)
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        url = await nursery.start(
            serve_log, source, compiled, UiConfig(host=args.host, port=args.port), shutdown
        )
        print(f"observability UI -> {url}")
        print(f"audit log -> {args.log}")
        print("ctrl+c to exit")
        await _wait_for_ctrl_c()
        shutdown.set()
    return 0
