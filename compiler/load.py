"""Load a pipeline: read the file, its prompts and its sub-pipelines, then parse -> lower -> checks.

The only compiler module besides the CLI that does I/O. Everything it finds
wrong is raised as one `CompileError` with every diagnostic; warnings of a
pipeline that compiles are returned on the result. A sub-pipeline (`pipeline:
child.yaml`) is read under the same rules as a prompt (a regular file under the
including file's directory, no symlink out of it, at most 1 MiB) and compiled
with its parent; an include cycle is an error naming the chain.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agentflow.runtime.spec import PipelineSpec

from .checks import CheckContext, run_checks
from .checks_human import check_human_children
from .checks_pipeline import check_subpipelines
from .diagnostics import CompileError, Diagnostic, sort_diagnostics
from .lower import lower
from .naming import module_name
from .parse import Parsed, parse_text

__all__ = [
    "PIPELINE_MAX_BYTES",
    "PROMPT_MAX_BYTES",
    "LoadedPipeline",
    "load_pipeline",
    "load_pipeline_text",
]

PROMPT_MAX_BYTES = 1 << 20
"""The largest prompt file the compiler reads (1 MiB): it is embedded in the module."""
PIPELINE_MAX_BYTES = 1 << 20
"""The largest sub-pipeline file the compiler reads (1 MiB), like a prompt."""
MAX_EXPANDED_AGENTS = 10_000
"""How many agents a pipeline may run once its sub-pipelines are expanded (each agent of a
child counted once per agent that includes it): every run, log, UI graph and dry-run
route table names them all, so a diamond of includes must not reach 2^depth."""
MAX_INCLUDE_DEPTH = 32
"""How deep sub-pipelines may nest below the file compiled (deeper is a design error,
and every level costs stack in the compiler and at run time)."""

_Memo = dict[tuple[str, int], "LoadedPipeline | CompileError"]
"""(a child's resolved path, the depth it is included at) -> its compiled result: a file
included from many places (a diamond) is compiled once per depth, not once per path."""


@dataclass(frozen=True)
class LoadedPipeline:
    """A pipeline that compiled: its IR, its prompts' text, and where it came from.

    `source_path` is the path as the user gave it (relative stays relative: it
    goes into generated headers); `source_sha256` is the hash of the YAML bytes.
    `children` maps each sub-pipeline agent (`pipeline: child.yaml`) to its loaded
    child, in agent order; a child's `source_path` is the parent's directory joined
    with the path the parent wrote.
    """

    spec: PipelineSpec
    prompts: dict[str, str]
    source_path: str
    source_sha256: str
    warnings: list[Diagnostic] = field(default_factory=list)
    children: Mapping[str, LoadedPipeline] = field(default_factory=dict)


def load_pipeline(path: str | Path) -> LoadedPipeline:
    """Read and compile the pipeline at `path` (prompts are relative to its directory).

    Raises:
        CompileError: with every diagnostic, for a file that cannot be read or
            a pipeline that does not compile.
    """
    shown = str(path)
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise _fail(shown, f"no such file '{shown}'; check the path") from None
    except IsADirectoryError:
        raise _fail(shown, f"'{shown}' is a directory; pass a pipeline .yaml file") from None
    except OSError as exc:
        raise _fail(shown, f"cannot read '{shown}': {exc.strerror or exc}") from None
    if file.is_dir():  # pragma: no cover - read_bytes raises first on Linux
        raise _fail(shown, f"'{shown}' is a directory; pass a pipeline .yaml file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CompileError(
            [Diagnostic(shown, line, 1, "the file is not valid UTF-8; save it as UTF-8")]
        ) from None
    chain = (_real_or_none(file) or os.path.abspath(shown),)
    return _compile(text, shown, file.parent, hashlib.sha256(raw).hexdigest(), chain, {})


def load_pipeline_text(text: str, path: str, base_dir: Path) -> LoadedPipeline:
    """Compile pipeline source held in memory; `path` is the name shown in diagnostics.

    Prompt and sub-pipeline paths are resolved against `base_dir`; a sub-pipeline that
    includes `base_dir`'s file named like `path` closes an include cycle.

    Raises:
        CompileError: with every diagnostic, for a pipeline that does not compile.
    """
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    named = _real_or_none(base_dir / Path(path).name)  # the file the text came from, if any
    return _compile(text, path, base_dir, digest, (named or path,), {})


def _fail(path: str, message: str) -> CompileError:
    return CompileError([Diagnostic(path, 1, 1, message)])


def _real_or_none(file: Path) -> str | None:
    try:
        return str(file.resolve(strict=True))
    except (OSError, RuntimeError):
        return None


def _compile(
    text: str, path: str, base_dir: Path, digest: str, chain: tuple[str, ...], memo: _Memo
) -> LoadedPipeline:
    """Compile one pipeline file's text; `chain` holds the resolved paths of the files
    that include it, itself last (an include cycle returns to one of them); `memo`
    the children compiled so far in this load."""
    text = text.removeprefix("\ufeff")
    parsed = parse_text(text, path)
    spec = lower(parsed)
    prompts: dict[str, str] = {}
    prompt_files: dict[str, str] = {}
    prompt_lines: dict[str, int] = {}
    diagnostics: list[Diagnostic] = []
    children: dict[str, LoadedPipeline] = {}
    root = _resolved_root(base_dir)
    for index, agent in enumerate(spec.agents):
        if agent.instructions is not None:
            prompts[agent.id] = agent.instructions
            prompt_files[agent.id] = path
            prompt_lines[agent.id] = _instructions_line(text, parsed, index)
            continue
        if agent.pipeline is not None:
            loc = parsed.source.value(("agents", index, "pipeline"))
            here = (path, loc.line, loc.column)
            child, found = _load_child(root, agent.pipeline, here, chain, memo)
            diagnostics += found
            if child is not None:
                children[agent.id] = child
            continue
        # A human agent's question file is read like a prompt (docs/human.md).
        written = agent.prompt if agent.human is None else agent.human.question
        if written is None:
            continue
        shown = os.path.normpath(os.path.join(os.path.dirname(path), written))
        prompt_files[agent.id] = shown
        content, problem = _read_beneath(root, written, shown, _PROMPT)
        if content is not None:
            prompts.setdefault(agent.id, content)
        else:
            loc = parsed.source.value(_question_path(parsed, index, agent.human is not None))
            diagnostics.append(Diagnostic(loc.file, loc.line, loc.column, problem))
    ctx = CheckContext(spec, parsed.source, prompts, prompt_files, prompt_lines)
    diagnostics += run_checks(ctx)
    diagnostics += check_subpipelines(spec, parsed.source, children)
    diagnostics += check_human_children(spec, parsed.source, children)
    diagnostics += _module_clashes(spec, parsed, children, chain[-1])
    diagnostics += _expansion_limit(spec, parsed, children)
    diagnostics = sort_diagnostics(diagnostics, path)
    if any(d.severity == "error" for d in diagnostics):
        raise CompileError(diagnostics)
    return LoadedPipeline(
        spec=spec,
        prompts=prompts,
        source_path=path,
        source_sha256=digest,
        warnings=diagnostics,
        children=children,
    )


def _load_child(
    root: Path | None,
    written: str,
    at: tuple[str, int, int],
    chain: tuple[str, ...],
    memo: _Memo,
) -> tuple[LoadedPipeline | None, list[Diagnostic]]:
    """Read and compile the sub-pipeline `written`, named at `at` (the parent file, the
    line and column of its `pipeline:` value).

    Returns the loaded child (None if it cannot be used) and the diagnostics: the
    child's own (at its file:line:col), and one at the parent's `pipeline:` value
    when the child cannot be read, does not compile, closes an include cycle or
    nests too deep.
    """
    parent, line, column = at
    shown = os.path.normpath(os.path.join(os.path.dirname(parent), written))

    def here(message: str) -> Diagnostic:
        return Diagnostic(parent, line, column, message)

    real = None
    if (
        root is not None
        and written.strip()
        and "\x00" not in written
        and not os.path.isabs(written)
    ):
        try:
            real = str((root / written).resolve(strict=True))
        except (OSError, RuntimeError):
            real = None
    if real is not None and real in chain:
        names = [*chain[chain.index(real) :], real]
        if len(names) == 2:
            return None, [here(f"pipeline '{written}' includes itself; remove the 'pipeline:'")]
        cycle = " -> ".join(_shown_in_cycle(name) for name in names)
        return None, [
            here(
                f"include cycle: {cycle}; a pipeline cannot include itself, directly or "
                "through its sub-pipelines"
            )
        ]
    if len(chain) > MAX_INCLUDE_DEPTH:
        files = [_shown_in_cycle(name) for name in (*chain, real or shown)]
        shown_chain = " -> ".join([*files[:2], "...", *files[-2:]])
        return None, [
            here(
                f"sub-pipelines nest more than {MAX_INCLUDE_DEPTH} deep here ({shown_chain}); "
                "flatten the nesting"
            )
        ]
    content, problem = _read_beneath(root, written, shown, _SUB_PIPELINE)
    if content is None:
        return None, [here(problem)]
    key = (real or shown, len(chain))
    done = memo.get(key)
    if done is None:
        child_root = Path(real).parent if real is not None else Path(shown).parent
        digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
        try:
            done = _compile(content, shown, child_root, digest, (*chain, real or shown), memo)
        except CompileError as exc:
            done = exc
        memo[key] = done
    try:
        if isinstance(done, CompileError):
            raise done
        child = done
    except CompileError as exc:
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        return None, [
            *exc.diagnostics,
            here(
                f"sub-pipeline '{written}' does not compile ({errors} "
                f"error{'s' if errors != 1 else ''} in {shown}); fix it first"
            ),
        ]
    return child, list(child.warnings)


def expanded_agents(spec: PipelineSpec, children: Mapping[str, LoadedPipeline]) -> int:
    """How many agents `spec` runs with its sub-pipelines expanded (linear: each child
    object is counted once and multiplied by its references)."""
    memo: dict[int, int] = {}

    def size(node_spec: PipelineSpec, node_children: Mapping[str, LoadedPipeline]) -> int:
        total = len(node_spec.agents)
        for child in node_children.values():
            known = memo.get(id(child))
            if known is None:
                known = memo[id(child)] = size(child.spec, child.children)
            total += known
        return total

    return size(spec, children)


def _expansion_limit(
    spec: PipelineSpec, parsed: Parsed, children: Mapping[str, LoadedPipeline]
) -> list[Diagnostic]:
    """An error at the first `pipeline:` when the expanded pipeline is too large."""
    if not children:
        return []
    total = expanded_agents(spec, children)
    if total <= MAX_EXPANDED_AGENTS:
        return []
    first = next(i for i, agent in enumerate(spec.agents) if agent.id in children)
    loc = parsed.source.value(("agents", first, "pipeline"))
    return [
        Diagnostic(
            loc.file,
            loc.line,
            loc.column,
            f"with its sub-pipelines expanded this pipeline has {total:,} agents (each "
            f"child's agents count once per agent that runs it); at most "
            f"{MAX_EXPANDED_AGENTS:,} are allowed: include a child from fewer agents",
        )
    ]


_IMPORTED_MODULES = frozenset(sys.stdlib_module_names) | {"agentflow", "pydantic"}
"""Top-level modules a generated module may import: a child's module named like one
would not be the module its parent's `import <child> as ...` finds."""


def _module_clashes(
    spec: PipelineSpec, parsed: Parsed, children: Mapping[str, LoadedPipeline], real: str
) -> list[Diagnostic]:
    """A sub-pipeline (or one it includes) whose module name is this pipeline's or another
    file's: the generated modules import each other by these names."""
    owners: dict[str, tuple[str, str]] = {module_name(spec.name): ("this pipeline", real)}
    found: list[Diagnostic] = []
    seen: set[int] = set()  # a child included many times (a diamond) is walked once
    for index, agent in enumerate(spec.agents):
        child = children.get(agent.id)
        if child is None:
            continue
        stack = [child]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.extend(node.children.values())
            name, where = module_name(node.spec.name), os.path.realpath(node.source_path)
            what = (
                f"sub-pipeline '{agent.pipeline}'"
                if node is child
                else f"sub-pipeline '{node.source_path}' (included by '{agent.pipeline}')"
            )
            loc = parsed.source.value(("agents", index, "pipeline"))
            if name in _IMPORTED_MODULES:
                found.append(
                    Diagnostic(
                        loc.file,
                        loc.line,
                        loc.column,
                        f"{what} is named '{node.spec.name}', which gives module '{name}.py', "
                        f"but '{name}' is a module Python already imports (the parent's module "
                        "imports its child by that name); rename the sub-pipeline",
                    )
                )
                continue
            owner = owners.setdefault(name, (what, where))
            if owner[1] == where:
                continue
            found.append(
                Diagnostic(
                    loc.file,
                    loc.line,
                    loc.column,
                    f"{what} is named '{node.spec.name}', which gives module '{name}.py' "
                    f"like {owner[0]}; rename one of them",
                )
            )
    return found


def _shown_in_cycle(real: str) -> str:
    """A file of an include cycle, as the cycle message shows it (relative to the cwd)."""
    try:
        relative = os.path.relpath(real)
    except ValueError:  # pragma: no cover - another drive (Windows)
        return real
    return real if relative.startswith("..") else relative


def _question_path(parsed: Parsed, index: int, human: bool) -> tuple[str | int, ...]:
    """Where agent `index`'s prompt file is written: `prompt:`, or for a human agent
    `human.question` (or `prompt:` beside `kind: human`)."""
    question: tuple[str | int, ...] = ("agents", index, "human", "question")
    if human and question in parsed.source.values:
        return question
    return ("agents", index, "prompt")


def _instructions_line(text: str, parsed: Parsed, index: int) -> int:
    """The YAML line holding the first line of agent `index`'s inline `instructions`."""
    loc = parsed.source.value(("agents", index, "instructions"))
    lines = text.splitlines()
    written = lines[loc.line - 1][loc.column - 1 :] if loc.line <= len(lines) else ""
    return loc.line + 1 if written.startswith(("|", ">")) else loc.line


def _resolved_root(base_dir: Path) -> Path | None:
    """The pipeline's directory with symlinks resolved (None if it cannot be resolved)."""
    try:
        return base_dir.resolve(strict=True)
    except (OSError, RuntimeError):
        return None


def _open_beneath(root: Path, parts: tuple[str, ...]) -> int:
    """Open `root/parts...` one component at a time, following no symlink.

    `parts` is a path already resolved under `root`, so it has no symlink; one
    found now was swapped in after the check (a race), and the open fails
    (ELOOP/ENOTDIR) instead of following it out of the directory.
    """
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            inner = os.open(part, flags, dir_fd=directory)
            os.close(directory)
            directory = inner
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(parts[-1] if parts else ".", flags, dir_fd=directory)
    finally:
        os.close(directory)


@dataclass(frozen=True)
class _FileKind:
    """How the messages of `_read_beneath` name the file: a prompt or a sub-pipeline."""

    noun: str
    plural: str
    max_bytes: int
    why_capped: str


_PROMPT = _FileKind(
    "prompt", "prompts", PROMPT_MAX_BYTES, "prompts are embedded in the generated module"
)
_SUB_PIPELINE = _FileKind(
    "sub-pipeline",
    "sub-pipelines",
    PIPELINE_MAX_BYTES,
    "a sub-pipeline is compiled with its parent",
)


def _read_beneath(
    root: Path | None, written: str, shown: str, kind: _FileKind
) -> tuple[str | None, str]:
    """(text, '') or (None, the problem) for one prompt or sub-pipeline file.

    It must be a regular file under the pipeline's directory `root` once symlinks
    are resolved, at most `kind.max_bytes`: never an absolute path, a path that
    leaves the directory, a device (/dev/zero) or a FIFO. It is opened non-blocking
    (a FIFO cannot hang the compiler) and checked with fstat before any byte is read.
    """
    noun, cap = kind.noun, kind.max_bytes
    if not written.strip():
        return None, f"the {noun} path is empty; give a file relative to the pipeline file"
    if "\x00" in written:
        return None, f"the {noun} path contains a NUL character"
    rule = f"{kind.plural} must be files under the pipeline file's directory"
    if os.path.isabs(written):
        return None, f"{noun} path '{written}' is absolute; {rule}: give a relative path"
    if root is None:
        return None, f"cannot read {noun} file '{written}': the pipeline's directory is unreadable"
    try:
        real = (root / written).resolve(strict=True)
    except FileNotFoundError:
        return None, (
            f"{noun} file '{written}' not found (looked for '{shown}'); create it or fix "
            "the path, which is relative to the pipeline file"
        )
    except (OSError, RuntimeError) as exc:  # a symlink loop, a component that is a file
        return None, f"cannot read {noun} file '{written}': {getattr(exc, 'strerror', None) or exc}"
    if not real.is_relative_to(root):
        return None, (
            f"{noun} path '{written}' leads outside the pipeline file's directory (to '{real}'); "
            f"{rule}, and a symlink may not leave it"
        )
    try:
        fd = _open_beneath(root, real.relative_to(root).parts)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a component became a symlink
            return None, (
                f"{noun} path '{written}' changed while it was read (a directory was "
                f"replaced by a symlink); {rule}"
            )
        return None, f"cannot read {noun} file '{written}': {exc.strerror or exc}"
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return None, f"{noun} '{written}' is a directory, not a file"
        if not stat.S_ISREG(info.st_mode):
            return None, f"{noun} '{written}' is not a regular file (a FIFO, socket or device)"
        if info.st_nlink > 1:
            return None, (
                f"{noun} '{written}' has {info.st_nlink} hard links; a hard link can name a "
                f"file outside the directory, so {rule} with one link"
            )
        if info.st_size > cap:
            return None, _too_large(written, info.st_size, kind)
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            chunk = os.read(fd, cap + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        return None, f"cannot read {noun} file '{written}': {exc.strerror or exc}"
    finally:
        os.close(fd)
    if size > cap:
        return None, _too_large(written, size, kind)
    try:
        return b"".join(chunks).decode("utf-8"), ""
    except UnicodeDecodeError:
        return None, f"{noun} file '{written}' is not valid UTF-8; save it as UTF-8"


def _read_prompt(root: Path | None, written: str, shown: str) -> tuple[str | None, str]:
    """(text, '') or (None, the problem) for one prompt file (see `_read_beneath`)."""
    return _read_beneath(root, written, shown, _PROMPT)


def _too_large(written: str, size: int, kind: _FileKind) -> str:
    return (
        f"{kind.noun} file '{written}' is larger than {kind.max_bytes} bytes (1 MiB) "
        f"({size} bytes or more); {kind.why_capped}"
    )
