"""`RunServices`: what one run shares with its agent invocations (via AgentContext)."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import trio

from ..errors import BudgetExceededError, PipelineDefinitionError
from ..events.event import EventKind
from ..events.hub import EventHub
from ..models.base import Model
from ..models.redaction import SecretRedactor, model_secrets
from ..pipeline import CompiledPipeline
from ..tools.base import Tool
from ..usage import Usage
from .memo import Memo
from .prompting import PromptRenderer

__all__ = ["RunBudget", "RunServices", "ToolTable"]


class RunBudget:
    """The run's model usage so far, checked against its cost and token limits.

    The agent runner charges every model turn; apps whose handlers call their
    own models may charge too (`ctx.services.budget.charge(usage)`).
    """

    def __init__(
        self,
        hub: EventHub | None = None,
        *,
        max_cost_usd: float | None = None,
        max_total_tokens: int | None = None,
    ) -> None:
        self._hub = hub
        self.max_cost_usd = max_cost_usd
        self.max_total_tokens = max_total_tokens
        # Invariant: the sum of every usage charged in this run.
        self.usage = Usage()
        # Invariant: set once, by the first charge that went over a limit.
        self.exceeded: str | None = None

    def charge(self, usage: Usage) -> None:
        """Add `usage` to the run's total.

        Raises:
            BudgetExceededError: the total is over `max_cost_usd` or `max_total_tokens`
                (a `budget_exceeded` event is emitted the first time).
        """
        self.usage = total = self.usage + usage
        reason = self.exceeded
        if reason is None:
            if self.max_cost_usd is not None and total.cost_usd > self.max_cost_usd:
                limit, spent = f"max_cost_usd={self.max_cost_usd}", total.cost_usd
            elif self.max_total_tokens is not None and total.total_tokens > self.max_total_tokens:
                limit, spent = f"max_total_tokens={self.max_total_tokens}", total.total_tokens
            else:
                return
            reason = self.exceeded = f"budget exceeded: {limit}, spent {spent}"
            if self._hub is not None:
                self._hub.emit(EventKind.BUDGET_EXCEEDED, payload={"limit": limit, "spent": spent})
        raise BudgetExceededError(
            f"{reason}. Raise the limit (defaults.max_cost_usd / max_total_tokens, or the "
            "run options) or make the pipeline cheaper"
        )


@dataclass(frozen=True)
class RunServices:
    """The run's model, tools and event hub, reachable from every AgentContext.

    `model_limiter` bounds concurrent model calls run-wide (by default it does not:
    the dispatch limits do); `prompts` caches the
    compiled prompt templates; `budget` totals usage and enforces the limits.
    `backoff_scale`, `seed` and `max_concurrency` are the run's options (a
    sub-pipeline's run takes them over: `engine/subpipeline.py`).
    """

    pipeline: CompiledPipeline
    model: Model
    tools: Mapping[str, Tool]
    hub: EventHub
    model_limiter: trio.CapacityLimiter = field(
        default_factory=lambda: trio.CapacityLimiter(math.inf)
    )
    prompts: PromptRenderer | None = None
    budget: RunBudget = field(default_factory=RunBudget)
    backoff_scale: float = 1.0
    seed: int | None = None
    max_concurrency: int | None = None
    # The run's memo when it has a run store (commit before proceed; a resume's recorded
    # steps): `engine/memo.py`. None: nothing is recorded, nothing waits.
    memo: Memo | None = None

    @functools.cached_property
    def redactor(self) -> SecretRedactor:
        """Scrubs what the run keeps out of its events (the model's key, the environment's)."""
        return SecretRedactor(model_secrets(self.model))

    @functools.cached_property
    def answer_redactor(self) -> SecretRedactor:
        """`redactor` less the secrets the model already scrubs from its own answers."""
        own = set(getattr(self.model, "secrets", ()) or ())
        return SecretRedactor(s for s in self.redactor.secrets if s not in own)

    def renderer(self) -> PromptRenderer:
        """The run's prompt renderer (a fresh one if none was given)."""
        if self.prompts is None:
            object.__setattr__(self, "prompts", PromptRenderer(self.pipeline.prompts))
        assert self.prompts is not None
        return self.prompts


class ToolTable(Mapping[str, Tool]):
    """The run's tools by id, resolved on first use.

    Precedence: the app's `tools` argument, then the pipeline's plugin factories,
    then framework builtins (`agentflow.runtime.tools.registry`). Lazy, so a run
    whose agents are all app handlers never builds (or fails on) a tool it does
    not use.
    """

    def __init__(self, pipeline: CompiledPipeline, user_tools: Mapping[str, Tool] | None) -> None:
        self._pipeline = pipeline
        self._specs = {t.id: t for t in pipeline.spec.tools}
        # The caller's instances, which a sub-pipeline's table takes over too (`for_child`).
        self._given: dict[str, Tool] = dict(user_tools or {})
        # Invariant: tool id -> the instance every agent of this run shares.
        self._resolved: dict[str, Tool] = dict(self._given)

    def for_child(self, child: CompiledPipeline) -> ToolTable:
        """The tool table of a sub-pipeline run inside this run: the caller's instances
        take precedence there too; the child's own plugins and builtins are its own."""
        return ToolTable(child, self._given)

    def __getitem__(self, tool_id: str) -> Tool:
        tool = self._resolved.get(tool_id)
        if tool is None:
            tool = self._resolved[tool_id] = self._build(tool_id)
        return tool

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._resolved, *self._specs]))

    def __len__(self) -> int:
        return len(set(self._resolved) | set(self._specs))

    def _build(self, tool_id: str) -> Tool:
        spec = self._specs.get(tool_id)
        if spec is None:
            raise PipelineDefinitionError(
                f"tool '{tool_id}' is not declared in the pipeline's tools and was not passed "
                "to run_pipeline(tools=...); declare it or pass an instance"
            )
        factory = self._pipeline.plugin_tools.get(tool_id)
        if factory is not None:
            return factory()
        if spec.type == "plugin":
            raise PipelineDefinitionError(
                f"plugin tool '{tool_id}' ({spec.plugin}) has no factory in the compiled "
                "pipeline; recompile it, or pass an instance with run_pipeline(tools=...)"
            )
        from ..tools.registry import builtin_tool  # lazy: most runs need no builtin

        tool: Tool = builtin_tool(tool_id, dict(spec.config))
        return tool
