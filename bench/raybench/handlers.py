"""The benchmark's agents: `plan` makes `items` work items; `work` sleeps `seconds`
(a simulated invocation: a model call or a tool that waits)."""

from __future__ import annotations

import trio

from agentflow.runtime import AgentContext, AgentOutput

__all__ = ["plan", "work"]


async def plan(ctx: AgentContext) -> AgentOutput:
    count = int(ctx.input["items"])  # type: ignore[index, call-overload]
    return AgentOutput(text=f"{count} items", items=list(range(1, count + 1)))


async def work(ctx: AgentContext) -> AgentOutput:
    await trio.sleep(float(ctx.input["seconds"]))  # type: ignore[index, arg-type]
    return AgentOutput(text=f"done {ctx.item.payload}")
