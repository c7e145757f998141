"""The sealed audit log: a finished run's log ends with `log_sealed`, and no edit anywhere
in it (a byte, a line deleted, duplicated or moved) verifies; `run_finished` must agree
with the events before it even when a forger re-chains and re-seals the log."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import VerifyReport, verify_log
from agentflow.runtime.pipeline import derive_transitions
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.sinks.memory import MemorySink

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "pipelines" / "hello_world.yaml"
FANOUT = REPO / "pipelines" / "research_fanout.yaml"


def _run(pipeline: Path, cwd: Path, *extra: str) -> Path:
    """`agentflow run PIPELINE --no-ui --quiet` offline; the audit log it wrote."""
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    log = cwd / f"{pipeline.stem}.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "agentflow", "run", str(pipeline), "topic", "--no-ui", "--quiet",
         "--jsonl", str(log), *extra],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return log


def _checked(log: Path, pipeline: Path = HELLO) -> VerifyReport:
    """verify_log with everything the pipeline tells: its table, initial and terminal states."""
    spec = compile_and_import(pipeline).compiled.spec
    table = {(s, t): target for s, t, target in derive_transitions(spec)}
    return verify_log(
        log, table, initial=spec.state_machine.initial, terminal=spec.state_machine.terminal
    )


@pytest.fixture(scope="module")
def hello_log(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _run(HELLO, tmp_path_factory.mktemp("hello")).read_bytes()


def _events(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def _forge(events: list[dict[str, Any]]) -> bytes:
    """What a forger who knows the format writes: every line re-chained, the seal recomputed
    (docs/events.md: its `sha256` is the SHA-256 of its own line with that value empty)."""
    out: list[bytes] = []
    prev = ""
    for fields in events:
        fields = {**fields, "prev_hash": prev}
        if fields["kind"] == "log_sealed":
            fields["payload"] = {**fields["payload"], "sha256": ""}
            blank = PipelineEvent.model_validate(fields).model_dump_json().encode()
            fields["payload"]["sha256"] = hashlib.sha256(blank).hexdigest()
        line = PipelineEvent.model_validate(fields).model_dump_json().encode()
        out.append(line)
        prev = hashlib.sha256(line).hexdigest()
    return b"".join(line + b"\n" for line in out)


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "edited.jsonl"
    path.write_bytes(data)
    return path


# -- a finished log is sealed and verifies ----------------------------------------------


def test_a_finished_run_ends_with_a_seal_that_covers_run_finished(
    tmp_path: Path, hello_log: bytes
) -> None:
    lines = hello_log.splitlines()
    run_finished, seal = json.loads(lines[-2]), json.loads(lines[-1])
    assert run_finished["kind"] == "run_finished"
    assert seal["kind"] == "log_sealed"
    assert seal["prev_hash"] == hashlib.sha256(lines[-2]).hexdigest()
    assert seal["payload"]["events"] == seal["seq"] == len(lines) - 1
    blank = lines[-1].replace(seal["payload"]["sha256"].encode(), b"")
    assert hashlib.sha256(blank).hexdigest() == seal["payload"]["sha256"]
    report = _checked(_write(tmp_path, hello_log))
    assert report.ok, report.render()
    assert report.sealed
    assert f"OK: {len(lines)} events of run {seal['run_id']}, sealed" in report.render()
    assert _forge(_events(hello_log)) == hello_log  # the forger's rule is the writer's rule


def test_a_fan_out_run_and_a_failed_run_verify_with_every_cross_check(tmp_path: Path) -> None:
    fanout = _run(FANOUT, tmp_path)
    report = _checked(fanout, FANOUT)
    assert report.ok, report.render()
    failed = _run(HELLO, tmp_path, "--model", "dry-run", "--fail-first", "9")
    assert _events(failed.read_bytes())[-2]["payload"]["status"] == "failed"
    report = _checked(failed)
    assert report.ok, report.render()


# -- the last line is protected --------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"status":"succeeded"', b'"status":"failed"'),
        (b'"cost_usd":0.', b'"cost_usd":1.'),
        (b'"passed":1', b'"passed":2'),
        (b'"final_state":"complete"', b'"final_state":"failed"'),
    ],
)
def test_editing_run_finished_fails_verify(
    tmp_path: Path, hello_log: bytes, old: bytes, new: bytes
) -> None:
    lines = hello_log.splitlines()
    index = next(i for i, line in enumerate(lines) if b'"kind":"run_finished"' in line)
    assert old in lines[index]
    lines[index] = lines[index].replace(old, new, 1)
    report = _checked(_write(tmp_path, b"".join(x + b"\n" for x in lines)))
    assert not report.ok
    assert "prev_hash does not match" in report.render()


def test_a_trailing_space_on_any_of_the_last_lines_fails(tmp_path: Path, hello_log: bytes) -> None:
    lines = hello_log.splitlines()
    for index in (-2, -1):
        edited = list(lines)
        edited[index] += b" "
        report = _checked(_write(tmp_path, b"".join(x + b"\n" for x in edited)))
        assert not report.ok, index


def test_every_byte_of_the_last_two_lines_is_protected(tmp_path: Path, hello_log: bytes) -> None:
    """Exhaustive where the chain alone used to stop: run_finished, the seal, the newlines."""
    start = hello_log.rstrip(b"\n").rfind(b"\n", 0, hello_log.rstrip(b"\n").rfind(b"\n")) + 1
    path = tmp_path / "flip.jsonl"
    for position in range(start, len(hello_log)):
        for flip in (0x01, 0x20):
            data = bytearray(hello_log)
            data[position] ^= flip
            path.write_bytes(bytes(data))
            assert not verify_log(path).ok, (position, bytes(data[position : position + 1]))


_ALIKE = (b"0123456789", b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    lines = data.splitlines(keepends=True)
    how = draw(st.sampled_from(["byte", "delete", "duplicate", "move", "swap"]))
    if how == "byte":
        # Half the time in the last two lines (where the chain alone used to stop); and
        # often a look-alike byte (a digit for a digit...), so the JSON still parses.
        tail = data.rstrip(b"\n").rfind(b"\n", 0, data.rstrip(b"\n").rfind(b"\n")) + 1
        start = draw(st.sampled_from([0, tail]))
        position = draw(st.integers(start, len(data) - 1))
        old = data[position]
        alike = next((c for c in _ALIKE if old in c), bytes(range(256)))
        value = draw(st.sampled_from([v for v in alike if v != old] or [old ^ 1]))
        return data[:position] + bytes([value]) + data[position + 1 :]
    i = draw(st.integers(0, len(lines) - 1))
    if how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(draw(st.integers(0, len(lines))), lines[i])
    elif how == "move":
        line = lines.pop(i)
        j = draw(st.integers(0, len(lines)).filter(lambda j: j != i))
        lines.insert(j, line)
    else:
        j = draw(st.integers(0, len(lines) - 1).filter(lambda j: lines[j] != lines[i]))
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_change_anywhere_in_a_finished_log_fails_verify(
    tmp_path: Path, hello_log: bytes, data: st.DataObject
) -> None:
    mutated = _mutate(hello_log, data.draw)
    path = tmp_path / "mutated.jsonl"
    path.write_bytes(mutated)
    report = verify_log(path)
    assert not report.ok, mutated


# -- crashed runs: no seal, no OK -------------------------------------------------------


def test_a_log_without_its_seal_is_an_unfinished_run(tmp_path: Path, hello_log: bytes) -> None:
    lines = hello_log.splitlines(keepends=True)
    report = _checked(_write(tmp_path, b"".join(lines[:-1])))
    assert not report.ok and not report.sealed
    assert "not sealed" in report.render()
    assert "OK" not in report.render()


def test_a_torn_seal_is_named_and_not_sound(tmp_path: Path, hello_log: bytes) -> None:
    cut = hello_log[: len(hello_log) - 30]
    messages = [str(p) for p in _checked(_write(tmp_path, cut)).problems]
    assert any("cut off mid-write" in m for m in messages)
    assert any("not sealed" in m for m in messages)


def test_a_crashed_run_names_the_cut_and_checks_every_line_before_it(
    tmp_path: Path, hello_log: bytes
) -> None:
    """decisions #16: a SIGKILL leaves one cut-off line; the lines before it are checked."""
    lines = hello_log.splitlines(keepends=True)
    crashed = b"".join(lines[:10]) + lines[10][:25]
    messages = [str(p) for p in _checked(_write(tmp_path, crashed)).problems]
    assert messages == [
        "line 11: the last line has no newline: it was cut off mid-write",
        "truncated: no run_finished event ends the log (the run crashed or was killed, "
        "or the end of the log was cut off)",
        "not sealed: the log has no log_sealed record, so it is not a finished run's whole log",
    ]


