"""Run the CLIs on one hostile pipeline in a forked child, and judge what they did.

Each command runs in a child forked from the already-warm test process (so no
interpreter start-up per command), with its own working directory, a memory
cap and a safety timeout that turns a hang into a reported outcome instead of
a stuck test run. The child gets a workspace laid out as:

    <root>/outside/secret.md      a file outside the pipeline's directory (a secret token)
    <root>/ws/<entry>.yaml        the pipeline under test (the working directory)
    <root>/ws/prompts/...         the corpus's prompt files, plus a FIFO, a 64 MB sparse
                                  file and symlinks that leave the directory or loop
    <root>/ws/hostile_canary*.py  plugin modules that leave a CANARY-* file when imported
                                  or called; SENTINEL / SENTINEL_DIR must survive

A canary is any CANARY-* file (except the import of a *declared* plugin module
by `agentflow run`, which is what run is for), a missing sentinel, or a secret
token (from the environment, /etc/passwd or outside/) in any output or any
file the commands wrote.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import re
import resource
import select
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import agentflow.compiler.cli as compiler_cli
import agentflow.runtime.cli.main as runtime_cli

__all__ = [
    "CORPUS",
    "ENV_TOKEN",
    "FILE_TOKEN",
    "CommandOutcome",
    "Workspace",
    "canaries",
    "leaks",
    "raw_controls",
    "run_forked",
]

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
ENV_TOKEN = "HOSTILE-ENV-SECRET-7f3a"
FILE_TOKEN = "HOSTILE-FILE-SECRET-91c2"
PASSWD_TOKEN = "root:x:0:0"
TIMEOUT_S = 20.0
MEMORY_HEADROOM = 1536 * 1024 * 1024

_CANARY_IMPORT = """\
import os
open("CANARY-import-" + os.environ.get("HOSTILE_PHASE", "unknown"), "w").close()


class Tool:
    id = "canary"
    description = "a canary"
    input_schema = {"type": "object"}

    async def execute(self, input):
        open("CANARY-call-execute", "w").close()
        return "pwned"
"""

_CANARY_CALL = """\
'''Callables that are not Tool classes: calling any of them is a canary execution.'''
import os


def _mark(what):
    open("CANARY-call-" + what, "w").close()


def boom(*args, **kwargs):
    _mark("function")


class Boom:
    def __init__(self, *args, **kwargs):
        _mark("init")

    def __call__(self, *args, **kwargs):
        _mark("instance-call")


class ToolShaped:
    '''A Tool class: a pipeline that declares it may build it, but not call it unasked.'''
    id = "shaped"
    description = "shaped"
    input_schema = {"type": "object"}

    def __init__(self, **config):
        self.config = config

    async def execute(self, input):
        _mark("shaped-execute")


class _Callable:
    def __call__(self, *args, **kwargs):
        _mark("module-instance")


instance = _Callable()
"""

_CANARY_INDIRECT = 'open("CANARY-indirect-import", "w").close()\n'


@dataclass(frozen=True)
class CommandOutcome:
    """What one command did: its exit status, output, and how it ended."""

    argv: tuple[str, ...]
    status: int | None
    stdout: str
    stderr: str
    uncaught: str | None = None  # an exception that escaped main(), with its traceback
    hung: bool = False
    signal: int | None = None  # the child died of this signal (a crash, or the memory cap)

    def describe(self) -> str:
        how = (
            "HUNG (killed after the safety timeout)"
            if self.hung
            else f"died of signal {self.signal}"
            if self.signal
            else f"exit {self.status}"
        )
        parts = [f"$ {' '.join(self.argv)} -> {how}"]
        if self.uncaught:
            parts.append(f"uncaught exception:\n{self.uncaught}")
        parts.append(f"stdout: {_clip(self.stdout)}")
        parts.append(f"stderr: {_clip(self.stderr)}")
        return "\n".join(parts)


def _clip(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more]"


@dataclass
class Workspace:
    """A fresh directory tree for one corpus entry (see the module docstring)."""

    root: Path
    entry: str
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def ws(self) -> Path:
        return self.root / "ws"

    @classmethod
    def create(cls, root: Path, entry: str, source: bytes) -> Workspace:
        ws = root / "ws"
        shutil.copytree(CORPUS / "prompts", ws / "prompts", symlinks=True)
        (root / "outside").mkdir()
        (root / "outside" / "secret.md").write_text(f"outside secret {FILE_TOKEN}\n")
        (ws / entry).write_bytes(source)
        prompts = ws / "prompts"
        os.mkfifo(prompts / "fifo.md")
        with (prompts / "huge.md").open("wb") as huge:
            huge.truncate(64 * 1024 * 1024)  # sparse: costs no disk, reads as 64 MB of NULs
        (prompts / "escape_link.md").symlink_to("../../outside/secret.md")
        (prompts / "passwd_link.md").symlink_to("/etc/passwd")
        (prompts / "loop_a.md").symlink_to("loop_b.md")
        (prompts / "loop_b.md").symlink_to("loop_a.md")
        (prompts / "dangling.md").symlink_to("does_not_exist.md")
        (prompts / "a_directory.md").mkdir()
        (ws / "hostile_canary_import.py").write_text(_CANARY_IMPORT)
        (ws / "hostile_canary.py").write_text(_CANARY_CALL)
        (ws / "hostile_canary_indirect.py").write_text(_CANARY_INDIRECT)
        (ws / "SENTINEL").write_text("must survive\n")
        (ws / "SENTINEL_DIR").mkdir()
        (ws / "SENTINEL_DIR" / "keep").write_text("must survive\n")
        return cls(root, entry)


_warm = False


def warm_up() -> None:
    """Run every command once in this process, so forked children start with all imports done.

    (A cold child spends ~0.4 s importing what the commands import lazily.)
    """
    global _warm
    if _warm:
        return
    example = HERE.parents[1] / "pipelines" / "seed_minimal.yaml"
    sink = io.StringIO()
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        log = str(Path(tmp) / "warm.jsonl")
        compiler_cli.main([str(example), "-o", tmp])
        compiler_cli.main([str(example), "--explain"])
        compiler_cli.main([str(example), "--graph", "mermaid"])
        runtime_cli.main(["run", str(example), "--model", "dry-run", "--no-ui", "--quiet",
                          "--jsonl", log])  # fmt: skip
        runtime_cli.main(["verify", log, "--pipeline", str(example)])
    gc.freeze()  # the children's collector then leaves the parent's objects (and pages) alone
    _warm = True


def run_forked(
    workspace: Workspace,
    program: str,
    argv: Sequence[str],
    phase: str,
    *,
    timeout_s: float = TIMEOUT_S,
) -> CommandOutcome:
    """Run `agentflowc` or `agentflow` (`program`) with `argv` in a forked child."""
    main: Callable[[Sequence[str]], int] = (
        compiler_cli.main if program == "agentflowc" else runtime_cli.main
    )
    warm_up()
    shown = (program, *argv)
    out_path = workspace.root / f".{phase}.stdout"
    err_path = workspace.root / f".{phase}.stderr"
    result_path = workspace.root / f".{phase}.result"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        _child(workspace, main, argv, phase, out_path, err_path, result_path)
    status = _wait(pid, timeout_s)
    stdout = out_path.read_text("utf-8", "backslashreplace") if out_path.exists() else ""
    stderr = err_path.read_text("utf-8", "backslashreplace") if err_path.exists() else ""
    if status == "hung":
        return CommandOutcome(shown, None, stdout, stderr, hung=True)
    if os.WIFSIGNALED(status):
        return CommandOutcome(shown, None, stdout, stderr, signal=os.WTERMSIG(status))
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        result = {"status": None, "uncaught": f"child exited {status} without a result"}
    return CommandOutcome(shown, result["status"], stdout, stderr, result.get("uncaught"))


def _wait(pid: int, timeout_s: float) -> int | str:
    """The child's wait status, or "hung" after killing it (and its process group)."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout_s)
    finally:
        os.close(pidfd)
    if not ready:
        try:
            os.killpg(pid, signal.SIGKILL)  # the child and anything it spawned
        except ProcessLookupError:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "hung"
    return os.waitpid(pid, 0)[1]


