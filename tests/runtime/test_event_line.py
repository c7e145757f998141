"""The hand-built event line is byte-identical to `PipelineEvent.model_dump_json()`.

The audit log's hash chain covers the exact bytes, and `agentflow verify`
re-serialises nothing, but every other reader (UI, webhooks, replays) assumes a
line is what pydantic would write; `LineEncoder` must never drift from it.
"""

from __future__ import annotations

import datetime
import enum
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agentflow.runtime.events.event import EventKind, LineEncoder, PipelineEvent, new_event
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.sinks.file import FileSink

from .audit_chain import chained


class Colour(enum.Enum):
    RED = "red"


class Usage(BaseModel):
    tokens: int
    cost: float


def _pydantic_line(
    run_id: str,
    pipeline_hash: str,
    seq: int,
    ts: float,
    kind: EventKind,
    agent: str | None,
    item: str | None,
    attempt: int | None,
    payload: dict[str, Any] | None,
    prev_hash: str,
) -> str:
    fields = {
        "run_id": run_id,
        "seq": seq,
        "ts": ts,
        "kind": kind,
        "agent": agent,
        "item": item,
        "attempt": attempt,
        "payload": payload if payload is not None else {},
        "pipeline_hash": pipeline_hash,
        "prev_hash": prev_hash,
    }
    return new_event(fields).model_dump_json()


CORPUS: list[dict[str, Any] | None] = [
    None,
    {},
    {"upstream": None},
    {"text": 'ünïcode ✓ 漢字 emoji 🎉 and a quote " and a backslash \\'},
    {"control": "\x00\x01\x1f\x7f\t\n\r\b\f", "line\nkey": "x"},
    {"floats": [0.1, 1.5, -2.25, 1e-5, 1.5e-07, 1e16, 1e22, 123.0, 5e-324, 1.7976931348623157e308]},
    {"nan": math.nan, "inf": math.inf, "ninf": -math.inf},
    {"nested": {"a": [1, {"b": [True, False, None]}], "c": {"d": {"e": "f"}}}},
    {"tuple": (1, "two"), "big": 10**30, "neg": -7, "bool": True},
    {"model": Usage(tokens=3, cost=0.25), "enum": Colour.RED, "kind": EventKind.WARNING},
    {"when": datetime.datetime(2026, 11, 25, 10, 0, 0), "bytes": b"raw"},
    {"from": "planning", "to": "working", "trigger": "orchestrator_agent.on_complete"},
    {"gates": {"qa_agent": True, "style_qa": False}, "status": "passed"},
]

NAMES = [None, "", "writer_agent", "item-1.2", 'ágent "quoted"', "tab\there", "\u2028\u2029"]


@pytest.mark.parametrize("payload", CORPUS)
@pytest.mark.parametrize("name", NAMES)
def test_corpus_lines_equal_pydantic(payload: dict[str, Any] | None, name: str | None) -> None:
    run_id, pipeline_hash = 'run-ünï "x"', "ab" * 32
    encoder = LineEncoder(run_id, pipeline_hash)
    for kind in (EventKind.RUN_STARTED, EventKind.TRANSITION, EventKind.SINK_ERROR):
        for ts in (time.time(), 1764068205.0, 1764068205.1234567, 0.5, 12345.678):
            args = (7, ts, kind, name, name, 3 if name else None, payload, "f0" * 32)
            line = encoder.line(*args)
            assert line == _pydantic_line(run_id, pipeline_hash, *args)


json_leaves = st.none() | st.booleans() | st.integers() | st.text() | st.floats()
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    run_id=st.text(),
    agent=st.none() | st.text(),
    item=st.none() | st.text(),
    attempt=st.none() | st.integers(min_value=0, max_value=10**6),
    payload=st.none() | st.dictionaries(st.text(), json_values, max_size=5),
    ts=st.floats(min_value=1e-3, max_value=1e13),
)
def test_random_lines_equal_pydantic(
    run_id: str,
    agent: str | None,
    item: str | None,
    attempt: int | None,
    payload: dict[str, Any] | None,
    ts: float,
) -> None:
    # Lone surrogates cannot be encoded at all (pydantic raises too): not a real event.
    text = repr((run_id, agent, item, payload))
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return
    encoder = LineEncoder(run_id, "hash")
    args = (0, ts, EventKind.MODEL_TEXT, agent, item, attempt, payload, "")
    assert encoder.line(*args) == _pydantic_line(run_id, "hash", *args)


def test_values_outside_the_fast_path_fall_back_to_pydantic() -> None:
    encoder = LineEncoder("run-1", "")
    assert encoder.line(0, 1e-5, EventKind.WARNING, None, None, None, None, "") is None
    assert encoder.line(0, 2.0, EventKind.WARNING, None, None, True, None, "") is None
    assert encoder.line(0, 2.0, EventKind.WARNING, None, None, None, [1], "") is None  # type: ignore[arg-type]
    hub = EventHub(run_id="run-1")
    event = hub.emit(EventKind.WARNING, attempt=True, payload={"x": 1e-5})
    assert hub.history is not None
    assert hub.history[0][1] == event.model_dump_json()


async def test_hub_lines_in_the_audit_log_equal_the_events(tmp_path: Path) -> None:
    """A lines-only FileSink next to a kept history: same bytes, a valid chain."""
    log = tmp_path / "run.jsonl"
    hub = EventHub(run_id="run-1", pipeline_hash="p", sinks=[FileSink(log)])
    async with hub.running():
        hub.publish(EventKind.RUN_STARTED, payload={"input": "ü"})
        for payload in CORPUS:
            hub.publish(EventKind.WARNING, agent="a", item="main", attempt=1, payload=payload)
        hub.publish(EventKind.RUN_FINISHED, payload={"status": "succeeded"})
    assert hub.history is not None
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines == [line for _, line in hub.history]
    assert lines == [event.model_dump_json() for event, _ in hub.history]
    assert [PipelineEvent.model_validate_json(x).seq for x in lines] == list(range(len(lines)))
    assert chained(log)


async def test_publish_builds_no_event_objects_for_a_file_sink_alone(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    hub = EventHub(run_id="run-1", sinks=[FileSink(log)], keep_history=False)
    async with hub.running():
        hub.publish(EventKind.RUN_STARTED)
        queued = list(hub._raw)  # kept as published until the next flush builds its line
        hub.flush()
        held = [*hub._held, *log.read_text().splitlines()]
        hub.publish(EventKind.RUN_FINISHED, payload={"status": "succeeded"})
    assert not any(isinstance(part, PipelineEvent) for entry in queued for part in entry)
    assert [type(line) for line in held] == [str]  # the bare line, no event object
    assert chained(log)
