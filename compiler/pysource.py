"""Python source building blocks for the emitter: safe literals and a small formatter.

Everything the compiler pastes into generated code goes through here: strings as
`py_str` literals (a `repr()` that prefers double quotes, checked to round-trip),
identifiers through `check_identifier`. Expressions are built as a tiny tree
(`Atom`, `Call`, `Tuple`, `Dict`, `Concat`) and laid out the way `ruff format`
lays them out: on one line if they fit in 100 columns, else one element per
line with a trailing comma (a "magic trailing comma" keeps ruff from joining
them again). That makes the generated modules ruff-format stable without
running ruff at compile time.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from dataclasses import dataclass

from agentflow.runtime.errors import AgentflowError

from .naming import is_identifier

__all__ = [
    "LINE_LENGTH",
    "Atom",
    "Call",
    "Concat",
    "Dict",
    "EmitError",
    "Expr",
    "Tuple",
    "assign",
    "check_identifier",
    "docstring_text",
    "fmt",
    "one_line",
    "py_str",
    "signature",
    "width",
]

LINE_LENGTH = 100
_INDENT = 4


class EmitError(AgentflowError):
    """Raised when the emitter is handed something it must not paste into code (a bug upstream)."""


def py_str(value: str) -> str:
    """A Python literal for `value`: `repr()`, with double quotes where that needs no escapes."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'  # what repr() gives, with double quotes: nothing to escape
    text = repr(value)
    if text.startswith("'") and '"' not in value:
        # No quote character of either kind occurs in the body, so swapping the
        # delimiters is exact (repr only escapes ' when it delimits with ').
        text = '"' + text[1:-1] + '"'
    if ast.literal_eval(text) != value:  # pragma: no cover - a bug in the above
        raise EmitError(f"string literal does not round-trip: {text}")
    return text


def one_line(value: str) -> str:
    """`value` with every non-printable character escaped: safe inside a `#` comment."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def docstring_text(value: str) -> str:
    """`value` escaped to sit between triple double quotes; newlines are kept."""
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n" or char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1])
    return "".join(out)


def check_identifier(value: str, what: str) -> str:
    """Return `value` if it is a lower-case identifier usable as a Python name.

    Raises:
        EmitError: it is not (the checks should have rejected it first).
    """
    if not is_identifier(value):
        raise EmitError(
            f"{what} {value!r} cannot be used as a Python name: ids must match "
            "[a-z][a-z0-9_]* and must not be a Python keyword. Rename it in the pipeline."
        )
    return value


def width(text: str) -> int:
    """Display width as ruff counts it: wide East Asian characters take two columns."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


