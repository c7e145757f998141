"""The `agentflow` subcommands (argument parsing lives in main.py).

A run that cannot start (a bad argument, a missing file, an invalid pipeline,
a busy UI port, an audit log another run holds, a run store that cannot be
opened) is refused before any file is touched: every precondition is checked
first, then the audit log is locked, the run is recorded in the run store, the
log is emptied (only a `--jsonl PATH` that already exists has anything in it:
the default log is a new file per run), then the run starts.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio

from ..errors import AgentflowError, CannotStartError
from ..events.hub import EventHub
from ..events.run_ids import new_run_id
from ..models.base import Model
from ..pipeline import CompiledPipeline
from ..store import RunCommitter, RunStore, StoreError, StoreLocation
from .compiled_loader import CompiledModule, compile_and_import, load_for_inspection
from .executor_options import build_executor, model_choice, start_executor
from .history import for_terminal
from .log_lock import LogInUseError, LogLock
from .resume_settings import settings as resume_settings
from .store_options import default_log_path, open_store_for_reading, store_location

if TYPE_CHECKING:
    from ..events.verify import VerifyReport

__all__ = ["UsageError", "acquire_log_lock", "cmd_run", "cmd_serve", "cmd_verify"]


class UsageError(CannotStartError):
    """Raised when a command cannot start: a bad argument, file, port or log (exit 2)."""


def acquire_log_lock(lock: LogLock) -> None:
    """Take the audit log's lock, or refuse the command (exit 2): another live run writes
    the log, or it cannot be opened for writing."""
    try:
        lock.acquire()
    except LogInUseError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"audit log {lock.path}: cannot write it: {exc.strerror}") from None


_NO_INPUT = object()


def _given_input(args: argparse.Namespace) -> Any:
    """The run input given on the command line (`--input TEXT|@FILE` or the positional
    topic; JSON if it parses), or `_NO_INPUT`.

    Raises:
        UsageError: the input file cannot be read as UTF-8 text.
    """
    raw: str | None = args.input_text if args.input_text is not None else args.topic
    if raw is None:
        return _NO_INPUT
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
            return json.loads(stripped, parse_float=_finite_float, parse_constant=_no_constant)
        except json.JSONDecodeError:
            pass  # not JSON: the input is this text
        except _NotRecordable as exc:
            raise UsageError(f"--input: {exc}") from None
        except ValueError as exc:  # int() of more than sys.get_int_max_str_digits() digits
            raise UsageError(f"--input: a number in it is too long ({exc})") from None
        except RecursionError:
            raise UsageError("--input: its JSON nests too deeply to read") from None
    return raw


class _NotRecordable(Exception):
    """A JSON number the audit log could not record as given (NaN, Infinity, 1e999)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotRecordable(f"the number {text[:40]} is out of range for a 64-bit float")
    return value


def _no_constant(name: str) -> Any:
    raise _NotRecordable(f"{name} is not a JSON number; write a finite number or a string")


@dataclass(frozen=True)
class _Recording:
    """What `--replay RUN.jsonl` needs of the recorded run: its `run_started` event."""

    path: Path
    input: Any
    pipeline_hash: str | None
    prompts_sha256: str | None


