"""Prompt caching benchmark: what a fan-out's input costs with and without the cache.

A real run (runner, real anthropic SDK, real HTTP) against the fake Messages API
(tests/fake_anthropic/server.py), which accounts cache writes and reads as the
real API documents: an entry is readable once the response writing it begins.
An orchestrator fans out N items; each worker call carries the same long
system prompt (about 3,000 tokens as the fake counts them), then a short QA
call. Every reply's events come `--delay` seconds apart, so a response begins
a while after its request, as a real one does.

Three modes:
    off      AnthropicModel(prompt_caching=False): nothing marked.
    no-gate  prompts marked, but concurrent calls all go at once (the first
             call of a prefix is not sent ahead), so every call that starts
             before the first response begins writes the cache too.
    on       the default: marked, and the first call of a prefix goes first.

Prints, per mode: model calls, input / cache-write / cache-read tokens, the
run's cost in USD (claude-sonnet-4-6 prices) and wall time (informative only).

Usage:  .venv/bin/python bench/bench_prompt_caching.py [--items 200] [--delay 0.02]
                                                       [--model-calls 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentflow.runtime.engine.runner import RunOptions, RunResult, run_pipeline  # noqa: E402
from agentflow.runtime.models.anthropic import AnthropicModel  # noqa: E402
from agentflow.runtime.models.base import STRUCTURED_TOOL_NAMES  # noqa: E402
from agentflow.runtime.pipeline import CompiledPipeline, compile_spec  # noqa: E402
from agentflow.runtime.spec import PipelineSpec  # noqa: E402
from tests.fake_anthropic.server import (  # noqa: E402
    RecordedRequest,
    Scripted,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)

KEY = "sk-ant-bench-fake-key"
WORKER_PROMPT = "You are a meticulous analyst. Follow the house style guide below.\n" + "\n".join(
    f"Rule {n}: cite the source of every figure, and say how it was measured." for n in range(170)
)


class UngatedModel(AnthropicModel):
    """Marks prompts for caching but sends concurrent calls at once."""

    async def _await_cached_prefix(self, prefix: str | None) -> str | None:
        return None


def pipeline() -> CompiledPipeline:
    spec = PipelineSpec.model_validate(
        {
            "name": "caching-bench",
            "state_machine": {
                "initial": "initialised",
                "terminal": ["complete", "failed"],
                "states": [
                    {"id": s}
                    for s in (
                        "initialised",
                        "planning",
                        "working",
                        "checking",
                        "complete",
                        "failed",
                    )
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
                    "transitions": {"on_complete": "checking"},
                    "dispatch": {"strategy": "sequential", "target": "qa_agent"},
                },
                {
                    "id": "qa_agent",
                    "prompt": "p.md",
                    "on_fail": {"action": "abort"},
                    "transitions": {
                        "on_pass": "complete",
                        "on_fail": "failed",
                        "on_abort": "failed",
                    },
                },
            ],
            "aggregation": {
                "strategy": "all_pass",
                "gates": ["qa_agent"],
                "on_complete": {"transition": "complete"},
                "on_any_abort": {"transition": "failed"},
            },
        }
    )
    prompts = {
        "orchestrator_agent": "Plan the work: {{ input }}",
        "worker_agent": WORKER_PROMPT,
        "qa_agent": "Check the answer.",
    }
    return compile_spec(spec, prompts)


def script(items: int, delay_s: float) -> Any:
    def answer(request: RecordedRequest) -> Scripted:
        system = request.body.get("system")
        text = system[0]["text"] if isinstance(system, list) else str(system)
        if text.startswith("Plan"):
            work = [f"question {n}" for n in range(items)]
            return tool_reply(STRUCTURED_TOOL_NAMES["items"], {"items": work}, delay_s=delay_s)
        if text.startswith("Check"):
            verdict = {"passed": True, "issues": []}
            return tool_reply(STRUCTURED_TOOL_NAMES["verdict"], verdict, delay_s=delay_s)
        return text_reply("an answer", delay_s=delay_s)

    return answer


async def run_mode(
    mode: str, items: int, delay_s: float, model_calls: int
) -> tuple[RunResult, float]:
    async with open_fake_anthropic(script(items, delay_s), count_input_tokens=True) as fake:
        kind = UngatedModel if mode == "no-gate" else AnthropicModel
        model = kind(api_key=KEY, base_url=fake.base_url, prompt_caching=mode != "off")
        async with model:
            started = time.perf_counter()
            result = await run_pipeline(
                pipeline(),
                "research trio",
                handlers=None,
                model=model,
                sinks=[],
                options=RunOptions(max_model_calls=model_calls),
            )
            wall = time.perf_counter() - started
    assert result.ok, result.reason
    return result, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--model-calls", type=int, default=8, help="concurrent model calls")
    args = parser.parse_args()
    print(
        f"fan-out of {args.items} items, {args.model_calls} model calls at once, "
        f"{args.delay:g} s between a reply's events"
    )
    print("| mode | model calls | input | cache write | cache read | cost USD | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in ("off", "no-gate", "on"):
        result, wall = trio.run(run_mode, mode, args.items, args.delay, args.model_calls)
        u = result.usage
        print(
            f"| {mode} | {u.model_calls} | {u.input_tokens:,} | "
            f"{u.cache_creation_input_tokens:,} | {u.cache_read_input_tokens:,} | "
            f"{u.cost_usd:.4f} | {wall:.2f} |"
        )


if __name__ == "__main__":
    main()
