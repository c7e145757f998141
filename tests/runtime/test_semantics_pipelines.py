"""The example pipelines in pipelines/ run as written (YAML -> compiler -> engine).

Handlers are scripted, except in the last test, where every agent runs from its
real prompt on a scripted model with the real builtin filesystem tool.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from agentflow.compiler.load import load_pipeline
from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.models.base import ModelRequest, ModelTurn, ToolCall
from agentflow.runtime.pipeline import CompiledPipeline, compile_spec
from agentflow.runtime.sinks.memory import MemorySink

from .test_agent_runner import ScriptedModel
from .test_engine_fakes import Handlers, kinds, run, text, verdict

ROOT = Path(__file__).resolve().parents[2]


def compiled(name: str) -> CompiledPipeline:
    loaded = load_pipeline(ROOT / "pipelines" / name)
    return compile_spec(loaded.spec, loaded.prompts, source_sha256=loaded.source_sha256)


async def test_seed_minimal_runs_exactly_as_written() -> None:
    handlers = Handlers(
        producer_agent=lambda c: text(f"v{c.attempt}"),
        reviewer_agent=lambda c: verdict(c.attempt > 1, "too vague"),
    )
    result, events = await run(compiled("seed_minimal.yaml"), "a topic", handlers)
    assert result.status == "succeeded" and result.final_state == "complete"
    moves = [
        (e.payload.get("from"), e.payload["to"], e.payload["trigger"], e.payload.get("noop"))
        for e in kinds(events, K.TRANSITION, K.TRANSITION_DEFERRED)
    ]
    assert moves == [
        ("initialised", "running", "producer_agent.on_start", False),
        ("running", "running", "producer_agent.on_complete", True),
        ("running", "running", "reviewer_agent.on_fail", True),
        ("running", "running", "producer_agent.on_start", True),  # fires again on the retry
        ("running", "running", "producer_agent.on_complete", True),
        (None, "complete", "reviewer_agent.on_pass", None),  # deferred
        ("running", "complete", "aggregation.on_complete", False),  # then taken by aggregation
    ]
    assert events[0].pipeline_hash == compiled("seed_minimal.yaml").source_sha256


async def test_research_fanout_threshold_gate_and_retry() -> None:
    def accuracy(ctx: AgentContext) -> AgentOutput:
        return verdict(not (ctx.item.id == "item-2" and ctx.attempt == 1), "wrong date")

    def style(ctx: AgentContext) -> AgentOutput:  # item-2 fails both gates on attempt 1
        return verdict(not (ctx.item.id == "item-2" and ctx.attempt == 1), "too long")

    handlers = Handlers(
        orchestrator_agent=lambda c: AgentOutput(text="plan", items=["a", "b", "c", "d"]),
        worker_agent=lambda c: text(f"{c.item.payload}:{c.attempt}"),
        accuracy_qa_agent=accuracy,
        style_qa_agent=style,
    )
    result, events = await run(compiled("research_fanout.yaml"), "why is the sky blue", handlers)
    assert result.ok, result.reason
    by_id = {i.id: i for i in result.items}
    # item-2: both gates fail; accuracy can retry (style's action is abort), so the
    # worker re-runs with both agents' issues and the item passes
    assert {i.status for i in result.items[1:]} == {"passed"}
    assert by_id["item-2"].attempts["worker_agent"] == 2 and by_id["item-2"].output == "b:2"
    retry = [c for c in handlers.contexts if c.agent == "worker_agent" and c.attempt == 2]
    assert sorted(i.message for i in retry[0].feedback) == ["too long", "wrong date"]
    (scheduled,) = kinds(events, K.RETRY_SCHEDULED)
    assert scheduled.payload["qa"] == ["accuracy_qa_agent", "style_qa_agent"]


async def test_research_fanout_exhausted_join_aborts() -> None:
    handlers = Handlers(
        orchestrator_agent=lambda c: AgentOutput(text="plan", items=["a", "b"]),
        worker_agent=lambda c: text("w"),
        accuracy_qa_agent=lambda c: verdict(c.item.id != "item-2", "wrong"),
        style_qa_agent=lambda c: verdict(c.item.id != "item-2", "long"),
    )
    result, events = await run(compiled("research_fanout.yaml"), "q", handlers)
    by_id = {i.id: i for i in result.items}
    assert by_id["item-1"].status == "passed"
    item2 = by_id["item-2"]
    assert item2.status == "aborted" and item2.attempts["worker_agent"] == 2  # max_attempts 2
    assert "accuracy_qa_agent' failed 2 times" in (item2.reason or "")
    assert len(kinds(events, K.RETRY_SCHEDULED)) == 1
    assert (result.status, result.final_state) == ("failed", "failed")


def _load_generated(name: str) -> Any:
    path = ROOT / "generated" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"generated_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_generated_hello_world_runs_with_overridden_handlers() -> None:
    hello = _load_generated("hello_world")

    class Mine(hello.DefaultHandlers):  # type: ignore[misc, name-defined]
        async def writer_agent(self, ctx: AgentContext) -> AgentOutput:
            return text(f"draft {ctx.attempt}")

        async def reviewer_agent(self, ctx: AgentContext) -> AgentOutput:
            return verdict(bool(ctx.feedback) or ctx.attempt > 1, "needs an example")

    sink = MemorySink()
    result = await hello.run(
        "topic", handlers=Mine(), sinks=[sink], options=RunOptions(backoff_scale=0)
    )
    assert result.ok and result.items[0].attempts == {"writer_agent": 2, "reviewer_agent": 2}
    assert sink.events[-2].payload["status"] == "succeeded"  # run_finished, then the seal


async def test_hello_world_default_agents_with_filesystem_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the filesystem tool's root 'workspace' is relative to cwd

    def script(request: ModelRequest) -> ModelTurn:
        if request.agent == "writer_agent":
            if request.turn == 1:
                write = {"op": "write", "path": "draft.md", "content": f"draft {request.attempt}"}
                return ModelTurn(tool_calls=(ToolCall("t1", "filesystem", write),))
            return ModelTurn(text=f"draft {request.attempt}")
        if request.attempt == 1:
            return ModelTurn(
                structured={"passed": False, "issues": [{"message": "add an example"}]}
            )
        return ModelTurn(structured={"passed": True, "summary": "good"})

    sink = MemorySink()
    model = ScriptedModel(script)
    result = await run_pipeline(
        compiled("hello_world.yaml"), "borrow checking", handlers=None, model=model,
        sinks=[sink], options=RunOptions(backoff_scale=0),
    )  # fmt: skip
    assert result.ok, result.reason
    assert (tmp_path / "workspace" / "draft.md").read_text() == "draft 2"
    assert [e.payload["tool"] for e in sink.of_kind(K.TOOL_RESULT)] == ["filesystem", "filesystem"]
    retry = next(r for r in model.requests if r.agent == "writer_agent" and r.attempt == 2)
    assert "add an example" in retry.system  # the retry's prompt carries the feedback
