"""Identifier helpers: what a pipeline id may be, and the Python names made from ids."""

from __future__ import annotations

import keyword
import re

__all__ = [
    "IDENTIFIER_PATTERN",
    "is_identifier",
    "is_python_identifier",
    "module_name",
    "pascal_case",
    "snake_case",
    "suggest_identifier",
    "upper_snake",
]

IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_]*$"
"""Agent, state and tool ids: lowercase snake_case, so they are valid Python names."""

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def is_identifier(text: str) -> bool:
    """True if `text` is a valid pipeline id: matches the pattern and is not a Python keyword."""
    return bool(_IDENTIFIER.match(text)) and not keyword.iskeyword(text)


def is_python_identifier(text: str) -> bool:
    """True if `text` can be used as a Python name (an identifier that is not a keyword)."""
    return text.isidentifier() and text.isascii() and not keyword.iskeyword(text)


def snake_case(text: str) -> str:
    """`"hello-world"` -> `"hello_world"`, `"HelloWorld"` -> `"hello_world"`.

    Runs of characters that are not ASCII letters or digits become one `_`;
    leading and trailing `_` are dropped. The result may still start with a
    digit or be empty: check it with `is_python_identifier`.
    """
    spaced = _CAMEL_BOUNDARY.sub("_", text)
    return _NON_WORD.sub("_", spaced).strip("_").lower()


def module_name(pipeline_name: str) -> str:
    """The generated module's name (without `.py`) for a pipeline's `name`."""
    return snake_case(pipeline_name)


def suggest_identifier(text: str) -> str | None:
    """A valid id close to `text` (for a did-you-mean), or None if there is none."""
    candidate = snake_case(text)
    if candidate and not candidate[0].isalpha():
        candidate = "x_" + candidate
    if keyword.iskeyword(candidate):
        candidate += "_"
    return candidate if candidate and _IDENTIFIER.match(candidate) else None


def pascal_case(identifier: str) -> str:
    """`"writer_agent"` -> `"WriterAgent"` (for class names)."""
    return "".join(part[:1].upper() + part[1:] for part in identifier.split("_") if part)


def upper_snake(identifier: str) -> str:
    """`"writer_agent"` -> `"WRITER_AGENT"` (for enum members and constants)."""
    return identifier.upper()
