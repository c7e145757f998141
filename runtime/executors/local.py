"""`LocalExecutor`: an invocation runs in the run's own trio process (the default)."""

from __future__ import annotations

from pydantic import BaseModel

from ..agents import AgentOutput
from ..engine.context import AgentContext
from ..engine.plan import Handler

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Awaits the handler where the run is: what the dispatcher does with no executor."""

    async def invoke(self, handler: Handler, ctx: AgentContext) -> AgentOutput | BaseModel:
        return await handler(ctx)
