"""`agentflow`: run a pipeline, verify an audit log, or serve a finished run's UI.

    agentflow run PIPELINE.yaml [TOPIC] [--input TEXT|@FILE] [--jsonl PATH] ...
    agentflow verify RUN.jsonl [--pipeline PIPELINE.yaml]
    agentflow serve [--store PATH|URL] [--port N]    # every run of the store
    agentflow serve RUN.jsonl --pipeline PIPELINE.yaml [--port N]
    agentflow runs | show RUN | export RUN [--jsonl PATH] | output RUN   (the run store)

Exit codes (EXIT_STATUS below, also in --help): 0 the run succeeded, 1 the run
failed (verify: the log does not verify), 2 it could not start (a usage error, a
missing or unreadable file, an invalid pipeline, a busy port, an audit log in use),
130 interrupted, 70 an internal error (a bug).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from agentflow import __version__

from ..errors import AgentflowError, CannotStartError
from .answer import AnswerService, add_answer_parser, cmd_answer
from .commands import cmd_run, cmd_serve, cmd_verify
from .compiled_loader import PipelineInvalidError
from .executor_options import add_executor_options
from .history import cmd_export, cmd_output, cmd_runs, cmd_show
from .resume import add_resume_parser, cmd_resume

__all__ = ["EXIT_STATUS", "build_parser", "main"]

EXIT_FAILED = 1
EXIT_CANNOT_START = 2
EXIT_WAITING = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell shows for `cat` cut short by `| head`
EXIT_INTERNAL = 70
EXIT_STATUS = (
    "Exit status: 0 the run succeeded; 1 the run failed (verify: the log does not "
    "verify); 2 it could not start (a usage error, a missing or unreadable file, an "
    "invalid pipeline, a busy UI port, an audit log in use by another run, a run store "
    "that cannot be opened); 3 the run waits for a person's answer (a human step: "
    "`agentflow answer` answers it); "
    "130 interrupted; 141 its output's reader went away (`| head`); 70 internal error "
    "(a bug: please report it)."
)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 0..65535 (0: any free port)")
    return port


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _route_choice(text: str) -> tuple[str, tuple[str, ...]]:
    """`ROUTER=CASE[,CASE...]` -> (router, cases)."""
    router, equals, listed = text.partition("=")
    cases = tuple(case.strip() for case in listed.split(","))
    if not equals or not router.strip() or not all(cases):
        raise argparse.ArgumentTypeError(
            f"'{text}': write ROUTER=CASE or ROUTER=CASE,CASE,... (the cases the router "
            "takes on its 1st, 2nd, ... run on an item; the last repeats)"
        )
    return router.strip(), cases


_port.__name__ = "port"  # argparse names the type in its messages: "invalid port value"
_positive.__name__ = "positive integer"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentflow",
        description="Run compiled agentflow pipelines, verify audit logs, serve the run UI.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"agentflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="compile and run a pipeline", epilog=EXIT_STATUS)
    run.add_argument("pipeline", help="the pipeline YAML file")
    run.add_argument("topic", nargs="?", help="the run input (same as --input)")
    run.add_argument("--input", dest="input_text", help="run input: TEXT, JSON, or @FILE")
    run.add_argument("--jsonl", help="audit log path (default: .agentflow/runs/<run id>.jsonl)")
    run.add_argument("--output", metavar="FILE", help="also write the final output to FILE")
    _store_options(run, recording=True)
    run.add_argument(
        "--model",
        choices=["auto", "replay", "anthropic", "dry-run"],
        default="auto",
        help=(
            "auto (default): anthropic if ANTHROPIC_API_KEY is set, else offline replay; "
            "dry-run: synthetic answers, to walk a new pipeline with no key or cassette"
        ),
    )
    run.add_argument(
        "--fail-first",
        type=int,
        default=0,
        metavar="N",
        help=(
            "with --model dry-run: each QA agent that runs on the model fails its first "
            "N attempts per item"
        ),
    )
    run.add_argument(
        "--route",
        type=_route_choice,
        action="append",
        default=[],
        metavar="ROUTER=CASE[,CASE...]",
        help=(
            "with --model dry-run: the case ROUTER takes (default: its first listed case); "
            "a list is taken per run of the router on an item, the last repeating; "
            "'default' takes its default case. Repeat for other routers"
        ),
    )
    run.add_argument(
        "--items",
        type=int,
        default=None,
        metavar="N",
        help="with --model dry-run: how many work items a fan-out agent returns (default 3)",
    )
    run.add_argument(
        "--no-prompt-cache",
        action="store_true",
        help="live Claude: do not mark prompts for Anthropic's prompt cache (docs/models.md)",
    )
    run.add_argument("--cassette", help="replay cassette (default: <pipeline>.cassette.jsonl)")
    run.add_argument("--replay", metavar="RUN_JSONL", help="re-run offline from a run's audit log")
    run.add_argument("--record", metavar="PATH", help="write the run's model responses here")
    run.add_argument("--no-ui", action="store_true", help="do not start the web UI")
    run.add_argument("--host", default="127.0.0.1", help="UI bind address (default 127.0.0.1)")
    run.add_argument("--port", type=_port, default=4000, help="UI port (default 4000; 0: any)")
    run.add_argument("--json", action="store_true", help="print events as JSON lines")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.add_argument("--concurrency", type=_positive, help="fan-out concurrency limit for this run")
    run.add_argument(
        "--max-model-calls",
        type=_positive,
        metavar="N",
        help="at most N model calls at once, run-wide (default: as many as the fan-outs allow)",
    )
    run.add_argument(
        "--max-rpm",
        type=_positive,
        metavar="N",
        help="live Claude: at most N requests a minute (a key shared with others; "
        "default: defaults.max_requests_per_minute, else as the API's rate-limit headers allow)",
    )
    run.add_argument(
        "--max-tpm",
        type=_positive,
        metavar="N",
        help="live Claude: at most N input + output tokens a minute "
        "(default: defaults.max_tokens_per_minute, else as the API's headers allow)",
    )
    run.add_argument("--seed", type=int, help="seed for retry jitter")
    add_executor_options(run, _positive)

    runs = sub.add_parser("runs", help="list the runs in the run store, newest first")
    runs.add_argument("--pipeline", help="only runs of this pipeline (its name)")
    runs.add_argument(
        "--status",
        choices=["running", "interrupted", "waiting", "succeeded", "failed", "incomplete",
                 "error", "cancelled"],
        help="only runs with this status (interrupted: running, but its process is gone)",
    )  # fmt: skip
    runs.add_argument("--limit", type=int, default=20, help="at most N runs (default 20; 0: all)")
    runs.add_argument("--json", action="store_true", help="one JSON object a run")
    _store_options(runs)
    show = sub.add_parser("show", help="a run's summary, per-item outcomes and final output")
    show.add_argument("run", help="the run id (or a prefix naming one run)")
    _store_options(show)
    export = sub.add_parser("export", help="write a run's JSONL log from the run store")
    export.add_argument("run", help="the run id (or a prefix naming one run)")
    export.add_argument("--jsonl", help="write it to this file (default: stdout)")
    _store_options(export)
    add_answer_parser(sub, _store_options)
    add_resume_parser(sub, _store_options, EXIT_STATUS, _port)
    output = sub.add_parser("output", help="print a run's final output")
    output.add_argument("run", help="the run id (or a prefix naming one run)")
    _store_options(output)

    verify = sub.add_parser(
        "verify",
        help="check an audit log: hash chain, seal, run_finished, transitions (0: sound, sealed)",
    )
    verify.add_argument("log", help="the run's JSONL audit log")
    verify.add_argument("--pipeline", help="pipeline YAML to check transitions against")

    serve = sub.add_parser(
        "serve",
        help="serve the UI of every run in the run store (or of one audit log, verified first)",
    )
    serve.add_argument(
        "log", nargs="?", help="a run's JSONL audit log (default: every run of the store)"
    )
    serve.add_argument("--pipeline", help="the pipeline YAML the run used (with LOG)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=4000, help="UI port (0: any free port)")
    _store_options(serve)
    return parser


def _store_options(command: argparse.ArgumentParser, *, recording: bool = False) -> None:
    command.add_argument(
        "--store",
        metavar="PATH|URL",
        help="the run store: a SQLite file or a postgresql:// URL "
        "(default: $AGENTFLOW_STORE, else .agentflow/agentflow.db)",
    )
    if recording:
        command.add_argument(
            "--no-store", action="store_true", help="do not record this run in the run store"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agentflow` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse gives an optional positional its (empty) value at its place, so a
    # TOPIC after options (`run x.yaml --no-ui "topic"`) arrives as an extra.
    if args.command == "run" and args.topic is None and len(extra) == 1 and extra[0][:1] != "-":
        args.topic, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "run" and args.topic is not None and args.input_text is not None:
        parser.error("give the run input once: as TOPIC or as --input, not both")
    if args.command == "run" and args.fail_first and args.model != "dry-run":
        parser.error("--fail-first only applies to --model dry-run")
    if args.command == "run":
        _check_dry_run_options(parser, args)
    if args.command == "run" and args.no_store and args.store is not None:
        parser.error("give --store or --no-store, not both")
    if args.command == "serve" and args.log is not None and args.pipeline is None:
        parser.error("serve LOG needs --pipeline PIPELINE.yaml (the pipeline the run used)")
    if args.command == "serve" and args.log is None and args.pipeline is not None:
        parser.error("--pipeline goes with a LOG; without one, serve shows the run store")
    commands = {
        "run": cmd_run,
        "verify": cmd_verify,
        "serve": _serve,
        "runs": cmd_runs,
        "show": cmd_show,
        "export": cmd_export,
        "output": cmd_output,
        "resume": cmd_resume,
        "answer": _answer,
    }
    try:
        return commands[args.command](args)
    except BaseException as exc:  # the CLI never shows a traceback
        return _report(exc)


def _serve(args: argparse.Namespace) -> int:
    """`agentflow serve`; over a store, its page may answer human steps (then resume)."""
    store_arguments = ["--store", args.store] if args.store else []
    return cmd_serve(args, lambda store: AnswerService(store, store_arguments, main))


def _answer(args: argparse.Namespace) -> int:
    """`agentflow answer`; it resumes the run with `agentflow resume` (this `main`)."""
    return cmd_answer(args, main)


def _check_dry_run_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`--route` / `--items` steer the dry-run model only, each router named once."""
    for option, given in (("--route", args.route), ("--items", args.items is not None)):
        if given and args.model != "dry-run":
            parser.error(f"{option} only applies to --model dry-run")
    if args.items is not None and args.items < 0:
        parser.error(f"--items {args.items}: give 0 or more work items")
    seen: set[str] = set()
    for router, _cases in args.route:
        if router in seen:
            parser.error(
                f"--route {router} is given twice; give its cases once: --route {router}=A,B"
            )
        seen.add(router)


