"""FileSink, ConsoleSink and MemorySink behaviour (webhook: test_sinks_webhook.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import trio

from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.sinks.console import ConsoleSink, printable, redact
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.sinks.memory import MemorySink


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_file_sink_appends_whole_lines_that_parse(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "run.jsonl"
    path.parent.mkdir()
    path.write_text("")
    hub = EventHub(run_id="run-1", sinks=[FileSink(path)])
    async with hub.running():
        for i in range(600):  # more than one batch
            hub.emit(EventKind.WARNING, payload={"message": f"event {i} ünïcode"})
            if i % 50 == 0:
                await trio.sleep(0)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.decode().splitlines()
    assert [PipelineEvent.model_validate_json(x).seq for x in lines] == list(range(600))
    assert hub.history is not None
    assert lines == [line for _, line in hub.history]


async def test_file_sink_appends_and_fsync_option(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text('{"existing": true}\n')
    sink = FileSink(path, fsync=True)
    event = EventHub(run_id="r").emit(EventKind.WARNING)
    await sink.emit(event, line=event.model_dump_json())
    await sink.aclose()
    await sink.aclose()  # idempotent
    assert path.read_text().splitlines()[0] == '{"existing": true}'
    assert len(path.read_text().splitlines()) == 2


def _events(
    *specs: tuple[EventKind, dict[str, object], str | None, str | None],
) -> list[PipelineEvent]:
    hub = EventHub(run_id="run-1")
    return [
        hub.emit(kind, payload=payload, agent=agent, item=item, attempt=1 if agent else None)
        for kind, payload, agent, item in specs
    ]


async def _feed(sink: ConsoleSink, events: list[PipelineEvent]) -> None:
    for event in events:
        await sink.emit(event, line=event.model_dump_json())
    await sink.aclose()


async def test_console_human_lines() -> None:
    issues = [{"message": "no example", "severity": "blocking"}, {"message": "too long"}]
    events = _events(
        (EventKind.AGENT_STARTED, {"feedback": issues}, "writer_agent", "main"),
        (EventKind.QA_VERDICT, {"passed": False, "issues": issues}, "reviewer_agent", "main"),
        (EventKind.TRANSITION, {"from": "running", "to": "complete", "trigger": "x"}, None, None),
        (EventKind.MODEL_TEXT, {"turn": 0, "text": "streamed"}, "writer_agent", "main"),
    )
    out = io.StringIO()
    await _feed(ConsoleSink(stream=out), events)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # model_text deltas are not printed
    assert lines[0].endswith("writer_agent #1 ▶ started (feedback: 2 issues)")
    assert lines[1].endswith("reviewer_agent #1 ✗ failed: 2 blocking issues")
    assert lines[2].endswith("state running → complete")
    assert "\x1b[" not in out.getvalue()  # not a TTY: no colour


async def test_console_json_mode_prints_the_lines() -> None:
    events = _events((EventKind.WARNING, {"message": "hi"}, None, None))
    out = io.StringIO()
    await _feed(ConsoleSink(stream=out, json=True), events)
    assert json.loads(out.getvalue())["payload"] == {"message": "hi"}


async def test_console_redacts_api_keys_in_both_modes() -> None:
    key = "sk-ant-api03-AbCdEf0123456789_-xyzXYZ"
    events = _events(
        (EventKind.AGENT_FAILED, {"error": "Auth", "message": f"bad key {key}"}, "a", "main"),
        (EventKind.TOOL_CALL, {"tool": "t", "input": {"token": key}}, "a", "main"),
    )
    for json_mode in (False, True):
        out = io.StringIO()
        await _feed(ConsoleSink(stream=out, json=json_mode), events)
        assert key not in out.getvalue()
        assert "sk-ant-***" in out.getvalue()
    assert redact("no secrets here") == "no secrets here"


def _fanout_events(n: int, aborted: int) -> list[PipelineEvent]:
    specs: list[tuple[EventKind, dict[str, object], str | None, str | None]] = []
    specs.append((EventKind.RUN_STARTED, {"pipeline": "p", "model": "replay"}, None, None))
    for k in range(1, n + 1):
        specs.append((EventKind.ITEM_CREATED, {"index": k}, None, f"item-{k}"))
    for k in range(1, n + 1):
        specs.append((EventKind.AGENT_STARTED, {}, "worker_agent", f"item-{k}"))
        status = "aborted" if k <= aborted else "passed"
        specs.append((EventKind.ITEM_FINISHED, {"status": status}, None, f"item-{k}"))
    specs.append(
        (EventKind.RUN_FINISHED, {"status": "failed", "final_state": "failed"}, None, None)
    )
    return _events(*specs)


async def test_console_fanout_progress_every_ten_percent() -> None:
    out = io.StringIO()
    await _feed(ConsoleSink(stream=out), _fanout_events(100, aborted=12))
    lines = out.getvalue().splitlines()
    progress = [line for line in lines if line.startswith("items ")]
    assert len(progress) == 10
    assert progress[-1] == "items 100/100: 88 passed, 12 aborted"
    assert not any("worker_agent" in line for line in lines)  # no per-item lines
    assert lines[-1].endswith("run finished: failed in state failed")


async def test_console_fanout_progress_in_place_on_a_tty() -> None:
    out = TtyStream()
    sink = ConsoleSink(stream=out, color=False)
    await _feed(sink, _fanout_events(20, aborted=0))
    text = out.getvalue()
    assert "\r\x1b[K" in text
    assert "items 20/20: 20 passed" in text
    assert text.count("\n") == 3  # run started, run finished, final newline


async def test_console_colour_on_a_tty() -> None:
    out = TtyStream()
    await _feed(
        ConsoleSink(stream=out), _events((EventKind.QA_VERDICT, {"passed": True}, "r", "main"))
    )
    assert "\x1b[32m" in out.getvalue()


async def test_memory_sink_of_kind() -> None:
    sink = MemorySink()
    hub = EventHub(run_id="r", sinks=[sink])
    async with hub.running():
        hub.emit(EventKind.RUN_STARTED)
        hub.emit(EventKind.WARNING)
    assert [e.seq for e in sink.of_kind(EventKind.WARNING)] == [1]
    assert sink.closed


async def test_console_escapes_terminal_control_characters() -> None:
    hostile = "done\x1b]0;pwned\x07\x1b[2J\rover\nwrite\x9b31m\u202eevil"
    events = _events(
        (EventKind.AGENT_COMPLETED, {"text": hostile}, "writer\x1b[31m", "main"),
        (EventKind.AGENT_FAILED, {"error": f"E{hostile}", "message": hostile}, "a", "main"),
        (EventKind.SINK_ERROR, {"sink": "s\x07", "error": hostile}, None, None),
        (EventKind.RUN_STARTED, {"pipeline": f"p\n{hostile}", "model": "m"}, None, None),
    )
    out = io.StringIO()
    await _feed(ConsoleSink(stream=out, color=False), events)
    text = out.getvalue()
    assert all(ch.isprintable() for ch in text.replace("\n", ""))
    assert text.count("\n") == 4  # one line per event
    assert "\\x1b]0;pwned\\x07" in text and "\\u202e" in text
    assert "writer\\x1b[31m #1" in text


async def test_console_json_lines_escape_c1_controls_and_stay_json() -> None:
    hostile = "a\x1b[2J\x9b31m\u202eb\u2028c"
    events = _events((EventKind.WARNING, {"message": hostile}, None, None))
    out = io.StringIO()
    await _feed(ConsoleSink(stream=out, json=True), events)
    assert all(ch.isprintable() for ch in out.getvalue().rstrip("\n"))
    assert json.loads(out.getvalue())["payload"] == {"message": hostile}


def test_printable_keeps_text_and_escapes_controls() -> None:
    assert printable("ünïcode → ok") == "ünïcode → ok"
    assert printable("a\tb\nc\x00\x7f") == "a\\tb\\nc\\x00\\x7f"


async def test_console_progress_names_completed_items_as_completed() -> None:
    """An item no gate judged is `completed` (map_reduce's children): the line said `passed`."""
    specs: list[tuple[EventKind, dict[str, object], str | None, str | None]] = [
        (EventKind.RUN_STARTED, {"pipeline": "p", "model": "replay"}, None, None)
    ]
    for k in range(1, 4):
        specs.append((EventKind.ITEM_CREATED, {"index": k}, None, f"item-{k}"))
    for k in range(1, 4):
        status = "failed" if k == 3 else "completed"
        specs.append((EventKind.ITEM_FINISHED, {"status": status}, None, f"item-{k}"))
    out = io.StringIO()
    await _feed(ConsoleSink(stream=out), _events(*specs))
    progress = [line for line in out.getvalue().splitlines() if line.startswith("items ")]
    assert progress[-1] == "items 3/3: 2 completed, 1 failed"
