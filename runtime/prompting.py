"""Prompt rendering: each agent's jinja2 template, compiled once per run.

Templates run in a `SandboxedEnvironment` (a prompt file must not reach
Python internals) with `StrictUndefined` (a misspelt variable is an error, not
an empty string); the compiler checks variable names ahead of time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .errors import AgentflowError, PipelineDefinitionError

__all__ = ["PromptRenderError", "PromptRenderer"]


class PromptRenderError(AgentflowError):
    """Raised when a prompt template fails on this invocation's data (e.g. an undefined field)."""


class PromptRenderer:
    """Renders agents' prompt templates; compiled templates are cached per renderer (per run)."""

    def __init__(self, prompts: Mapping[str, str]) -> None:
        self._sources = prompts
        self._env = SandboxedEnvironment(
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
            return template.render(variables)
        except jinja2.TemplateError as exc:
            raise PromptRenderError(
                f"prompt of agent '{agent}' failed to render: {exc}. Check the template "
                "against the variables it gets (input, item, item_id, upstream, feedback, "
                "attempt, agent)"
            ) from exc
