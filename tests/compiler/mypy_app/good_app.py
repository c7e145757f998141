"""An app that overrides one agent of the generated hello_world module (mypy must accept it)."""

from __future__ import annotations

import hello_world
import trio

from agentflow.runtime import AgentContext, AgentOutput
from agentflow.runtime.engine.runner import RunResult


class MyHandlers(hello_world.DefaultHandlers):
    """Reviews without a model: passes anything that is not empty."""

    async def reviewer_agent(self, ctx: AgentContext) -> AgentOutput:
        text = ctx.upstream.text if ctx.upstream is not None else ""
        return AgentOutput(passed=bool(text.strip()), text="ok")


async def main() -> RunResult:
    key = (hello_world.INITIAL, hello_world.Trigger.WRITER_AGENT_ON_START)
    moved: hello_world.State = hello_world.TRANSITIONS[key]
    assert moved is hello_world.State.RUNNING
    return await hello_world.run("explain trio", handlers=MyHandlers())


if __name__ == "__main__":
    print(trio.run(main))
