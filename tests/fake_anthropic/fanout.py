"""A Claude fan-out for rate-limit and transport tests and benchmarks.

`fanout_pipeline(concurrency)`: an orchestrator agent returns N work items and
a worker agent answers each one (no QA step), so a run makes 1 + N model
calls, at most `concurrency` at once. `fanout_script(items, ...)` answers them
against the fake API: the plan (a structured items call), then one text
answer per item, its stream events `delay_s` apart.
"""

from __future__ import annotations

from collections.abc import Callable

from agentflow.runtime.models.base import STRUCTURED_TOOL_NAMES
from agentflow.runtime.pipeline import CompiledPipeline, compile_spec
from agentflow.runtime.spec import PipelineSpec

from .server import RecordedRequest, Scripted, text_reply, tool_reply

__all__ = ["PLAN_PROMPT", "WORKER_PROMPT", "fanout_pipeline", "fanout_script"]

PLAN_PROMPT = "Plan the work: {{ input }}"
WORKER_PROMPT = "Answer the question in one paragraph: {{ item }}"


def fanout_pipeline(concurrency: int, *, max_tokens: int = 1024) -> CompiledPipeline:
    """orchestrator -(fan-out, `concurrency` at once)-> worker."""
    spec = PipelineSpec.model_validate(
        {
            "name": "rate-limit-fanout",
            "defaults": {"max_concurrency": concurrency, "max_tokens": max_tokens},
            "state_machine": {
                "initial": "initialised",
                "terminal": ["complete", "failed"],
                "states": [
                    {"id": s} for s in ("initialised", "planning", "working", "complete", "failed")
                ],
            },
            "agents": [
                {
                    "id": "orchestrator_agent",
                    "prompt": "p.md",
                    "transitions": {"on_start": "planning", "on_complete": "working"},
                    "dispatch": {"strategy": "parallel_fan_out", "target": "worker_agent"},
                },
                {
                    "id": "worker_agent",
                    "prompt": "p.md",
                    "transitions": {"on_complete": "complete", "on_abort": "failed"},
                },
            ],
        }
    )
    return compile_spec(spec, {"orchestrator_agent": PLAN_PROMPT, "worker_agent": WORKER_PROMPT})


def fanout_script(
    items: int,
    *,
    delay_s: float = 0.0,
    answer: str = "An answer.",
    output_tokens: int = 7,
    chunk_size: int = 6,
) -> Callable[[RecordedRequest], Scripted]:
    """The fake API's answers: the plan of `items` questions, then `answer` to each."""
    usage = {"input_tokens": 12, "output_tokens": output_tokens}

    def reply(request: RecordedRequest) -> Scripted:
        system = request.body.get("system")
        text = system[0]["text"] if isinstance(system, list) else str(system)
        if text.startswith("Plan"):
            work = [f"question {n}" for n in range(items)]
            return tool_reply(STRUCTURED_TOOL_NAMES["items"], {"items": work})
        return text_reply(answer, delay_s=delay_s, usage=usage, chunk_size=chunk_size)

    return reply
