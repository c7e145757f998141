"""EventHub: numbering, hash chain, buffering policies, failing sinks, closing, subscribers."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
import trio

from agentflow.runtime.events import hub as hub_module
from agentflow.runtime.events import subscription as subscription_module
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.sinks.memory import MemorySink


class StallingSink:
    """Blocks in emit until `release` is set (a frozen webhook, a paused pager)."""

    audit = False

    def __init__(self, name: str = "stalling") -> None:
        self.name = name
        self.release = trio.Event()
        self.received: list[int] = []
        self.closed = False

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        await self.release.wait()
        self.received.append(event.seq)

    async def aclose(self) -> None:
        self.closed = True


class FailingSink:
    audit = False

    def __init__(self, fail_times: int = 10**9) -> None:
        self.name = "failing"
        self.fail_times = fail_times
        self.calls = 0
        self.received: list[int] = []

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise OSError("disk on fire")
        self.received.append(event.seq)

    async def aclose(self) -> None:
        pass


class SlowAuditSink(MemorySink):
    """A lossless sink that takes 10 ms (virtual) per event."""

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        await trio.sleep(0.01)
        await super().emit(event, line=line)


def test_fast_event_construction_equals_validated_event() -> None:
    hub = EventHub(run_id="run-1", pipeline_hash="abc")
    event = hub.emit(EventKind.AGENT_STARTED, agent="a", item="main", attempt=1, payload={"x": 1})
    assert hub.history is not None
    line = hub.history[0][1]
    assert line == event.model_dump_json()
    assert PipelineEvent.model_validate_json(line) == event
    assert event.model_fields_set == set(PipelineEvent.model_fields)


async def test_seq_and_hash_chain_reach_every_sink_in_order() -> None:
    first, second = MemorySink("one"), MemorySink("two")
    hub = EventHub(run_id="run-1", sinks=[first, second])
    async with hub.running():
        for i in range(50):
            hub.emit(EventKind.WARNING, payload={"message": str(i)})
            if i % 7 == 0:
                await trio.sleep(0)
    assert [e.seq for e in first.events] == list(range(50))
    assert first.lines == second.lines
    assert first.events[0].prev_hash == ""
    for prev, cur in zip(first.lines, first.events[1:], strict=False):
        assert cur.prev_hash == hashlib.sha256(prev.encode()).hexdigest()
    assert first.closed and second.closed
    assert hub.events_emitted == 50


async def test_stalled_sink_never_slows_emit_and_drops_are_reported(autojump_clock: object) -> None:
    audit, stalled = MemorySink(), StallingSink()
    hub = EventHub(run_id="run-1", drain_timeout=2.0)
    hub.add_sink(audit)
    hub.add_sink(stalled, buffer=10)
    async with hub.running():
        start = trio.current_time()
        for i in range(100):
            hub.emit(EventKind.WARNING, payload={"i": i})
        assert trio.current_time() == start  # emit never waited
        await trio.sleep(0.5)
        hub.emit(EventKind.RUN_FINISHED, payload={"status": "succeeded"})
    stats = hub.sink_stats()["stalling"]
    assert stats["dropped"] >= 89
    reports = [e for e in audit.of_kind(EventKind.SINK_ERROR) if e.payload["sink"] == "stalling"]
    assert sum(e.payload["dropped"] for e in reports) == stats["dropped"]
    # The last report comes before run_finished, so the audit log still ends with it.
    assert audit.events[-1].kind is EventKind.RUN_FINISHED
    assert len(audit.events) == hub.events_emitted  # the audit sink lost nothing
    assert stalled.closed  # closed even though its drain timed out


async def test_failing_sink_is_disabled_and_never_hurts_others() -> None:
    audit, failing = MemorySink(), FailingSink()
    hub = EventHub(run_id="run-1", sinks=[audit, failing], max_consecutive_failures=3)
    async with hub.running():
        for i in range(20):
            hub.emit(EventKind.WARNING, payload={"i": i})
            await trio.sleep(0)
    errors = audit.of_kind(EventKind.SINK_ERROR)
    assert len(errors) == 3
    assert errors[-1].payload["disabled"] is True
    assert "disk on fire" in errors[0].payload["error"]
    assert hub.sink_stats()["failing"]["disabled"] is True
    assert [e.seq for e in audit.events] == list(range(hub.events_emitted))


async def test_sink_recovering_after_failures_resets_its_count() -> None:
    audit, flaky = MemorySink(), FailingSink(fail_times=2)
    hub = EventHub(run_id="run-1", sinks=[audit, flaky], max_consecutive_failures=3)
    async with hub.running():
        for i in range(10):
            hub.emit(EventKind.WARNING, payload={"i": i})
            await trio.sleep(0)
    assert hub.sink_stats()["failing"]["disabled"] is False
    assert flaky.received[-1] == hub.events_emitted - 1


async def test_cancelled_run_still_drains_the_audit_sink(autojump_clock: object) -> None:
    audit = SlowAuditSink()
    hub = EventHub(run_id="run-1", sinks=[audit])
    with trio.CancelScope() as scope:
        async with hub.running():
            for i in range(30):
                hub.emit(EventKind.WARNING, payload={"i": i})
            scope.cancel()
            await trio.sleep(1)
    assert scope.cancelled_caught
    assert [e.seq for e in audit.events] == list(range(30))
    assert audit.closed


async def test_add_sink_after_start_and_emit_after_close_are_errors() -> None:
    hub = EventHub(run_id="run-1")
    async with hub.running():
        with pytest.raises(RuntimeError, match="add every sink before the run"):
            hub.add_sink(MemorySink())
    with pytest.raises(RuntimeError, match="after the hub was closed"):
        hub.emit(EventKind.WARNING)


async def test_subscription_gets_history_then_live_events_then_ends() -> None:
    hub = EventHub(run_id="run-1")
    seen: list[int] = []
    async with hub.running():
        hub.emit(EventKind.RUN_STARTED)
        hub.emit(EventKind.WARNING)
        sub = hub.subscribe()

        async def consume() -> None:
            async for event, line in sub:
                assert line == event.model_dump_json()
                seen.append(event.seq)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await trio.sleep(0.01)
            hub.emit(EventKind.WARNING)
            hub.emit(EventKind.RUN_FINISHED)
            await trio.sleep(0.01)
            sub.close()
    assert seen == [0, 1, 2, 3]
    assert not sub.overflowed


async def test_slow_subscriber_overflows_without_slowing_emit() -> None:
    hub = EventHub(run_id="run-1")
    async with hub.running():
        sub = hub.subscribe(max_buffer=5)
        for _ in range(10):
            hub.emit(EventKind.WARNING)
        assert sub.overflowed
        assert [entry async for entry in sub] == []
        late = hub.subscribe()
    # A subscriber after the run sees the whole history and ends.
    assert [event.seq for event, _ in [e async for e in late]] == list(range(10))


async def test_batch_sink_gets_batches_in_order() -> None:
    class Batcher(MemorySink):
        max_batch = 4

        def __init__(self) -> None:
            super().__init__("batcher")
            self.sizes: list[int] = []

        async def emit_batch(self, batch: Sequence[tuple[PipelineEvent, str]]) -> None:
            self.sizes.append(len(batch))
            for event, line in batch:
                await self.emit(event, line=line)

    sink = Batcher()
    hub = EventHub(run_id="run-1", sinks=[sink])
    async with hub.running():
        for _ in range(10):
            hub.emit(EventKind.WARNING)
    assert sink.sizes == [4, 4, 2]
    assert [e.seq for e in sink.events] == list(range(10))


class HangingSink:
    """Never finishes a delivery nor its close (a webhook whose server stopped answering)."""

    name = "hanging"
    audit = False

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        await trio.sleep_forever()

    async def aclose(self) -> None:
        await trio.sleep_forever()


async def test_hanging_sink_gets_drain_timeout_in_all(autojump_clock: object) -> None:
    audit = MemorySink()
    hub = EventHub(run_id="r", sinks=[audit, HangingSink()], drain_timeout=5.0)
    async with hub.running():
        for _ in range(3):
            hub.emit(EventKind.WARNING, payload={"message": "x"})
        start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(5.0)  # one deadline, not 2 x 5 + 1
    assert len(audit.events) == 3 and audit.closed  # the audit sink still got everything


def test_module_exports() -> None:
    assert hub_module.Subscription is subscription_module.Subscription
    assert set(subscription_module.__all__) == {"Entry", "Subscription"}
    assert set(hub_module.__all__) == {
        "DEFAULT_SINK_BUFFER",
        "AuditFailure",
        "AuditLogError",
        "EventHub",
        "SinkPolicy",
        "Subscription",
    }