# -- run_finished must agree with the events before it (a forger's re-chained log) -------


def _forged_with(hello_log: bytes, edit: Any) -> bytes:
    events = _events(hello_log)
    edit(events)
    return _forge(events)


def _finished(events: list[dict[str, Any]]) -> dict[str, Any]:
    payload: dict[str, Any] = events[-2]["payload"]
    return payload


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda e: _finished(e).update(status="failed"),
            "run_finished says status 'failed', but its events show 'succeeded'",
        ),
        (
            lambda e: _finished(e).update(final_state="reviewing"),
            "run_finished says final state 'reviewing', but the last transition went to 'complete'",
        ),
        (
            lambda e: _finished(e)["items"].update(passed=2),
            "run_finished counts items {'passed': 2, 'failed': 0, 'aborted': 0, "
            "'completed': 0}, but its events show {'passed': 1, 'failed': 0, 'aborted': 0, "
            "'completed': 0}",
        ),
        (
            lambda e: _finished(e)["usage"].update(model_calls=2),
            "run_finished says usage.model_calls 2, but its model_response events add up to 6",
        ),
        (
            lambda e: _finished(e)["usage"].update(cost_usd=0.0),
            "run_finished says usage.cost_usd 0.0, but its model_response events add up to 0.035",
        ),
    ],
)
def test_a_re_chained_run_finished_must_agree_with_the_events(
    tmp_path: Path, hello_log: bytes, edit: Any, expected: str
) -> None:
    report = _checked(_write(tmp_path, _forged_with(hello_log, edit)))
    messages = [p.message for p in report.problems]
    assert len(messages) == 1, messages
    assert messages[0].startswith(expected), messages


