"""Compiler diagnostics: `file:line:col: severity: message`, collected, never a traceback.

Every stage reports problems as `Diagnostic`s; the loader raises one
`CompileError` carrying all of them (sorted: the pipeline file first, then by
line and column), the way a compiler reports every error it found rather than
stopping at the first.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
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


_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
"""Control, line-separator and bidirectional-formatting characters, and lone surrogates
(which no UTF-8 terminal or file can take)."""


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


_FULL_SEARCH = 64
"""Up to this many choices, every one is compared; beyond, only likely neighbours."""
_NEIGHBOURS = 16


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ` (did you mean 'x'?)` suffix naming the closest choice, or '' if none is close.

    With many choices (a pipeline of thousands of ids with a typo in each) comparing
    every pair would be quadratic; then only the choices next to `word` in sorted
    order, forwards and backwards (a typo keeps a prefix or a suffix), are compared.
    """
    ordered, by_suffix = _sorted_choices(frozenset(choices))
    candidates: Iterable[str] = ordered
    if len(ordered) > _FULL_SEARCH:
        at = bisect.bisect(ordered, word)
        reverse_at = bisect.bisect(by_suffix, word[::-1])
        near = ordered[max(0, at - _NEIGHBOURS) : at + _NEIGHBOURS]
        near += tuple(
            r[::-1] for r in by_suffix[max(0, reverse_at - _NEIGHBOURS) : reverse_at + _NEIGHBOURS]
        )
        candidates = sorted(set(near))
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


@lru_cache(maxsize=16)
def _sorted_choices(choices: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The choices sorted, and their reversals sorted (cached: one set serves many calls)."""
    return tuple(sorted(choices)), tuple(sorted(c[::-1] for c in choices))
