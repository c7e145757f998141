"""`EventHub.publish` builds an event's JSON line and hash lazily (issue 12): once per burst,
at `flush`, and not at all when nothing would read them (no sink, no committer, no
history, no subscriber). The bytes and the hash chain are those `emit` builds at once.

The probe is a payload value whose serializer counts its calls: pydantic_core calls it
exactly when the event's line is built (`LineEncoder`), so the count is how many lines
held it, observed at the payload's boundary, not by mocking the hub.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, model_serializer

from agentflow.runtime.events.event import (
    EventKind,
    LineEncoder,
    PipelineEvent,
    new_event,
    seal_event,
)
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.sinks.file import FileSink

from .audit_chain import chained


class Probe(BaseModel):
    """Serializes as {"probe": n}; counts how many times it was serialized."""

    calls: list[int] = []

    @model_serializer
    def _count(self) -> dict[str, int]:
        self.calls.append(1)
        return {"probe": len(self.calls)}


class LinesSink:
    """An inline sink (like the audit FileSink) that keeps each write's lines."""

    name = "lines"
    audit = True
    inline = True

    def __init__(self) -> None:
        self.writes: list[list[str]] = []

    def write_lines(self, lines: Sequence[str]) -> None:
        self.writes.append(list(lines))

    async def emit_lines(self, lines: Sequence[str]) -> None:
        self.write_lines(lines)

    def close(self) -> None:
        pass


class Committer:
    """An `EventCommitter` that keeps what it was given and acknowledges at once."""

    where = "test committer"

    def __init__(self) -> None:
        self.bursts: list[tuple[int, list[str], str]] = []

    def submit(
        self,
        first_seq: int,
        lines: Sequence[str],
        kinds: Sequence[str],
        last_hash: str,
        done: Callable[[BaseException | None], None],
    ) -> None:
        self.bursts.append((first_seq, list(lines), last_hash))
        done(None)