def test_a_forged_cancellation_or_missing_events_are_caught(
    tmp_path: Path, hello_log: bytes
) -> None:
    def cancelled(events: list[dict[str, Any]]) -> None:
        _finished(events).update(status="cancelled", reason="cancelled")

    report = _checked(_write(tmp_path, _forged_with(hello_log, cancelled)))
    assert [p.message for p in report.problems] == [
        "run_finished says status 'cancelled', but no run_cancelled event precedes it"
    ]

    def seal_miscounts(events: list[dict[str, Any]]) -> None:
        events[-1]["payload"]["events"] = 3

    report = _checked(_write(tmp_path, _forged_with(hello_log, seal_miscounts)))
    assert [p.message for p in report.problems] == [
        f"log_sealed counts 3 events before it, but the log holds {len(_events(hello_log)) - 1}"
    ]

    def no_run_finished(events: list[dict[str, Any]]) -> None:
        del events[-2]
        events[-1]["seq"] -= 1
        events[-1]["payload"]["events"] -= 1

    forged = _write(tmp_path, _forged_with(hello_log, no_run_finished))
    assert [str(p) for p in verify_log(forged).problems] == [
        "truncated: no run_finished event ends the log (the run crashed or was killed, "
        "or the end of the log was cut off)"
    ]


# -- the hub writes the seal -------------------------------------------------------------

_USAGE = {
    "input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0, "cost_usd": 0.0, "model_calls": 0,
}  # fmt: skip


def _emit_tiny_run(hub: EventHub) -> None:
    """The smallest run verify accepts: one item completed, nothing spent."""
    hub.publish(EventKind.RUN_STARTED, payload={"pipeline": "t"})
    hub.publish(EventKind.ITEM_FINISHED, item="main", payload={"status": "completed"})
    counts = {"passed": 0, "failed": 0, "aborted": 0, "completed": 1}
    hub.publish(
        EventKind.RUN_FINISHED,
        payload={"status": "succeeded", "final_state": "x", "usage": _USAGE, "items": counts},
    )


def test_the_hub_seals_the_log_when_it_closes_it(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    hub = EventHub(run_id="run-1", pipeline_hash="h", sinks=[FileSink(log)], keep_history=False)
    hub.open_inline()
    _emit_tiny_run(hub)
    hub.seal_on_close = True  # what finish_run does
    hub.close_inline()
    kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert kinds == ["run_started", "item_finished", "run_finished", "log_sealed"]
    assert verify_log(log).ok, verify_log(log).render()
    with pytest.raises(RuntimeError, match="after the hub was closed"):
        hub.publish(EventKind.WARNING)


async def test_a_pumped_sink_gets_the_seal_too(tmp_path: Path) -> None:
    log, memory = tmp_path / "run.jsonl", MemorySink()
    hub = EventHub(run_id="run-1", sinks=[FileSink(log), memory])
    async with hub.running():
        _emit_tiny_run(hub)
        hub.seal_on_close = True
    assert [e.kind for e in memory.events][-1] is EventKind.LOG_SEALED
    assert memory.lines == log.read_text().splitlines()
    assert verify_log(log).ok, verify_log(log).render()
