"""Prompt template checks: jinja2 syntax, and only the variables an agent's context provides.

Prompts are rendered at run time in a sandboxed jinja2 environment with
`AgentContext.prompt_variables()`; a typo such as `{{ imput }}` would render as
an empty string and silently degrade the prompt, so the compiler rejects it.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import TemplateSyntaxError, meta

from agentflow.runtime.agents import PROMPT_VARIABLES
from agentflow.runtime.prompting import PromptSandbox

from .diagnostics import did_you_mean

__all__ = ["template_problems"]

_ENV = PromptSandbox()  # the runtime's sandbox: compiling folds constants through it


def template_problems(text: str) -> list[tuple[int, str]]:
    """(1-based template line, message) for each problem in a prompt template."""
    return list(_template_problems(text))


@lru_cache(maxsize=256)
def _template_problems(text: str) -> tuple[tuple[int, str], ...]:
    """Cached: many agents share one prompt file, and parsing a template costs ~0.15 ms."""
    try:
        tree = _ENV.parse(text)
        _ENV.compile(tree)  # as the runtime will: Python limits how deep the generated code nests
    except TemplateSyntaxError as exc:
        return ((exc.lineno or 1, f"template syntax error: {exc.message}"),)
    except (RecursionError, SyntaxError, MemoryError) as exc:  # IndentationError is a SyntaxError
        reason = exc.msg if isinstance(exc, SyntaxError) else "too deep to parse"
        return ((1, f"the template nests too deeply ({reason}); flatten its blocks"),)
    problems: list[tuple[int, str]] = []
    available = ", ".join(sorted(PROMPT_VARIABLES))
    for name in sorted(meta.find_undeclared_variables(tree) - PROMPT_VARIABLES):
        problems.append(
            (
                _first_use(text, name),
                f"prompt uses undefined variable '{name}'{did_you_mean(name, PROMPT_VARIABLES)}; "
                f"available: {available}",
            )
        )
    return tuple(problems)


def _first_use(text: str, name: str) -> int:
    """The line where `name` first appears as a template name token (1 if not found)."""
    try:
        for line, token, value in _ENV.lex(text):
            if token == "name" and value == name:
                return line
    except TemplateSyntaxError:
        pass
    return 1
