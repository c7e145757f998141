"""ReplayModel: cassette parsing, streaming, misses; the example cassettes drive real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow.runtime.errors import CassetteMissError, ModelError
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.models.base import ModelRequest, ModelTurn, ToolCall
from agentflow.runtime.models.replay import ReplayModel, load_cassette
from agentflow.runtime.pipeline import derive_transitions
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.usage import Usage

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
HELLO_CASSETTE = PIPELINES / "hello_world.cassette.jsonl"


def _request(agent: str, item: str = "main", attempt: int = 1, turn: int = 1) -> ModelRequest:
    return ModelRequest(
        agent=agent,
        item=item,
        attempt=attempt,
        turn=turn,
        model="claude-sonnet-4-6",
        max_tokens=1024,
        system="",
        messages=(),
    )


async def test_hello_world_cassette_turns() -> None:
    model = ReplayModel(HELLO_CASSETTE)
    assert model.name == "replay"
    streamed: list[str] = []
    first = await model.complete(_request("writer_agent"), streamed.append)
    assert first.tool_calls[0].name == "filesystem"
    assert first.tool_calls[0].input["op"] == "write"
    assert first.tool_calls[0].input["path"] == "draft.md"
    assert first.stop_reason == "tool_use"
    assert "".join(streamed) == first.text
    streamed.clear()
    draft = await model.complete(_request("writer_agent", turn=2), streamed.append)
    assert len(streamed) >= 3 and "".join(streamed) == draft.text
    assert draft.tool_calls == () and draft.usage.input_tokens > 0
    verdict = await model.complete(_request("reviewer_agent"))
    assert verdict.structured is not None and verdict.structured["passed"] is False
    assert len([i for i in verdict.structured["issues"] if i["severity"] == "blocking"]) == 2
    assert verdict.tool_calls == ()
    final = await model.complete(_request("reviewer_agent", attempt=2))
    assert final.structured is not None
    assert final.structured["passed"] is True and final.structured["issues"] == []


async def test_miss_names_key_path_nearest_and_how_to_record() -> None:
    model = ReplayModel(HELLO_CASSETTE)
    with pytest.raises(CassetteMissError) as info:
        await model.complete(_request("writer_agent", attempt=3))
    message = str(info.value)
    assert "agent=writer_agent item=main attempt=3 turn=1" in message
    assert str(HELLO_CASSETTE) in message
    assert "nearest recorded: agent=writer_agent item=main attempt=2 turn=1" in message
    assert "--record" in message and "ANTHROPIC_API_KEY" in message


async def test_audit_log_is_a_cassette(tmp_path: Path) -> None:
    """Full PipelineEvent lines work; other kinds are skipped; usage replays as recorded."""
    path = tmp_path / "run.jsonl"
    hub = EventHub(run_id="run-1", sinks=[FileSink(path)])
    usage = Usage(input_tokens=10, output_tokens=5, cost_usd=0.0001, model_calls=1)
    async with hub.running():
        hub.emit(EventKind.RUN_STARTED)
        hub.emit(
            EventKind.MODEL_RESPONSE,
            agent="a",
            item="item-1",
            attempt=1,
            payload={
                "turn": 1,
                "text": "",
                "tool_calls": [{"id": "t1", "name": "fs", "input": {"op": "list", "path": "."}}],
                "structured": None,
                "usage": usage.model_dump(),
                "stop_reason": "tool_use",
                "model": "claude-x",
            },
        )
        hub.emit(EventKind.RUN_FINISHED)
    turn = await ReplayModel(path).complete(_request("a", item="item-1"))
    assert turn == ModelTurn(
        text="",
        tool_calls=(ToolCall(id="t1", name="fs", input={"op": "list", "path": "."}),),
        usage=usage,
        stop_reason="tool_use",
        model="claude-x",
    )


def test_malformed_cassettes(tmp_path: Path) -> None:
    bad_json = tmp_path / "a.jsonl"
    bad_json.write_text('{"kind": "model_response"\n')
    with pytest.raises(ModelError, match=r"a.jsonl:1: the cassette line is not JSON"):
        load_cassette(bad_json)
    no_turn = tmp_path / "b.jsonl"
    no_turn.write_text(json.dumps({"kind": "model_response", "agent": "a", "item": "main"}) + "\n")
    with pytest.raises(ModelError, match="integer 'attempt'"):
        load_cassette(no_turn)
    with pytest.raises(ModelError, match="cannot read the replay cassette"):
        ReplayModel(tmp_path / "missing.jsonl")
    empty = tmp_path / "c.jsonl"
    empty.write_text("\n")
    assert load_cassette(empty) == {}


@pytest.mark.parametrize(
    ("name", "min_events"), [("hello_world", 30), ("research_fanout", 40), ("seed_minimal", 10)]
)
async def test_example_cassettes_drive_a_real_run(
    name: str, min_events: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine + tools + hub + file sink, offline: the run succeeds and its log verifies."""
    from agentflow.runtime.cli.compiled_loader import compile_and_import
    from agentflow.runtime.engine.runner import RunOptions, run_pipeline

    monkeypatch.chdir(tmp_path)
    loaded = compile_and_import(PIPELINES / f"{name}.yaml")
    log = tmp_path / "run.jsonl"
    memory = MemorySink()
    hub = EventHub(run_id="run-replay", sinks=[FileSink(log), memory])
    async with hub.running():
        result = await run_pipeline(
            loaded.compiled,
            "how Rust's ownership model prevents memory bugs",
            handlers=loaded.default_handlers(),
            model=ReplayModel(PIPELINES / f"{name}.cassette.jsonl"),
            hub=hub,
            options=RunOptions(backoff_scale=0),
        )
    assert result.status == "succeeded", result.reason
    table = {(s, t): target for s, t, target in derive_transitions(loaded.compiled.spec)}
    report = verify_log(log, table)
    assert report.ok, report.render()
    assert report.events >= min_events
    assert memory.of_kind(EventKind.MODEL_TEXT)  # the replay streamed text
    if name == "hello_world":
        verdicts = [e.payload["passed"] for e in memory.of_kind(EventKind.QA_VERDICT)]
        assert verdicts == [False, True]
        assert len(memory.of_kind(EventKind.RETRY_SCHEDULED)) == 1
        draft = (tmp_path / "workspace" / "draft.md").read_text()
        assert "let b = a;" in draft  # the second draft, with its example


