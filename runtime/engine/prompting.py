"""Prompt rendering: each agent's jinja2 template, compiled once per run.

Templates run in a `PromptSandbox` (a prompt file must not reach Python
internals, nor build a huge value) with `StrictUndefined` (a misspelt variable
is an error, not an empty string); the compiler checks variable names ahead of
time with the same sandbox.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2 import filters as jinja_filters
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from ..errors import AgentflowError, PipelineDefinitionError

__all__ = [
    "MAX_RENDERED_PROMPT",
    "MAX_TEMPLATE_VALUE",
    "PromptRenderError",
    "PromptRenderer",
    "PromptSandbox",
]

MAX_TEMPLATE_VALUE = 1_000_000
"""The most characters or items one template operation may produce."""

MAX_RENDERED_PROMPT = 16_000_000
"""The most characters a rendered prompt may have (far beyond any model's context)."""

# A %-format or str.format width/precision: `%999999999d`, `{:>999999999}`, `%*d`.
_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


def _too_large(what: str, size: float) -> None:
    if size > MAX_TEMPLATE_VALUE:
        raise SecurityError(
            f"{what} would make a value of {size:.0f} characters or items; a prompt "
            f"template may build at most {MAX_TEMPLATE_VALUE:,}"
        )


def _check_format(text: str) -> None:
    for match in _PERCENT_WIDTH.finditer(text):
        for part in match.groups():
            if part == "*":
                raise SecurityError("a '*' width in a %-format is not allowed in prompts")
            if part:
                _too_large("a %-format width", int(part))
    for match in _BRACE_WIDTH.finditer(text):
        _too_large("a format width", int(match.group(1)))


def _width_checked(name: str, position: int, default: int) -> Callable[..., Any]:
    """Filter `name` with its size argument (at `position` after the value) bounded."""
    original = jinja_filters.FILTERS[name]

    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        size = args[position] if len(args) > position else default
        if isinstance(size, int):
            _too_large(f"the '{name}' filter", abs(size))
        return original(value, *args, **kwargs)

    return checked


def _checked_format(value: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(value, str):
        _check_format(value)
    return jinja_filters.FILTERS["format"](value, *args, **kwargs)


def _checked_replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        hits = len(s) + 1 if not old else s.count(old)
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        _too_large("the 'replace' filter", len(s) + hits * max(0, len(new) - len(old)))
    return jinja_filters.FILTERS["replace"](eval_ctx, s, old, new, count)


_checked_replace.jinja_pass_arg = jinja_filters.FILTERS["replace"].jinja_pass_arg  # type: ignore[attr-defined]


def _checked_slice(eval_ctx: Any, value: Any, slices: Any, fill_with: Any = None) -> Any:
    if isinstance(slices, int):
        _too_large("the 'slice' filter", abs(slices))
    return jinja_filters.FILTERS["slice"](eval_ctx, value, slices, fill_with)


_checked_slice.jinja_pass_arg = jinja_filters.FILTERS["slice"].jinja_pass_arg  # type: ignore[attr-defined]


class PromptSandbox(SandboxedEnvironment):
    """jinja2's sandbox, also refusing operations that would build a huge value.

    `'x' * 10**10`, `9**9**9`, `'%999999999d' % 1`, `'x'|center(10**10)` would
    take all memory or CPU; jinja2 even folds constant expressions while it
    *compiles* a template, so without these checks `agentflowc` itself could be
    made to hang by a prompt file. The sandbox's own `range` limit stays.
    """

    intercepted_binops = frozenset({"*", "**", "%"})  # also: never folded at compile time

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters.update(
            center=_width_checked("center", 0, 80),
            indent=_width_checked("indent", 0, 4),
            batch=_width_checked("batch", 0, 1),
            format=_checked_format,
            replace=_checked_replace,
            slice=_checked_slice,
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `outputs.a.items` is the field `items`, not the dict method: prompts see
        # typed outputs and input as dicts, whose keys must win over their methods.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _too_large("repeating a sequence", len(seq) * max(times, 0))
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                _too_large("a power", right * math.log10(abs(left)))  # its decimal digits
        elif operator == "%" and isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format(value.__self__)  # `'{:>999999999}'.format(1)`
        return wrapped


class PromptRenderError(AgentflowError):
    """Raised when a prompt template fails on this invocation's data (e.g. an undefined field)."""


class PromptRenderer:
    """Renders agents' prompt templates; compiled templates are cached per renderer (per run)."""

    def __init__(self, prompts: Mapping[str, str]) -> None:
        self._sources = prompts
        self._env = PromptSandbox(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        # Invariant: agent id -> its compiled template; filled on first use.
        self._cache: dict[str, jinja2.Template] = {}

    def template(self, agent: str) -> jinja2.Template:
        """The compiled template of `agent`.

        Raises:
            PipelineDefinitionError: the agent has no prompt, or it does not parse.
        """
        template = self._cache.get(agent)
        if template is not None:
            return template
        source = self._sources.get(agent)
        if source is None:
            raise PipelineDefinitionError(
                f"agent '{agent}' has no prompt text in the compiled pipeline; "
                "recompile the pipeline so its prompt file is embedded"
            )
        try:
            template = self._env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise PipelineDefinitionError(
                f"prompt of agent '{agent}' line {exc.lineno}: {exc.message}; fix the template"
            ) from exc
        self._cache[agent] = template
        return template

    def render(self, agent: str, variables: Mapping[str, Any]) -> str:
        """Render `agent`'s prompt with `variables`.

        Raises:
            PipelineDefinitionError: see `template`.
            PromptRenderError: the template failed on these values.
        """
        template = self.template(agent)
        try:
            chunks: list[str] = []
            size = 0
            for chunk in template.generate(variables):
                size += len(chunk)
                if size > MAX_RENDERED_PROMPT:
                    raise SecurityError(
                        f"the rendered prompt passed {MAX_RENDERED_PROMPT:,} characters (a "
                        "loop repeating a large value?)"
                    )
                chunks.append(chunk)
            return "".join(chunks)
        except jinja2.TemplateError as exc:
            raise PromptRenderError(
                f"prompt of agent '{agent}' failed to render: {exc}. Check the template "
                f"against the variables it gets ({', '.join(sorted(variables))})"
            ) from exc