@dataclass(frozen=True, slots=True)
class Atom:
    """Source text that is never split (a name, a number, a string literal)."""

    text: str

    def flat(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Concat:
    """A string; split into one literal per line (implicit concatenation) if it does not fit."""

    value: str

    def flat(self) -> str:
        return py_str(self.value)

    def parts(self) -> list[str]:
        return [py_str(p) for p in re.findall(r"[^\n]*\n|[^\n]+", self.value)]


@dataclass(frozen=True, slots=True)
class Call:
    """`func(arg, key=value, ...)`; `args` are (keyword, `"**"` or None, value) pairs."""

    func: str
    args: tuple[tuple[str | None, Expr], ...]

    def flat(self) -> str:
        inner = ", ".join(_kw(k) + v.flat() for k, v in self.args)
        return f"{self.func}({inner})"


@dataclass(frozen=True, slots=True)
class Tuple:
    """A tuple display (or a set display with `braces="{}"`).

    A one-element tuple gets its trailing comma.
    """

    items: tuple[Expr, ...]
    braces: str = "()"

    def flat(self) -> str:
        if len(self.items) == 1 and self.braces == "()":
            return f"({self.items[0].flat()},)"
        return self.braces[0] + ", ".join(i.flat() for i in self.items) + self.braces[1]


@dataclass(frozen=True, slots=True)
class Dict:
    """A dict display; each entry may carry a comment line placed before it.

    A dict with comments never fits on one line (ruff keeps comments in place).
    """

    entries: tuple[tuple[Expr, Expr, str | None], ...]

    def flat(self) -> str:
        return "{" + ", ".join(f"{k.flat()}: {v.flat()}" for k, v, _ in self.entries) + "}"


Expr = Atom | Concat | Call | Tuple | Dict


def _kw(key: str | None) -> str:
    """`key=`, or `**` for the unpacking pseudo-keyword, or nothing for a positional argument."""
    if key is None or key == "**":
        return key or ""
    return f"{key}="


def _fits(expr: Expr, prefix: int, suffix: int) -> bool:
    if isinstance(expr, Dict) and any(c is not None for _, _, c in expr.entries):
        return False
    flat = expr.flat()
    return "\n" not in flat and prefix + width(flat) + suffix <= LINE_LENGTH


def fmt(expr: Expr, *, indent: int, prefix: int, suffix: int = 0) -> str:
    """Lay out `expr` starting at column `prefix` on a line indented by `indent`.

    `suffix` is the width of what follows the expression on its last line (a
    comma, a closing bracket). Continuation lines are indented by `indent + 4`.
    """
    if _fits(expr, prefix, suffix) or isinstance(expr, Atom):
        return expr.flat()
    pad = " " * (indent + _INDENT)
    lines: list[str] = []
    if isinstance(expr, Concat):
        joined = expr.flat()
        # ruff joins implicitly concatenated parts whenever the joined literal fits.
        fits_inside = indent + _INDENT + width(joined) <= LINE_LENGTH
        lines = [pad + joined] if fits_inside else [pad + part for part in expr.parts()]
        return "(\n" + "\n".join(lines) + "\n" + " " * indent + ")"
    if isinstance(expr, Call):
        open_, close = f"{expr.func}(", ")"
        for keyword, arg in expr.args:
            head = pad + _kw(keyword)
            lines.append(head + fmt(arg, indent=indent + _INDENT, prefix=len(head), suffix=1) + ",")
    elif isinstance(expr, Tuple):
        open_, close = expr.braces[0], expr.braces[1]
        for item in expr.items:
            lines.append(pad + fmt(item, indent=indent + _INDENT, prefix=len(pad), suffix=1) + ",")
    else:
        open_, close = "{", "}"
        for key, value, comment in expr.entries:
            if comment is not None:
                lines.append(pad + "# " + one_line(comment))
            value_text = value.flat()
            key_text = fmt(
                key, indent=indent + _INDENT, prefix=len(pad), suffix=width(value_text) + 3
            )
            head = pad + key_text + ": "
            last = head.rsplit("\n", 1)[-1]
            lines.append(
                head + fmt(value, indent=indent + _INDENT, prefix=width(last), suffix=1) + ","
            )
    return open_ + "\n" + "\n".join(lines) + "\n" + " " * indent + close


def assign(target: str, value: str, *, indent: int = 0) -> str:
    """`target = value` as ruff lays it out: wrapped in parentheses if only that makes it fit."""
    flat = f"{target} = {value}"
    if indent + width(flat) <= LINE_LENGTH or indent + _INDENT + width(value) > LINE_LENGTH:
        return flat
    pad = " " * indent
    return f"{target} = (\n{pad}{' ' * _INDENT}{value}\n{pad})"


def signature(head: str, params: str, tail: str, *, indent: int) -> str:
    """`head(params)tail` (e.g. `async def f`, `self, x: int`, ` -> int:`), split if too long."""
    flat = f"{head}({params}){tail}"
    if indent + width(flat) <= LINE_LENGTH:
        return flat
    pad = " " * indent
    return f"{head}(\n{pad}{' ' * _INDENT}{params}\n{pad}){tail}"
