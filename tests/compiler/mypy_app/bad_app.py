"""Wiring mistakes that mypy must reject in an app using a generated module.

Each line marked `# error: <code>` must be reported by mypy with that code.
"""

from __future__ import annotations

import hello_world

from agentflow.runtime import AgentContext, AgentOutput


class SyncHandlers(hello_world.DefaultHandlers):
    def writer_agent(self, ctx: AgentContext) -> AgentOutput:  # error: override
        return AgentOutput(text="sync")


class WrongReturn(hello_world.DefaultHandlers):
    async def reviewer_agent(self, ctx: AgentContext) -> str:  # error: override
        return "passed"


class NotHandlers:
    async def writer_agent(self, ctx: AgentContext) -> AgentOutput:
        return AgentOutput()


async def main() -> None:
    await hello_world.run("x", handlers=NotHandlers())  # error: arg-type
    key = (hello_world.INITIAL, hello_world.Trigger.WRITER_AGENT_ON_START)
    hello_world.TRANSITIONS[key] = hello_world.State.FAILED  # error: index
