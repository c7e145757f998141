"""Load a pipeline: read the file and its prompts, then parse -> lower -> checks.

The only compiler module besides the CLI that does I/O. Everything it finds
wrong is raised as one `CompileError` with every diagnostic; warnings of a
pipeline that compiles are returned on the result.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from agentflow.runtime.spec import PipelineSpec

from .checks import CheckContext, run_checks
from .diagnostics import CompileError, Diagnostic, sort_diagnostics
from .lower import lower
from .parse import parse_text

__all__ = ["LoadedPipeline", "load_pipeline", "load_pipeline_text"]


@dataclass(frozen=True)
class LoadedPipeline:
    """A pipeline that compiled: its IR, its prompts' text, and where it came from.

    `source_path` is the path as the user gave it (relative stays relative: it
    goes into generated headers); `source_sha256` is the hash of the YAML bytes.
    """

    spec: PipelineSpec
    prompts: dict[str, str]
    source_path: str
    source_sha256: str
    warnings: list[Diagnostic] = field(default_factory=list)


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
    return _compile(text, shown, file.parent, hashlib.sha256(raw).hexdigest())


def load_pipeline_text(text: str, path: str, base_dir: Path) -> LoadedPipeline:
    """Compile pipeline source held in memory; `path` is the name shown in diagnostics.

    Prompt paths are resolved against `base_dir`.

    Raises:
        CompileError: with every diagnostic, for a pipeline that does not compile.
    """
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return _compile(text, path, base_dir, digest)


def _fail(path: str, message: str) -> CompileError:
    return CompileError([Diagnostic(path, 1, 1, message)])


def _compile(text: str, path: str, base_dir: Path, digest: str) -> LoadedPipeline:
    text = text.removeprefix("\ufeff")
    parsed = parse_text(text, path)
    spec = lower(parsed)
    prompts: dict[str, str] = {}
    prompt_files: dict[str, str] = {}
    diagnostics: list[Diagnostic] = []
    for index, agent in enumerate(spec.agents):
        shown = os.path.normpath(os.path.join(os.path.dirname(path), agent.prompt))
        prompt_files[agent.id] = shown
        content, problem = _read_prompt(base_dir / agent.prompt, agent.prompt, shown)
        if content is not None:
            prompts.setdefault(agent.id, content)
        else:
            loc = parsed.source.value(("agents", index, "prompt"))
            diagnostics.append(Diagnostic(loc.file, loc.line, loc.column, problem))
    ctx = CheckContext(spec, parsed.source, prompts, prompt_files)
    diagnostics += run_checks(ctx)
    diagnostics = sort_diagnostics(diagnostics, path)
    if any(d.severity == "error" for d in diagnostics):
        raise CompileError(diagnostics)
    return LoadedPipeline(
        spec=spec,
        prompts=prompts,
        source_path=path,
        source_sha256=digest,
        warnings=diagnostics,
    )


def _read_prompt(file: Path, written: str, shown: str) -> tuple[str | None, str]:
    """(text, '') or (None, the problem) for one prompt file."""
    if not written.strip():
        return None, "the prompt path is empty; give a file relative to the pipeline file"
    try:
        return file.read_bytes().decode("utf-8"), ""
    except FileNotFoundError:
        return None, (
            f"prompt file '{written}' not found (looked for '{shown}'); create it or fix "
            "the path, which is relative to the pipeline file"
        )
    except IsADirectoryError:
        return None, f"prompt '{written}' is a directory, not a file"
    except UnicodeDecodeError:
        return None, f"prompt file '{written}' is not valid UTF-8; save it as UTF-8"
    except (OSError, ValueError) as exc:
        return None, f"cannot read prompt file '{written}': {exc}"