def _leaf(exc: BaseException) -> BaseException:
    """The single exception inside nested one-member exception groups (trio nurseries)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _report(exc: BaseException) -> int:
    leaf = _leaf(exc)
    if isinstance(leaf, SystemExit):
        return int(leaf.code or 0)
    if isinstance(leaf, KeyboardInterrupt):
        print("agentflow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(leaf, BrokenPipeError):  # the reader left (`| head`): not an error
        # stdout is gone: point it at /dev/null so the interpreter's last flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    if isinstance(leaf, PipelineInvalidError):
        print(leaf, file=sys.stderr)  # compiler diagnostics, each already says "error:"
        return EXIT_CANNOT_START
    if isinstance(leaf, CannotStartError):
        print(f"agentflow: error: {leaf}", file=sys.stderr)
        return EXIT_CANNOT_START
    if isinstance(leaf, AgentflowError | OSError):
        print(f"agentflow: error: {leaf}", file=sys.stderr)
        return EXIT_FAILED
    if os.environ.get("AGENTFLOW_DEBUG"):
        traceback.print_exception(exc)
    print(
        f"agentflow: internal error: {type(leaf).__name__}: {leaf}\n"
        "This is a bug; set AGENTFLOW_DEBUG=1 to see the traceback and please report it.",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
