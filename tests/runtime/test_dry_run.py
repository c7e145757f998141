"""DryRunModel: a pipeline's flow walked offline with synthetic answers, through generated code."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from agentflow.runtime.engine.runner import RunOptions, RunResult
from agentflow.runtime.errors import AgentflowError
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.events.event import PipelineEvent
from agentflow.runtime.models.base import ModelRequest
from agentflow.runtime.models.dry_run import DryRunModel, excerpt
from agentflow.runtime.sinks.memory import MemorySink

ROOT = Path(__file__).resolve().parents[2]


def generated(name: str) -> Any:
    path = ROOT / "generated" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"dry_run_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def walk(
    name: str, model: DryRunModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[RunResult, list[PipelineEvent]]:
    monkeypatch.chdir(tmp_path)  # builtin tools (hello's filesystem) work under the cwd
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    sink = MemorySink()
    result = await generated(name).run(
        "Rust ownership", model=model, sinks=[sink], options=RunOptions(backoff_scale=0)
    )
    return result, sink.events


def of(events: list[PipelineEvent], kind: K, agent: str | None = None) -> list[PipelineEvent]:
    return [e for e in events if e.kind is kind and (agent is None or e.agent == agent)]


async def test_hello_world_walks_to_complete_with_labelled_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result, events = await walk("hello_world", DryRunModel(), monkeypatch, tmp_path)
    assert result.ok and result.final_state == "complete"
    assert of(events, K.RUN_STARTED)[0].payload["model"] == "dry-run"
    writer = of(events, K.MODEL_RESPONSE, "writer_agent")[0].payload["text"]
    assert writer.startswith('[dry-run] writer_agent on main, attempt 1: "You are a technical')
    assert writer.endswith('…"') and len(writer) < 160
    streamed = "".join(e.payload["text"] for e in of(events, K.MODEL_TEXT, "writer_agent"))
    assert streamed == writer
    assert [e.payload["passed"] for e in of(events, K.QA_VERDICT)] == [True]
    assert not of(events, K.TOOL_CALL)
    assert result.usage.model_calls == 2 and result.usage.cost_usd == 0


async def test_fail_first_shows_the_feedback_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result, events = await walk("hello_world", DryRunModel(fail_first=1), monkeypatch, tmp_path)
    assert result.ok, result.reason
    assert [e.payload["passed"] for e in of(events, K.QA_VERDICT)] == [False, True]
    assert len(of(events, K.RETRY_SCHEDULED)) == 1
    retry = of(events, K.AGENT_STARTED, "writer_agent")[1]
    assert retry.attempt == 2 and "synthetic blocking issue 1 of 1" in str(retry.payload)
    second = of(events, K.MODEL_RESPONSE, "writer_agent")[1].payload["text"]
    assert second.startswith("[dry-run] writer_agent on main, attempt 2")
    assert result.items[0].attempts == {"writer_agent": 2, "reviewer_agent": 2}


async def test_fail_first_past_max_attempts_shows_the_abort_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result, events = await walk("hello_world", DryRunModel(fail_first=2), monkeypatch, tmp_path)
    assert (result.status, result.final_state) == ("failed", "failed")  # max_attempts is 2
    assert [e.payload["passed"] for e in of(events, K.QA_VERDICT)] == [False, False]
    assert result.items[0].status == "aborted"


@pytest.mark.parametrize("items", [3, 5])
async def test_fan_out_gets_synthetic_work_items(
    items: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = DryRunModel(items=items)
    result, events = await walk("research_fanout", model, monkeypatch, tmp_path)
    assert result.ok and result.final_state == "complete"
    created = of(events, K.ITEM_CREATED)
    assert len(created) == items
    assert (
        created[0].payload["payload"] == f"[dry-run] work item 1 of {items} from orchestrator_agent"
    )
    workers = {e.item for e in of(events, K.MODEL_RESPONSE, "worker_agent")}
    assert workers == {e.item for e in created}


async def test_answers_are_deterministic() -> None:
    request = ModelRequest(
        agent="a",
        item="main",
        attempt=1,
        turn=1,
        model="m",
        max_tokens=9,
        system="Be brief.",
        messages=(),
    )
    first = await DryRunModel().complete(request)
    assert first == await DryRunModel().complete(request)
    assert first.text == '[dry-run] a on main, attempt 1: "Be brief."'
    assert first.tool_calls == () and first.model == "dry-run"


def test_excerpt_is_one_short_line() -> None:
    assert excerpt("  a\n\n b  c ", 80) == "a b c"
    assert excerpt("word " * 40, 12) == "word word…"


def test_negative_counts_are_refused_with_the_fix() -> None:
    with pytest.raises(AgentflowError, match="must be >= 0"):
        DryRunModel(items=-1)
