"""In-memory fakes for the engine tests: scripted handlers, pipelines from dicts.

Not tests themselves; the name keeps them with the engine tests they serve.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from agentflow.runtime.agents import AgentOutput, QAIssue
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, RunResult, run_pipeline
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.pipeline import CompiledPipeline, compile_spec
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.spec import PipelineSpec

Script = Callable[[AgentContext], Any]


def hello_spec(**overrides: Any) -> dict[str, Any]:
    """pipelines/hello_world.yaml as a dict (without the filesystem tool)."""
    spec: dict[str, Any] = {
        "name": "hello-world",
        "defaults": {"retry": {"max_attempts": 3, "backoff_ms": 200}},
        "state_machine": {
            "initial": "initialised",
            "terminal": ["complete", "failed"],
            "states": [
                {"id": s} for s in ("initialised", "running", "reviewing", "complete", "failed")
            ],
        },
        "agents": [
            {
                "id": "writer_agent",
                "prompt": "prompts/writer_agent.md",
                "transitions": {"on_start": "running", "on_complete": "reviewing"},
                "dispatch": {"strategy": "sequential", "target": "reviewer_agent"},
            },
            {
                "id": "reviewer_agent",
                "prompt": "prompts/reviewer_agent.md",
                "retry": {"max_attempts": 2, "backoff_ms": 200},
                "on_fail": {
                    "action": "feedback_and_retry",
                    "target": "writer_agent",
                    "feedback_path": "$.issues",
                },
                "transitions": {"on_pass": "complete", "on_fail": "running", "on_abort": "failed"},
            },
        ],
        "aggregation": {
            "strategy": "all_pass",
            "gates": ["reviewer_agent"],
            "on_complete": {"transition": "complete"},
            "on_any_abort": {"transition": "failed"},
        },
    }
    spec.update(overrides)
    return spec


def fanout_spec(
    *,
    qa: tuple[str, ...] = ("qa_agent",),
    strategy: str = "all_pass",
    min_pass: int | None = None,
    max_concurrency: int | None = None,
    qa_action: str = "feedback_and_retry",
    max_attempts: int = 2,
) -> dict[str, Any]:
    """orchestrator -(fan-out)-> worker -(sequential or broadcast)-> QA agent(s)."""
    if len(qa) == 1:
        worker_dispatch: dict[str, Any] = {"strategy": "sequential", "target": qa[0]}
    else:
        worker_dispatch = {"strategy": "parallel_broadcast", "targets": list(qa)}
    on_fail: dict[str, Any] = {"action": qa_action}
    if qa_action == "feedback_and_retry":
        on_fail["target"] = "worker_agent"
    fan_out: dict[str, Any] = {"strategy": "parallel_fan_out", "target": "worker_agent"}
    if max_concurrency is not None:
        fan_out["max_concurrency"] = max_concurrency
    aggregation: dict[str, Any] = {
        "strategy": strategy,
        "gates": list(qa),
        "on_complete": {"transition": "complete"},
        "on_any_abort": {"transition": "failed"},
    }
    if min_pass is not None:
        aggregation["min_pass"] = min_pass
    return {
        "name": "fanout",
        "defaults": {"retry": {"max_attempts": max_attempts, "backoff_ms": 10}},
        "state_machine": {
            "initial": "initialised",
            "terminal": ["complete", "failed"],
            "states": [
                {"id": s}
                for s in ("initialised", "planning", "working", "checking", "complete", "failed")
            ],
        },
        "agents": [
            {
                "id": "orchestrator_agent",
                "prompt": "p.md",
                "transitions": {"on_start": "planning", "on_complete": "working"},
                "dispatch": fan_out,
            },
            {
                "id": "worker_agent",
                "prompt": "p.md",
                "transitions": {"on_complete": "checking"},
                "dispatch": worker_dispatch,
            },
            *[
                {
                    "id": q,
                    "prompt": "p.md",
                    "on_fail": on_fail,
                    "transitions": {
                        "on_pass": "complete",
                        "on_fail": "working",
                        "on_abort": "failed",
                    },
                }
                for q in qa
            ],
        ],
        "aggregation": aggregation,
    }


def compile_dict(spec: dict[str, Any], prompts: dict[str, str] | None = None) -> CompiledPipeline:
    parsed = PipelineSpec.model_validate(spec)
    texts = prompts or {a.id: "You are {{ agent }}; input: {{ input }}" for a in parsed.agents}
    return compile_spec(parsed, texts)


def text(value: str) -> AgentOutput:
    return AgentOutput(text=value)


def verdict(passed: bool, *messages: str) -> AgentOutput:
    return AgentOutput(passed=passed, issues=[QAIssue(message=m) for m in messages])


class Handlers:
    """One scripted coroutine per agent; `calls` records (agent, item, attempt) in call order."""

    def __init__(self, **scripts: Script) -> None:
        self._scripts = scripts
        self.calls: list[tuple[str, str, int]] = []
        self.contexts: list[AgentContext] = []

    def __getattr__(self, name: str) -> Callable[[AgentContext], Any]:
        if name.startswith("_") or name not in self._scripts:
            raise AttributeError(name)
        script = self._scripts[name]

        async def handler(ctx: AgentContext) -> AgentOutput:
            self.calls.append((ctx.agent, ctx.item.id, ctx.attempt))
            self.contexts.append(ctx)
            result = script(ctx)
            if inspect.isawaitable(result):
                result = await result
            assert isinstance(result, AgentOutput)
            return result

        return handler


async def run(
    pipeline: CompiledPipeline, input: object, handlers: object, **options: Any
) -> tuple[RunResult, list[PipelineEvent]]:
    sink = MemorySink()
    options.setdefault("backoff_scale", 0.0)
    result = await run_pipeline(
        pipeline, input, handlers=handlers, sinks=[sink], options=RunOptions(**options)
    )
    assert sink.closed
    return result, sink.events


def kinds(events: list[PipelineEvent], *wanted: EventKind) -> list[PipelineEvent]:
    return [e for e in events if e.kind in wanted]
