"""Inline sinks (the audit FileSink): held lines, flush points, failures, and the engine's
guarantee that whenever the run waits, its events are already in the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.engine.state_machine import StateMachine
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.pipeline import compile_spec
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.spec import PipelineSpec

from .audit_chain import chained


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


async def test_publish_holds_until_flush_and_emit_writes_through(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    hub = EventHub(run_id="run-1", sinks=[FileSink(log)], keep_history=False)
    async with hub.running():
        hub.publish(EventKind.RUN_STARTED)
        hub.publish(EventKind.WARNING, payload={"message": "held"})
        assert _lines(log) == []  # held: one write for the burst
        hub.flush()
        assert len(_lines(log)) == 2
        hub.publish(EventKind.WARNING, payload={"message": "held again"})
        hub.emit(EventKind.WARNING, payload={"message": "written through"})
        assert [PipelineEvent.model_validate_json(x).seq for x in _lines(log)] == [0, 1, 2, 3]
        hub.publish(EventKind.RUN_FINISHED, payload={"status": "succeeded"})
    assert len(_lines(log)) == 5  # closing flushes the rest
    assert chained(log)


async def test_a_long_burst_is_flushed_in_bounded_writes(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    hub = EventHub(run_id="run-1", sinks=[FileSink(log)], keep_history=False)
    async with hub.running():
        for i in range(600):
            hub.publish(EventKind.WARNING, payload={"i": i})
        assert len(_lines(log)) == 512  # two full bursts of 256 went out on their own
        assert hub.sink_stats()["file"]["buffered"] == 88


class BrokenInline:
    """An inline sink (not the audit log) whose writes fail `fail_times` times, then succeed.

    (An audit sink is disabled at its first failure: tests/runtime/test_audit_enospc.py.)
    """

    audit = False
    inline = True

    def __init__(self, fail_times: int) -> None:
        self.name = "broken"
        self.fail_times = fail_times
        self.lines: list[str] = []

    def write_lines(self, lines: Sequence[str]) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise OSError(28, "No space left on device")
        self.lines.extend(lines)

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        raise AssertionError("an inline sink is written through write_lines only")

    async def aclose(self) -> None:
        pass


async def test_a_failing_inline_sink_is_reported_then_disabled() -> None:
    broken, memory = BrokenInline(fail_times=10**9), MemorySink()
    hub = EventHub(run_id="run-1", sinks=[broken, memory], max_consecutive_failures=3)
    async with hub.running():
        for _ in range(5):
            hub.publish(EventKind.WARNING, payload={"message": "x"})
            hub.flush()
    errors = [e.payload for e in memory.of_kind(EventKind.SINK_ERROR)]
    assert [e["consecutive_failures"] for e in errors] == [1, 2, 3]
    assert [e["disabled"] for e in errors] == [False, False, True]
    assert errors[0]["error"] == "OSError: [Errno 28] No space left on device"
    assert hub.sink_stats()["broken"] == {
        "policy": "drop_oldest", "buffered": 0, "dropped": 0, "failures": 3,
        "disabled": True,
    }  # fmt: skip
    assert [e.seq for e in memory.events] == list(range(len(memory.events)))  # in order


async def test_an_inline_sink_that_recovers_gets_the_failure_report() -> None:
    broken = BrokenInline(fail_times=1)
    hub = EventHub(run_id="run-1", sinks=[broken])
    async with hub.running():
        hub.publish(EventKind.WARNING, payload={"message": "lost"})
        hub.flush()  # fails: the line is lost, a sink_error is held
        hub.publish(EventKind.WARNING, payload={"message": "kept"})
    kinds = [PipelineEvent.model_validate_json(x).kind for x in broken.lines]
    assert kinds == [EventKind.SINK_ERROR, EventKind.WARNING]


def _pipeline() -> Any:
    spec = PipelineSpec.model_validate(
        {
            "name": "inline",
            "state_machine": {
                "initial": "initialised",
                "terminal": ["complete", "failed"],
                "states": [{"id": s} for s in ("initialised", "working", "complete", "failed")],
            },
            "agents": [
                {
                    "id": "planner_agent",
                    "prompt": "p.md",
                    "transitions": {"on_start": "working"},
                    "dispatch": {"strategy": "parallel_fan_out", "target": "worker_agent"},
                },
                {"id": "worker_agent", "prompt": "w.md"},
            ],
        }
    )
    return compile_spec(spec, {"planner_agent": "", "worker_agent": ""})


async def test_whenever_the_run_waits_its_events_are_in_the_audit_log(tmp_path: Path) -> None:
    """Each handler, while it runs, finds its own agent_started in the file."""
    log = tmp_path / "run.jsonl"
    seen: list[tuple[str, str, bool]] = []

    def logged(ctx: AgentContext) -> bool:
        return any(
            event.kind == EventKind.AGENT_STARTED
            and (event.agent, event.item, event.attempt) == (ctx.agent, ctx.item.id, ctx.attempt)
            for event in map(PipelineEvent.model_validate_json, _lines(log))
        )

    class Handlers:
        async def planner_agent(self, ctx: AgentContext) -> AgentOutput:
            seen.append((ctx.agent, ctx.item.id, logged(ctx)))
            await trio.sleep(0.01)
            return AgentOutput(text="plan", items=["a", "b", "c"])

        async def worker_agent(self, ctx: AgentContext) -> AgentOutput:
            seen.append((ctx.agent, ctx.item.id, logged(ctx)))
            await trio.sleep(0.01)
            return AgentOutput(text=f"done {ctx.item.payload}")

    result = await run_pipeline(
        _pipeline(), "q", handlers=Handlers(), sinks=[FileSink(log)],
        options=RunOptions(backoff_scale=0.0),
    )  # fmt: skip
    assert result.events + 1 == len(_lines(log))  # + the log_sealed line
    assert sorted(seen) == [
        ("planner_agent", "main", True),
        ("worker_agent", "item-1", True),
        ("worker_agent", "item-2", True),
        ("worker_agent", "item-3", True),
    ]
    assert verify_log(log).problems == []


async def test_a_finished_childs_events_are_in_the_log_before_the_run_waits(
    tmp_path: Path,
) -> None:
    """A fan-out's child ends without a write of its own; its last events still reach the
    file before trio next waits for I/O (`EventHub.flushing_before_waits`), so a run that
    waits on one slow item has written every other item's end."""
    log = tmp_path / "run.jsonl"
    found: list[set[str | None]] = []

    class Handlers:
        async def planner_agent(self, ctx: AgentContext) -> AgentOutput:
            return AgentOutput(text="plan", items=["a", "b", "slow"])

        async def worker_agent(self, ctx: AgentContext) -> AgentOutput:
            if ctx.item.payload == "slow":
                await trio.sleep(0.01)  # the run waits for I/O: the others have ended
                found.append(
                    {
                        event.item
                        for event in map(PipelineEvent.model_validate_json, _lines(log))
                        if event.kind == EventKind.ITEM_FINISHED
                    }
                )
            return AgentOutput(text="done")

    result = await run_pipeline(
        _pipeline(), "q", handlers=Handlers(), sinks=[FileSink(log)],
        options=RunOptions(backoff_scale=0.0),
    )  # fmt: skip
    assert [item.status for item in result.items[1:]] == ["completed"] * 3
    assert found == [{"item-1", "item-2"}]
    assert verify_log(log).problems == []