def _response_line(**payload: object) -> str:
    record = {
        "kind": "model_response",
        "agent": "writer_agent",
        "item": "main",
        "attempt": 1,
        "payload": {"turn": 1, "text": "hi", **payload},
    }
    return json.dumps(record) + "\n"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"tool_calls": [{"name": "read_file"}]}, "no 'id' field"),
        ({"tool_calls": ["read_file"]}, "TypeError"),
        ({"tool_calls": 5}, "TypeError"),
        ({"tool_calls": [{"id": "t1", "name": "x", "input": "not an object"}]}, "ValueError"),
        ({"usage": "lots"}, "AttributeError"),
        ({"usage": {"input_tokens": "many"}}, "input_tokens"),
        ({"usage": {"output_tokens": 1.5}}, "output_tokens"),
    ],
)
def test_malformed_turns_are_model_errors_naming_the_line(
    tmp_path: Path, payload: dict[str, object], problem: str
) -> None:
    cassette = tmp_path / "bad.jsonl"
    good = _response_line().replace('"attempt": 1', '"attempt": 2')
    cassette.write_text(good + _response_line(**payload))
    with pytest.raises(ModelError) as error:
        ReplayModel(cassette)
    message = str(error.value)
    assert "bad.jsonl:2: the model_response for agent=writer_agent item=main" in message
    assert problem in message and "'tool_calls' must be a list" in message