def _read_recording(path: Path) -> _Recording:
    """The recorded run's input and pipeline hashes, from its first line.

    Raises:
        UsageError: the log cannot be read or does not start with `run_started`.
    """
    try:
        with path.open(encoding="utf-8") as lines:
            first = lines.readline()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"--replay {path}: cannot read it: {reason}") from None
    try:
        event = json.loads(first)
    except json.JSONDecodeError:
        event = None
    if not isinstance(event, dict) or event.get("kind") != "run_started":
        raise UsageError(
            f"--replay {path}: not a run's audit log (its first line is not a run_started "
            "event); pass the JSONL log a run wrote"
        )
    payload = event.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    return _Recording(
        path=path,
        input=payload.get("input", ""),
        pipeline_hash=event.get("pipeline_hash") or None,
        prompts_sha256=payload.get("prompts_sha256"),
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _check_log_path(log_path: Path, args: argparse.Namespace) -> None:
    """The audit log must be a writable file path that is not one of the run's inputs.

    Raises:
        UsageError: the log is a directory, or the cassette or recording being read.
    """
    if log_path.is_dir():
        raise UsageError(f"audit log {log_path}: cannot write it: Is a directory")
    for option, value in (("--replay", args.replay), ("--cassette", args.cassette)):
        if value and _same_file(log_path, Path(value)):
            raise UsageError(
                f"audit log {log_path} is the {option} file this run reads; the run would "
                "empty it first: use --jsonl PATH to write the new run elsewhere"
            )


def _choose_model(
    args: argparse.Namespace, pipeline_path: Path, compiled: CompiledPipeline
) -> Model:
    from ..models.factory import choose_model

    cassette = (
        Path(args.cassette) if args.cassette else pipeline_path.with_suffix(".cassette.jsonl")
    )
    if args.replay:
        return choose_model(
            compiled.spec, model="replay", cassette=Path(args.replay), replay_log=None
        )
    from ..models.dry_run import RouteChoiceError

    routes = dict(args.route)
    try:
        return choose_model(
            compiled,
            model=args.model,
            cassette=cassette,
            replay_log=None,
            fail_first=args.fail_first,
            items=3 if args.items is None else args.items,
            routes=routes,
            prompt_caching=not getattr(args, "no_prompt_cache", False),
            max_requests_per_minute=getattr(args, "max_rpm", None),
            max_tokens_per_minute=getattr(args, "max_tpm", None),
        )
    except RouteChoiceError as exc:  # name the option as the user wrote it
        told = ",".join(routes.get(exc.router, ()))
        raise UsageError(f"--route {exc.router}={told}: {exc}") from None


@dataclass(frozen=True)
class _RunPlan:
    """Everything `agentflow run` checked before touching a file."""

    args: argparse.Namespace
    compiled_module: CompiledModule
    model: Model
    run_id: str
    store: StoreLocation | None  # None: --no-store
    log_path: Path
    run_input: Any
    recording: _Recording | None
    events_out: TextIO  # where the console sink writes (stdout)
    human: TextIO  # where banner and summary go: stdout, or stderr with --json
    executor: Any = None  # a RayExecutor when some agent runs on Ray (executor_options.py)


def cmd_run(args: argparse.Namespace) -> int:
    """`agentflow run`: check every precondition, then compile, lock the log and run."""
    pipeline_path = Path(args.pipeline)
    compiled_module = compile_and_import(pipeline_path)
    for warning in compiled_module.warnings:
        print(warning, file=sys.stderr)
    compiled = compiled_module.compiled
    recording = _read_recording(Path(args.replay)) if args.replay else None
    run_input = _given_input(args)
    if run_input is _NO_INPUT:
        run_input = recording.input if recording is not None else ""
    from ..engine.runner import RunInputError, validated_input

    try:  # before any file is touched: a wrong input is a usage error
        run_input = validated_input(compiled, run_input)
    except RunInputError as exc:
        raise UsageError(f"--input: {exc}") from None
    run_id = new_run_id()
    log_path = Path(args.jsonl) if args.jsonl else default_log_path(run_id)
    _check_log_path(log_path, args)
    if args.output and Path(args.output).is_dir():
        raise UsageError(f"--output {args.output}: cannot write it: Is a directory")
    store = store_location(args)
    try:
        model = _choose_model(args, pipeline_path, compiled)
    except AgentflowError as exc:  # no key, no cassette: the run cannot start
        raise UsageError(str(exc)) from None
    executor = build_executor(
        args, compiled, pipeline_path, model_choice(args, pipeline_path, model)
    )
    start_executor(executor, args)  # on this (main) thread, before the run's loop
    plan = _RunPlan(
        args=args,
        compiled_module=compiled_module,
        model=model,
        run_id=run_id,
        store=store,
        log_path=log_path,
        run_input=run_input,
        recording=recording,
        events_out=sys.stdout,
        human=sys.stderr if args.json else sys.stdout,
        executor=executor,
    )
    # Ctrl-C is raised only in the main task, at a checkpoint: raised anywhere
    # else (e.g. inside the UI server's Hypercorn tasks) it could be swallowed.
    run = functools.partial(trio.run, restrict_keyboard_interrupt_to_checkpoints=True)
    if args.json:  # stdout carries only the events' JSON lines; everything else: stderr
        with redirect_stdout(sys.stderr):
            return run(_run_async, plan)
    return run(_run_async, plan)


def _print_banner(model: Model, log_path: Path, ui_url: str | None) -> None:
    from ..models.factory import describe_model

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


async def _run_async(plan: _RunPlan) -> int:
    from ..engine.run_result import with_audit_outcome
    from ..engine.runner import RunOptions, run_pipeline
    from ..sinks.console import ConsoleSink
    from ..sinks.file import FileSink

    args, model, log_path = plan.args, plan.model, plan.log_path
    compiled = plan.compiled_module.compiled
    run_id = plan.run_id
    hub = EventHub(
        run_id=run_id,
        pipeline_hash=compiled.source_sha256,
        keep_history=not args.no_ui,
    )
    if not args.quiet:
        hub.add_sink(ConsoleSink(stream=plan.events_out, json=args.json))
    options = RunOptions(
        run_id=run_id,
        max_concurrency=args.concurrency,
        seed=args.seed,
        keep_history=not args.no_ui,
        executor=plan.executor,
        max_model_calls=getattr(args, "max_model_calls", None),
    )
    lock = LogLock(log_path)
    store: RunStore | None = None
    committer: RunCommitter | None = None
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        ui_url = None
        if not args.no_ui:
            ui_url = await _start_ui(nursery, hub, compiled, args, shutdown, model.name)
        try:
            # The last preconditions, before any file is touched: the UI has its port,
            # and no other live run writes this log.
            log_existed = log_path.exists()
            acquire_log_lock(lock)
            if plan.store is not None:  # the run is recorded before its log is touched
                try:
                    store, committer = await _record_run(plan, log_path)
                except UsageError:
                    if not log_existed:  # the lock created it: a run that never started
                        log_path.unlink(missing_ok=True)
                    raise
                hub.commit_to(committer)
            lock.truncate()  # one run per audit log: start it empty
            hub.add_sink(FileSink(log_path))
            if not args.quiet:
                _print_banner(model, log_path, ui_url)
            async with AsyncExitStack() as stack:
                if hasattr(model, "__aenter__"):
                    await stack.enter_async_context(model)  # type: ignore[arg-type]
                if hasattr(plan.executor, "__aenter__"):  # Ray: joins or starts the cluster
                    await stack.enter_async_context(plan.executor)
                async with hub.running():
                    result = await run_pipeline(
                        compiled,
                        plan.run_input,
                        handlers=plan.compiled_module.default_handlers(),
                        model=model,
                        hub=hub,
                        options=options,
                    )
            result = with_audit_outcome(result, hub)  # closing wrote the seal: final counts
            # a waiting run has no final output yet: its human steps come first
            output = final_output(result) if result.status != "waiting" else None
            _print_summary(result, log_path, hub)
            if result.status == "waiting" and store is not None:
                _print_waiting(store, run_id, args)
            _print_output(output, args.output, plan.human)
            if args.record:
                _write_cassette(log_path, Path(args.record))
            if plan.recording is not None:
                _report_replay(plan.recording, compiled, plan.run_input, log_path)
        finally:
            lock.release()
            if store is not None:  # commits what is queued, then stops its writer thread
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(store.close)
        if ui_url is not None:
            if args.quiet:  # the process keeps running: say where and why
                print(f"observability UI -> {ui_url}")
            await _wait_for_ctrl_c("ctrl+c to exit")
        shutdown.set()
    if result.status == "waiting":
        return 3  # EXIT_WAITING: a human step waits for `agentflow answer`
    return 0 if result.ok else 1


def _print_waiting(store: RunStore, run_id: str, args: argparse.Namespace) -> None:
    """What the run waits for, and the exact command that answers each open step."""
    from ..engine.human import answer_command, human_steps

    store_flag = f" --store {args.store}" if args.store else ""
    for step in human_steps(store, run_id):
        who = f" (assignee: {step.assignee})" if step.assignee else ""
        print(f"waiting for a person: agent {step.agent} on item {step.item}{who}")
        print(f"  answer it: {answer_command(run_id, step)}{store_flag}")


async def _record_run(plan: _RunPlan, log_path: Path) -> tuple[RunStore, RunCommitter]:
    """Open the run store (creating it if new) and record the run there, status `running`.

    Raises:
        UsageError: the store cannot be opened or written (nothing else was touched).
    """
    assert plan.store is not None
    compiled = plan.compiled_module.compiled
    args = plan.args
    location = plan.store
    try:
        store = await trio.to_thread.run_sync(RunStore, location)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    try:
        committer = await store.begin_run(
            run_id=plan.run_id,
            pipeline=compiled.spec.name,
            pipeline_path=str(args.pipeline),
            source_hash=compiled.source_sha256,
            model=plan.model.name,
            input=plan.run_input,
            options={
                "max_concurrency": args.concurrency,
                "seed": args.seed,
                # rate limits, for a resume to keep to them too
                "max_model_calls": getattr(args, "max_model_calls", None),
                "max_rpm": getattr(args, "max_rpm", None),
                "max_tpm": getattr(args, "max_tpm", None),
            },
            jsonl_path=str(log_path),
            resume=resume_settings(args, plan.model.name),
        )
    except BaseException as exc:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(store.close)
        if isinstance(exc, Exception):
            raise UsageError(f"run store {location.shown}: cannot record the run: {exc}") from None
        raise
    return store, committer


def final_output(result: Any) -> str | None:
    """The run's final output: its main item's (the text of its last non-QA output)."""
    for item in result.items:
        if item.id == "main":
            return str(item.output)
    return None


def _print_output(output: str | None, path: str | None, human: TextIO) -> None:
    """The final output in full, at the end (on stderr with --json), its control
    characters escaped; also, exactly as it is, to `--output FILE`."""
    if output is None:
        return
    if path:
        Path(path).write_text(output if output.endswith("\n") else output + "\n")
        print(f"output -> {path}")
    print("output:", file=human)
    print(for_terminal(output), file=human, flush=True)


async def _start_ui(
    nursery: trio.Nursery,
    hub: EventHub,
    compiled: CompiledPipeline,
    args: argparse.Namespace,
    shutdown: trio.Event,
    model_name: str,
) -> str:
    from ..ui.server import PortInUseError, UiConfig, serve_ui

    config = UiConfig(host=args.host, port=args.port)
    # With a store the UI lists every run there too, and opens on this run's own page.
    serve = functools.partial(
        serve_ui,
        model_name=model_name,
        store=store_location(args),
        run_id=hub.run_id,
        loader=load_for_inspection,  # other runs' graphs; imports nothing they name
    )
    try:
        url: str = await nursery.start(serve, hub, compiled, config, shutdown)
    except* PortInUseError as busy:
        raise UsageError(str(busy.exceptions[0])) from None
    return url


async def _wait_for_ctrl_c(announce: str | None = None) -> None:
    """Wait for Ctrl-C (or SIGTERM); print `announce` once the signal is caught, so a
    Ctrl-C pressed the moment the line appears ends the wait, not the process."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        if announce is not None:
            print(announce, flush=True)
        async for _ in signals:
            return


def _print_summary(result: Any, log_path: Path, hub: EventHub) -> None:
    """The run's last lines (also with --quiet); a lost audit log also goes to stderr."""
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
    audit_error = hub.audit_failure_message()
    written = hub.audit_events_written
    if audit_error is None:
        print(f"audit log -> {log_path} ({written} events, sealed)")
        return
    print(f"audit log -> {log_path} (INCOMPLETE: {written} of {hub.events_emitted} events)")
    sys.stdout.flush()
    print(f"agentflow: error: {audit_error}", file=sys.stderr)


def _write_cassette(log_path: Path, cassette: Path) -> None:
    """Keep the audit log's model_response events: that is a replay cassette."""
    kept = 0
    with log_path.open(encoding="utf-8") as src, cassette.open("w", encoding="utf-8") as dst:
        for line in src:
            if '"kind":"model_response"' in line:
                dst.write(line)
                kept += 1
    print(f"cassette -> {cassette} ({kept} model responses)")


def _replay_differences(
    recording: _Recording, compiled: CompiledPipeline, run_input: Any
) -> list[str]:
    """How this replay's pipeline and input differ from the recorded run's."""
    changes = []
    if recording.pipeline_hash is not None and recording.pipeline_hash != compiled.source_sha256:
        changes.append(
            f"  {compiled.source_path} changed since the recorded run (its hash differs)"
        )
    if recording.prompts_sha256 is None:
        changes.append("  the recorded run does not say which prompts it used (an older log)")
    elif recording.prompts_sha256 != compiled.prompts_sha256:
        changes.append("  the prompts changed since the recorded run (their hash differs)")
    if run_input != recording.input:
        changes.append("  the input differs from the recorded run's")
    return changes


def _report_replay(
    recording: _Recording, compiled: CompiledPipeline, run_input: Any, new_log: Path
) -> None:
    """Say where the replay departs from the recording, and whether its pipeline or
    input changed: recorded answers replayed against new prompts prove nothing about
    what Claude would answer now."""
    from ..events.replay_diff import compare_logs

    recorded = recording.path
    divergence = compare_logs(recorded, new_log)
    changes = _replay_differences(recording, compiled, run_input)
    if divergence is None and not changes:
        print(f"replay: the run followed the recorded path of {recorded} exactly")
        return
    if divergence is None:
        print(f"replay: the run followed the recorded path of {recorded}, but:")
    else:
        print(f"replay: the run departs from {recorded}:\n{divergence}")
    for change in changes:
        print(change)
    if changes:
        print("  (the model's answers are the recorded ones, not answers to this pipeline)")


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
    """`agentflow verify`: exit 0 only for a sound, sealed log (hash chain, seq, seal,
    run_finished against its events, and transitions against the pipeline's table)."""
    from ..events.verify import verify_log, verify_run_log

    log = Path(args.log)
    if args.pipeline:
        compiled = load_for_inspection(args.pipeline)  # imports nothing the YAML names
        _check_log_matches(log, compiled)
        report = verify_run_log(log, compiled.spec)
    else:
        report = verify_log(log)
    print(report.render())
    return 0 if report.ok else 1


_SHOWN_PROBLEMS = 8  # problems listed in `agentflow serve`'s banner (the UI has them all)


def _print_verification(report: VerifyReport, log: Path, pipeline: str) -> None:
    """`agentflow serve`'s verdict on the log: one line when sound, else a loud banner."""
    if report.ok:
        print(f"audit log -> {log} (verified: {report.events} events, sealed)")
        return
    problems = report.problems
    print("=" * 72)
    print(f"  WARNING: this audit log does NOT verify ({len(problems)} problem(s)).")
    print("  The UI shows it as written: it is not a sound record of a finished run.")
    for problem in problems[:_SHOWN_PROBLEMS]:
        print(f"    {problem}")
    if len(problems) > _SHOWN_PROBLEMS:
        print(f"    ... and {len(problems) - _SHOWN_PROBLEMS} more")
    print(f"  Full report: agentflow verify {log} --pipeline {pipeline}")
    print("=" * 72)
    print(f"audit log -> {log} (NOT verified)")


def cmd_serve(args: argparse.Namespace, answers: Callable[[RunStore], Any] | None = None) -> int:
    """`agentflow serve`: the UI over every run of the store, or over a finished run's
    audit log, until Ctrl-C. `answers(store)`: the store UI's `AnswerBackend` (its page
    may answer a waiting run's human step)."""
    if args.log is None:
        store = open_store_for_reading(args)  # exit 2 when there is no store
        backend = answers(store) if answers is not None else None
        return trio.run(_serve_store_async, args, store, backend)
    compiled = load_for_inspection(args.pipeline)  # imports nothing the YAML names
    _check_log_matches(Path(args.log), compiled)
    return trio.run(_serve_async, args, compiled)


async def _serve_store_async(args: argparse.Namespace, store: RunStore, answers: Any) -> int:
    from ..ui.server import PortInUseError, UiConfig, serve_store

    try:
        async with trio.open_nursery() as nursery:
            shutdown = trio.Event()
            url = await nursery.start(
                functools.partial(serve_store, answers=answers, loader=load_for_inspection),
                store,
                UiConfig(host=args.host, port=args.port),
                shutdown,
            )
            print(f"run store -> {store.location.shown}")
            print(f"observability UI -> {url}")
            print("ctrl+c to exit")
            await _wait_for_ctrl_c()
            shutdown.set()
    except* PortInUseError as busy:
        raise UsageError(str(busy.exceptions[0])) from None
    finally:
        store.close()
    return 0


async def _serve_async(args: argparse.Namespace, compiled: CompiledPipeline) -> int:
    from ..ui.server import UiConfig, UiSource, serve_log

    log = Path(args.log)
    source = UiSource.from_log(log, compiled)  # a clear error for a log it cannot read
    assert source.verify_report is not None  # from_log verifies the log
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        url = await nursery.start(
            serve_log, source, compiled, UiConfig(host=args.host, port=args.port), shutdown
        )
        _print_verification(source.verify_report, log, args.pipeline)
        print(f"observability UI -> {url}")
        print("ctrl+c to exit")
        await _wait_for_ctrl_c()
        shutdown.set()
    return 0
