"""`agentflowc`: compile pipeline YAML files into typed Python modules.

Exit status: 0 ok; 1 an invalid pipeline or a stale generated file (--check);
2 a usage error; 70 an internal error (a bug: please report it); 141 (quietly) when
the reader of its output closed the pipe early (`agentflowc --explain x.yaml | head`).

Only the standard library is imported at module level: `--version` and `--help`
answer without importing pydantic, trio or jinja2 (the compiler proper is
imported once there is a pipeline to compile).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from .diagnostics import Diagnostic
    from .load import LoadedPipeline

__all__ = ["EXIT_INTERNAL", "EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "main"]

GraphFormat = Literal["mermaid", "dot"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a command that SIGPIPE ends: its reader closed the pipe."""


def _version() -> str:
    try:
        return metadata.version("agentflow")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentflowc",
        description="Compile agentflow pipeline YAML files into typed Python modules.",
        epilog=(
            "Exit status: 0 ok, 1 invalid pipeline or stale output, 2 usage error, "
            "70 internal error (a bug: please report it)."
        ),
    )
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE.yaml")
    parser.add_argument(
        "-o",
        "--out-dir",
        default="generated",
        metavar="OUT_DIR",
        help="where to write <name>.py, one per pipeline and sub-pipeline (default: generated/)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a generated file is missing or differs",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print what each pipeline does; write nothing"
    )
    parser.add_argument(
        "--graph",
        choices=("mermaid", "dot"),
        help="print each pipeline's agent and state graph; write nothing",
    )
    parser.add_argument(
        "--schema", action="store_true", help="print the DSL's JSON Schema and exit"
    )
    parser.add_argument("--version", action="version", version=f"agentflowc {_version()}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run agentflowc; returns the exit status (never raises, except SystemExit from argparse)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("agentflowc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout stopped early (`agentflowc --explain x.yaml | head`): stop
        # quietly, and keep the interpreter's final flush from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        print(f"agentflowc: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("agentflowc: this is a bug in agentflowc; please report it", file=sys.stderr)
        return EXIT_INTERNAL


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.schema:
        if args.pipelines:
            parser.error("--schema takes no pipeline files")
        from .schema import schema_text

        sys.stdout.write(schema_text())
        return EXIT_OK
    if not args.pipelines:
        parser.error("no pipeline files given (e.g. agentflowc pipelines/hello_world.yaml)")
    if args.check and (args.explain or args.graph):
        parser.error("--check cannot be combined with --explain or --graph")
    loaded, diagnostics = _load_all(args.pipelines)
    _print_diagnostics(diagnostics, sys.stderr)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        _print_summary(diagnostics, sys.stderr)
        return EXIT_INVALID
    if args.explain or args.graph:
        return _describe(loaded, explain=args.explain, graph=args.graph)
    return _generate(loaded, Path(args.out_dir), check=args.check)


def _load_all(paths: Sequence[str]) -> tuple[list[LoadedPipeline], list[Diagnostic]]:
    """Load every pipeline; collect all diagnostics (also module name clashes).

    The result lists each pipeline given, then the sub-pipelines it includes (depth
    first), each file once: `agentflowc parent.yaml` writes the children's modules too.
    """
    from .diagnostics import CompileError, Diagnostic
    from .load import load_pipeline
    from .naming import module_name

    loaded: list[LoadedPipeline] = []
    diagnostics: list[Diagnostic] = []
    owners: dict[str, str] = {}
    files: dict[str, str] = {}  # module name -> the real path of the file that generates it
    for path in paths:
        try:
            top = load_pipeline(path)
        except CompileError as exc:
            diagnostics += exc.diagnostics
            continue
        diagnostics += top.warnings
        for pipeline in _with_children(top):
            name = module_name(pipeline.spec.name)
            real = os.path.realpath(pipeline.source_path)
            if name in owners:
                if files[name] == real:
                    continue  # the same file, named twice (a child also listed itself)
                loc = pipeline.spec.loc
                diagnostics.append(
                    Diagnostic(
                        pipeline.source_path,
                        loc.line if loc else 1,
                        loc.column if loc else 1,
                        f"pipeline name '{pipeline.spec.name}' gives module '{name}.py', which "
                        f"'{owners[name]}' also generates; rename one of the pipelines",
                    )
                )
                continue
            owners[name], files[name] = pipeline.source_path, real
            loaded.append(pipeline)
    return loaded, diagnostics


def _with_children(pipeline: LoadedPipeline) -> list[LoadedPipeline]:
    """`pipeline`, then its sub-pipelines depth first (include cycles are compile errors)."""
    found: list[LoadedPipeline] = []
    seen: set[int] = set()  # a child many agents include (a diamond) is listed once
    stack = [pipeline]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        stack.extend(reversed(list(current.children.values())))
    return found


def _print_diagnostics(diagnostics: Sequence[Diagnostic], stream: TextIO) -> None:
    for diagnostic in diagnostics:
        print(diagnostic, file=stream)


def _print_summary(diagnostics: Sequence[Diagnostic], stream: TextIO) -> None:
    errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = len(diagnostics) - errors
    parts = [f"{errors} error{'s' if errors != 1 else ''}"]
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    print(", ".join(parts), file=stream)


def _describe(loaded: Sequence[LoadedPipeline], *, explain: bool, graph: GraphFormat | None) -> int:
    """--explain / --graph: print, for each pipeline, what H2's renderers produce."""
    for index, pipeline in enumerate(loaded):
        if index:
            print()
        if explain:
            from .explain import explain as explain_pipeline

            sys.stdout.write(_with_newline(explain_pipeline(pipeline)))
        if graph:
            from .graph import render_graph

            sys.stdout.write(_with_newline(render_graph(pipeline, graph)))
    return EXIT_OK


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _generate(loaded: Sequence[LoadedPipeline], out_dir: Path, *, check: bool) -> int:
    """Emit each module; write it (or, with --check, compare it with the file on disk)."""
    from agentflow.runtime.errors import AgentflowError

    from .emit import emit_module
    from .naming import module_name

    stale = 0
    for pipeline in loaded:
        target = out_dir / f"{module_name(pipeline.spec.name)}.py"
        try:
            code = emit_module(pipeline, out_dir)
        except AgentflowError as exc:
            print(f"{pipeline.source_path}:1:1: error: {exc}", file=sys.stderr)
            print("1 error", file=sys.stderr)
            return EXIT_INVALID
        current = _read_or_none(target)
        if check:
            if current != code:
                stale += 1
                state = "missing" if current is None else "stale"
                print(
                    f"agentflowc: {target} is {state}; regenerate it with "
                    f"'agentflowc {pipeline.source_path} -o {out_dir}'",
                    file=sys.stderr,
                )
            else:
                print(f"up to date: {target}")
            continue
        if current == code:
            print(f"unchanged: {target}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8", newline="\n")
        print(f"wrote: {target}")
    return EXIT_INVALID if stale else EXIT_OK


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return None
