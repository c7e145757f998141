"""Python agents of the Ray test pipelines (`handler: tests.ray.handlers:...`).

They run in the orchestrator or in a Ray actor, by the agent's `executor:`; the
actor imports this module by name (the test cluster's workers get the test
process's sys.path).
"""

from __future__ import annotations

import os
import signal

import trio

from agentflow.runtime import AgentContext, AgentOutput

__all__ = ["die_once", "plan", "slow", "summarise", "where"]

KILL_MARKER_ENV = "AGENTFLOW_TEST_KILL_MARKER"
"""A file path: `die_once` SIGKILLs its own process while the file does not exist."""


async def plan(ctx: AgentContext) -> AgentOutput:
    """The fan-out's work items: `n` topics (the run input), as text."""
    count = int(str(ctx.input))
    return AgentOutput(text=f"{count} topics", items=[f"topic {k}" for k in range(1, count + 1)])


async def summarise(ctx: AgentContext) -> AgentOutput:
    """The reduce: every child's output, in item order."""
    lines = [f"{child.id}: {getattr(child.output, 'text', child.status)}" for child in ctx.children]
    return AgentOutput(text="\n".join(lines))


async def where(ctx: AgentContext) -> AgentOutput:
    """Say which process ran it (the test compares it with the orchestrator's)."""
    return AgentOutput(text=f"pid {os.getpid()} item {ctx.item.payload}")


async def slow(ctx: AgentContext) -> AgentOutput:
    """A simulated invocation of `ctx.input` seconds (the benchmark's)."""
    await trio.sleep(float(ctx.input))
    return AgentOutput(text=str(ctx.item.payload))


async def die_once(ctx: AgentContext) -> AgentOutput:
    """SIGKILL this worker the first time (per marker file) it runs item 2's work."""
    marker = os.environ.get(KILL_MARKER_ENV)
    if marker and ctx.item.index == 2:
        try:
            with open(marker, "x"):
                pass
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return AgentOutput(text=f"done {ctx.item.payload}")


async def probe(ctx: AgentContext) -> AgentOutput:
    """What the cluster has left while this invocation runs (its actor's reservations
    and every other live actor's are taken)."""
    import json

    import ray

    free = ray.available_resources()
    return AgentOutput(
        text=json.dumps(
            {"CPU": free.get("CPU", 0.0), "model_calls": free.get("agentflow_model_calls", 0.0)}
        )
    )


async def pause(ctx: AgentContext) -> AgentOutput:
    """Half a second of work on a work item (a run long enough to interrupt)."""
    await trio.sleep(0.5)
    return AgentOutput(text=f"done {ctx.item.payload}")