def _sha(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def _assert_chained(lines: list[str]) -> None:
    events = [PipelineEvent.model_validate_json(line) for line in lines]
    assert [e.seq for e in events] == list(range(len(lines)))
    for before, line in zip(lines, events[1:], strict=False):
        assert line.prev_hash == _sha(before)


async def test_a_hub_with_nothing_listening_builds_no_line() -> None:
    probe = Probe()
    hub = EventHub(run_id="run-1", keep_history=False)
    hub.open_inline()
    for _ in range(3):
        hub.publish(EventKind.WARNING, payload={"value": probe})
    hub.flush()
    hub.seal_on_close = True
    hub.close_inline()
    assert probe.calls == []
    assert hub.events_emitted >= 3


async def test_lines_are_built_once_per_burst_at_flush() -> None:
    probe = Probe()
    sink = LinesSink()
    hub = EventHub(run_id="run-1", sinks=[sink], keep_history=False)
    hub.open_inline()
    hub.publish(EventKind.RUN_STARTED)
    hub.publish(EventKind.WARNING, payload={"value": probe})
    hub.publish(EventKind.WARNING, payload={"value": probe})
    assert probe.calls == []  # nothing is built until the burst ends
    hub.flush()
    assert len(probe.calls) == 2 and len(sink.writes) == 1
    hub.flush()
    assert len(probe.calls) == 2  # built once
    hub.publish(EventKind.WARNING, payload={"value": probe})
    hub.emit(EventKind.WARNING, payload={"message": "written through"})  # builds at once
    hub.publish(EventKind.RUN_FINISHED, payload={"status": "passed"})
    hub.seal_on_close = True
    hub.close_inline()
    lines = [line for write in sink.writes for line in write]
    assert [PipelineEvent.model_validate_json(x).kind for x in lines] == [
        "run_started", "warning", "warning", "warning", "warning", "run_finished", "log_sealed",
    ]  # fmt: skip
    assert '"payload":{"value":{"probe":1}}' in lines[1]  # the value as it was serialized
    _assert_chained(lines)


async def test_lazy_lines_are_the_bytes_emit_builds(tmp_path: Path) -> None:
    """The same events, published (lazy) or emitted (at once), give the same file."""
    logs = []
    for how in ("publish", "emit"):
        log = tmp_path / f"{how}.jsonl"
        hub = EventHub(run_id="run-1", pipeline_hash="p" * 64, sinks=[FileSink(log)])
        hub._eager = False  # emit's path too, with no history to keep
        send: Any = getattr(hub, how)
        async with hub.running():
            for i in range(300):  # more than one burst's bound
                send(EventKind.WARNING, agent="a", item="main", attempt=i, payload={"i": i})
        logs.append([PipelineEvent.model_validate_json(x) for x in log.read_text().splitlines()])
        assert chained(log)
    published, emitted = logs
    assert len(published) == len(emitted) == 300
    varying = {"ts", "prev_hash"}  # the times differ, and so the hashes
    for a, b in zip(published, emitted, strict=True):
        assert a.model_dump(exclude=varying) == b.model_dump(exclude=varying)


async def test_the_committer_gets_the_lazy_lines_in_order_with_their_last_hash() -> None:
    committer = Committer()
    hub = EventHub(run_id="run-1", keep_history=False, committer=committer)
    async with hub.running():
        for i in range(5):
            hub.publish(EventKind.WARNING, payload={"i": i})
        hub.flush()
        hub.emit(EventKind.WARNING, payload={"i": 5})
        hub.publish(EventKind.RUN_FINISHED, payload={"status": "passed"})
        await hub.wait_committed()
    lines = [line for _, burst, _ in committer.bursts for line in burst]
    _assert_chained(lines)
    expected_first = 0
    for first_seq, burst, last_hash in committer.bursts:
        assert first_seq == expected_first and last_hash == _sha(burst[-1])
        expected_first += len(burst)


async def test_a_subscriber_of_a_hub_nothing_listened_to_sees_the_chain_start_afresh() -> None:
    hub = EventHub(run_id="run-1", keep_history=False)
    hub.open_inline()
    hub.publish(EventKind.RUN_STARTED)  # nothing listens: no line, so no hash to chain to
    subscription = hub.subscribe()
    hub.publish(EventKind.WARNING, payload={"message": "seen"})
    hub.publish(EventKind.WARNING, payload={"message": "seen too"})
    hub.close_inline()
    seen = [entry async for entry in subscription]
    assert [event.seq for event, _ in seen] == [1, 2]
    assert seen[0][0].prev_hash == ""  # the line before it was never built
    assert seen[1][0].prev_hash == _sha(seen[0][1])


def test_the_encoders_chain_is_line_by_line_and_falls_back_to_pydantic() -> None:
    encoder = LineEncoder('run-\u00e9"1', "p" * 64)
    now = 1_764_000_000.123456
    events: list[Any] = [
        (now, EventKind.RUN_STARTED, None, None, None, {"input": 'tab\tquote" \u2603'}),
        (now, EventKind.AGENT_STARTED, "writer", "main", 1, None),
        (now, EventKind.WARNING, None, None, None, {"nan": float("nan"), "n": [1, 2.5]}),
        (now, EventKind.WARNING, None, None, None, OrderedDict(a=1)),  # pydantic's dump
        (1e-5, EventKind.WARNING, None, None, None, {}),  # a ts out of the fast range
        (now, EventKind.RUN_FINISHED, None, None, None, {"status": "passed"}),
    ]
    lines, last = encoder.chain(3, events, "f" * 64)
    prev = "f" * 64
    for seq, (event, line) in enumerate(zip(events, lines, strict=True), start=3):
        ts, kind, agent, item, attempt, payload = event
        fields = {
            "run_id": encoder.run_id, "seq": seq, "ts": ts, "kind": kind, "agent": agent,
            "item": item, "attempt": attempt, "payload": payload or {},
            "pipeline_hash": encoder.pipeline_hash, "prev_hash": prev,
        }  # fmt: skip
        assert line == new_event(fields).model_dump_json()
        fast = encoder.line(seq, ts, kind, agent, item, attempt, payload, prev)
        assert fast is None or fast == line
        prev = _sha(line)
    assert last == prev


async def test_the_hubs_seal_is_the_line_seal_event_builds(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    hub = EventHub(run_id="run-\u00e9", pipeline_hash="p" * 64, sinks=[FileSink(log)])
    hub.open_inline()
    hub.publish(EventKind.RUN_STARTED)
    hub.publish(EventKind.RUN_FINISHED, payload={"status": "passed"})
    hub.seal_on_close = True
    hub.close_inline()
    *before, last = log.read_text().splitlines()
    sealed = PipelineEvent.model_validate_json(last)
    rebuilt = seal_event("run-\u00e9", 2, sealed.ts, "p" * 64, _sha(before[-1]))
    assert last == rebuilt.model_dump_json()