def _child(
    workspace: Workspace,
    main: Callable[[Sequence[str]], int],
    argv: Sequence[str],
    phase: str,
    out_path: Path,
    err_path: Path,
    result_path: Path,
) -> None:  # pragma: no cover - runs in the forked child
    result: dict[str, object] = {"status": None}
    try:
        os.setpgid(0, 0)
        with contextlib.suppress(OSError, ValueError):
            vsize = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGESIZE")
            limit = vsize + MEMORY_HEADROOM
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(null_fd, 0)
        # What a UTF-8 terminal gives a program: strict stdout, backslashreplace stderr.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), "utf-8", "strict")
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), "utf-8", "backslashreplace", line_buffering=True
        )
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), "utf-8")
        os.chdir(workspace.ws)
        sys.path.insert(0, str(workspace.ws))
        os.environ["HOSTILE_PHASE"] = phase
        os.environ["HOSTILE_SECRET"] = ENV_TOKEN
        os.environ.pop("ANTHROPIC_API_KEY", None)
        os.environ.pop("AGENTFLOW_DEBUG", None)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            result["status"] = main(list(argv))
        except SystemExit as exc:
            code = exc.code
            result["status"] = code if isinstance(code, int) else (0 if code is None else 1)
        except BaseException:
            result["uncaught"] = traceback.format_exc()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        result_path.write_text(json.dumps(result))
    except BaseException:
        with contextlib.suppress(BaseException):
            result_path.write_text(json.dumps({"status": None, "uncaught": traceback.format_exc()}))
    finally:
        os._exit(0)


def canaries(workspace: Workspace, *, declared_import_ok: bool) -> list[str]:
    """Every trace of code that ran or files touched outside what the pipeline declares."""
    found = sorted(
        str(path.relative_to(workspace.root))
        for path in workspace.root.rglob("CANARY*")
        if not (declared_import_ok and path.name == "CANARY-import-run")
    )
    if not (workspace.ws / "SENTINEL").is_file():
        found.append("ws/SENTINEL was removed")
    if not (workspace.ws / "SENTINEL_DIR" / "keep").is_file():
        found.append("ws/SENTINEL_DIR was removed")
    return found


def leaks(workspace: Workspace, outcomes: Sequence[CommandOutcome]) -> list[str]:
    """Secret tokens found in the commands' output or in any file they wrote."""
    tokens = (ENV_TOKEN, FILE_TOKEN, PASSWD_TOKEN)
    found = [
        f"{token} in the output of {' '.join(o.argv)}"
        for o in outcomes
        for token in tokens
        if token in o.stdout or token in o.stderr
    ]
    for sub in ("out", "run.jsonl", "workspace"):
        path = workspace.ws / sub
        files = [path] if path.is_file() else list(path.rglob("*")) if path.is_dir() else []
        for file in files:
            if not file.is_file() or file.is_symlink():
                continue
            data = file.read_bytes()
            found += [
                f"{token} in {file.relative_to(workspace.root)}"
                for token in tokens
                if token.encode() in data
            ]
    return found


_RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def raw_controls(text: str) -> list[str]:
    """Control characters (other than newline and tab) that would reach a terminal raw."""
    return sorted({repr(match.group()) for match in _RAW_CONTROL.finditer(text)})
