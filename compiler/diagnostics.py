"""Compiler diagnostics: `file:line:col: severity: message`, collected, never a traceback.

Every stage reports problems as `Diagnostic`s; the loader raises one
`CompileError` carrying all of them (sorted: the pipeline file first, then by
line and column), the way a compiler reports every error it found rather than
stopping at the first.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from agentflow.runtime.errors import AgentflowError

__all__ = ["CompileError", "Diagnostic", "did_you_mean", "escape_controls", "sort_diagnostics"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a pipeline source; `line` and `column` are 1-based."""

    file: str
    line: int
    column: int
    message: str
    severity: Severity = "error"

    def __post_init__(self) -> None:
        # Values from YAML escapes ("\\x1b[2J") must not reach the user's terminal raw.
        object.__setattr__(self, "file", escape_controls(self.file))
        object.__setattr__(self, "message", escape_controls(self.message))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
"""Control, line-separator and bidirectional-formatting characters."""


def escape_controls(text: str) -> str:
    """`text` with control and bidi characters written as escapes (`\\x1b`, `\\u202e`)."""
    return _CONTROLS.sub(lambda match: repr(match.group())[1:-1], text)


class CompileError(AgentflowError):
    """Raised when a pipeline does not compile; `diagnostics` holds every error and warning."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        """Only the diagnostics with severity `error`."""
        return [d for d in self.diagnostics if d.severity == "error"]


def sort_diagnostics(diagnostics: Iterable[Diagnostic], main_file: str) -> list[Diagnostic]:
    """Sort by file (the pipeline file first, then prompts by name), line, column, message.

    Duplicates (same text at the same place) are dropped.
    """
    unique = set(diagnostics)
    return sorted(
        unique,
        key=lambda d: (d.file != main_file, d.file, d.line, d.column, d.message, d.severity),
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ` (did you mean 'x'?)` suffix naming the closest choice, or '' if none is close."""
    matches = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
