"""Use a compiled pipeline from your own code.

Overrides one agent with plain Python (a word-limit check instead of a model),
keeps the writer on its model (offline replay here), collects the events in a
sink of its own, and prints the result. Run from the repository root:

    PYTHONPATH=generated python examples/custom_reviewer.py
"""

from __future__ import annotations

from pathlib import Path

import hello_world  # generated/hello_world.py, written by `agentflowc pipelines/hello_world.yaml`
import trio

from agentflow.runtime import AgentContext, AgentOutput, PipelineEvent, QAIssue, RunResult
from agentflow.runtime.models.replay import ReplayModel

CASSETTE = Path(__file__).resolve().parents[1] / "pipelines" / "hello_world.cassette.jsonl"


class WordLimitReviewer(hello_world.DefaultHandlers):
    """The reviewer is a rule, not a model: at most 150 words."""

    async def reviewer_agent(self, ctx: AgentContext) -> AgentOutput:
        words = len(ctx.upstream.text.split()) if ctx.upstream else 0
        if words <= 150:
            return AgentOutput(passed=True, text=f"{words} words")
        issue = QAIssue(message=f"{words} words; the limit is 150", suggestion="cut it down")
        return AgentOutput(passed=False, issues=[issue])


class PrintVerdicts:
    """A user sink: anything with `name`, async `emit(event, *, line)` and `aclose()`."""

    name = "print-verdicts"

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        if event.kind == "qa_verdict":
            print(f"verdict on {event.item} attempt {event.attempt}: {event.payload['passed']}")

    async def aclose(self) -> None:
        return None


async def main() -> RunResult:
    return await hello_world.run(
        "how Rust's ownership model prevents memory bugs",
        handlers=WordLimitReviewer(),
        model=ReplayModel(CASSETTE),
        sinks=[PrintVerdicts()],
    )


if __name__ == "__main__":
    result = trio.run(main)
    print(result.status, result.final_state, result.items[0].output[:60])
