"""Compiler diagnostics: `file:line:col: severity: message`, collected, never a traceback.

Every stage reports problems as `Diagnostic`s; the loader raises one
`CompileError` carrying all of them (sorted: the pipeline file first, then by
line and column), the way a compiler reports every error it found rather than
stopping at the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from agentflow.runtime.errors import AgentflowError

__all__ = ["CompileError", "Diagnostic", "did_you_mean", "sort_diagnostics"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a pipeline source; `line` and `column` are 1-based."""

    file: str
    line: int
    column: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


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
