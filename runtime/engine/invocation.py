"""`InvocationExecutor`: where the dispatcher runs one agent invocation's body.

The dispatcher publishes an invocation's `agent_started` / `agent_completed`
events and records its output itself; only the handler call goes through the
executor (`Dispatcher._invoke`), so every executor sees the same run. With no
executor (`RunOptions.executor` None, the default) the dispatcher awaits the
handler directly. `agentflow.runtime.executors` has the implementations: the
local one (the same direct call) and the Ray one (docs/scale.md).
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from ..agents import AgentOutput
from .context import AgentContext
from .plan import Handler

__all__ = ["InvocationExecutor"]


class InvocationExecutor(Protocol):
    """Runs `handler(ctx)` somewhere and returns its answer.

    The events the body emits must reach `ctx.services.hub` in the order the body
    emitted them, and the model usage it spends must be charged to
    `ctx.services.budget` (raising `BudgetExceededError` as a local run would).
    The handler's own exceptions propagate unchanged.
    """

    async def invoke(self, handler: Handler, ctx: AgentContext) -> AgentOutput | BaseModel: ...
