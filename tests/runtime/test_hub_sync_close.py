"""The hub's synchronous lifecycle (`open_inline` / `close_inline`), which `run_pipeline`
uses instead of `running()` when every sink is inline and closes synchronously."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.sinks.memory import MemorySink

from .audit_chain import chained
from .test_engine_fakes import Handlers, compile_dict, hello_spec, text, verdict


def _kinds(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [PipelineEvent.model_validate_json(line).kind.value for line in lines]


def test_runs_inline_only_when_every_sink_is_inline_and_closes_synchronously(
    tmp_path: Path,
) -> None:
    assert EventHub(run_id="r").runs_inline  # no sink at all
    assert EventHub(run_id="r", sinks=[FileSink(tmp_path / "a.jsonl")]).runs_inline
    mixed = EventHub(run_id="r", sinks=[FileSink(tmp_path / "b.jsonl"), MemorySink()])
    assert not mixed.runs_inline  # the MemorySink needs a pump task
    with pytest.raises(RuntimeError, match="use `async with hub"):
        mixed.open_inline()


def test_open_close_inline_writes_held_lines_and_closes_the_file(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    sink = FileSink(log)
    hub = EventHub(run_id="run-1", sinks=[sink], keep_history=False)
    hub.open_inline()
    with pytest.raises(RuntimeError, match="entered twice"):
        hub.open_inline()
    hub.publish(EventKind.RUN_STARTED)
    hub.publish(EventKind.RUN_FINISHED, payload={"status": "succeeded"})
    assert log.read_text() == ""  # held until the close
    hub.close_inline()
    # No log_sealed: only a run (finish_run) asks its hub to seal the log.
    assert _kinds(log) == ["run_started", "run_finished"]
    assert chained(log)
    with pytest.raises(RuntimeError, match="closed"):
        sink.write_lines(["{}"])
    with pytest.raises(RuntimeError, match="after the hub was closed"):
        hub.publish(EventKind.WARNING, payload={"message": "late"})


async def test_a_cancelled_run_still_logs_its_end_and_closes_the_log(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    sink = FileSink(log)

    async def writer(ctx: AgentContext) -> AgentOutput:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    handlers = Handlers(writer_agent=writer, reviewer_agent=lambda c: verdict(True))
    with trio.move_on_after(0.01) as scope:
        await run_pipeline(compile_dict(hello_spec()), "x", handlers=handlers, sinks=[sink])
    assert scope.cancelled_caught
    kinds = _kinds(log)
    assert kinds[0] == "run_started"
    assert kinds[-3:] == ["run_cancelled", "run_finished", "log_sealed"]
    assert verify_log(log).problems == []
    assert sink._fd == -1  # closed by close_inline, without a shielded await


async def test_a_run_with_a_pumped_sink_still_uses_running(tmp_path: Path) -> None:
    log, memory = tmp_path / "run.jsonl", MemorySink()
    handlers = Handlers(writer_agent=lambda c: text("d"), reviewer_agent=lambda c: verdict(True))
    result = await run_pipeline(
        compile_dict(hello_spec()), "x", handlers=handlers, sinks=[FileSink(log), memory],
        options=RunOptions(backoff_scale=0.0),
    )  # fmt: skip
    assert result.ok
    assert [e.kind.value for e in memory.events] == _kinds(log)
    assert len(memory.events) == result.events + 1  # + the log_sealed line
