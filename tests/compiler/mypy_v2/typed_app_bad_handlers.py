"""A handler function with the wrong return type: the generated module's call fails mypy."""

from __future__ import annotations

from agentflow.runtime import AgentContext, AgentOutput


async def archive_text(ctx: AgentContext) -> AgentOutput:
    return AgentOutput(text="stored")