@pytest.mark.parametrize("publisher", ["worker_agent", "planner_agent"])
async def test_an_event_the_log_cannot_encode_fails_the_run(tmp_path: Path, publisher: str) -> None:
    """An event no JSON can hold, published by a fan-out's child (then flushed before
    trio's wait, outside any task) or by the planner (flushed in its own task): either
    way no traceback out of the run, an audit failure, and the log is not sealed."""
    log = tmp_path / "run.jsonl"

    class Handlers:
        async def planner_agent(self, ctx: AgentContext) -> AgentOutput:
            self.poison(ctx)
            return AgentOutput(text="plan", items=["a"])

        async def worker_agent(self, ctx: AgentContext) -> AgentOutput:
            self.poison(ctx)
            return AgentOutput(text="done")

        def poison(self, ctx: AgentContext) -> None:
            if ctx.agent == publisher:
                assert ctx.services is not None
                ctx.services.hub.publish(EventKind.WARNING, payload={"message": object()})

    result = await run_pipeline(
        _pipeline(), "q", handlers=Handlers(), sinks=[FileSink(log)],
        options=RunOptions(backoff_scale=0.0),
    )  # fmt: skip
    assert result.status == "error"
    assert result.reason is not None and "could not be written" in result.reason
    assert str(log) in result.reason
    assert not any('"log_sealed"' in line for line in _lines(log))


def test_state_machine_advance_reports_noops() -> None:
    import enum

    class S(enum.Enum):
        A = "a"
        B = "b"

    class T(enum.Enum):
        GO = "go"

    machine: StateMachine[S, T] = StateMachine({(S.A, T.GO): S.B}, S.A, frozenset())
    assert machine.advance(S.B) is False
    assert machine.state is S.B
    assert machine.advance(S.B) is True
