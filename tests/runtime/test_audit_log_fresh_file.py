"""`RunOptions(audit_log=PATH)`: each run writes a new file that takes PATH's place as the
run starts (issue 12: truncating the previous run's file in place cost ~45% of a small run
on ext4), and a run that cannot start leaves PATH, and its directory, as they were."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.pipeline import derive_transitions
from agentflow.runtime.sinks.file import FileSink

from .test_engine_fakes import Handlers, compile_dict, hello_spec, text, verdict

PIPELINE = compile_dict(hello_spec())
TRANSITIONS = {(s, t): to for s, t, to in derive_transitions(PIPELINE.spec)}


def _handlers() -> Handlers:
    return Handlers(writer_agent=lambda c: text("draft"), reviewer_agent=lambda c: verdict(True))


async def _run(log: Path, **kw: Any) -> Any:
    return await run_pipeline(
        PIPELINE, "x", handlers=_handlers(), options=RunOptions(audit_log=log), **kw
    )


async def test_a_second_run_replaces_the_log_and_leaves_the_first_runs_file_whole(
    tmp_path: Path,
) -> None:
    log = tmp_path / "run.jsonl"
    first = await _run(log)
    with open(log, "rb") as reader:  # e.g. a `tail -f`, or a copy in progress
        first_bytes = log.read_bytes()
        second = await _run(log)
        # The first run's file was replaced, not emptied: its reader still reads all of it.
        assert reader.read() == first_bytes
        assert os.fstat(reader.fileno()).st_ino != log.stat().st_ino
    assert first_bytes.count(b"\n") == first.events + 1  # + log_sealed
    lines = log.read_bytes().splitlines()
    assert len(lines) == second.events + 1
    assert second.run_id.encode() in lines[0] and first.run_id.encode() not in log.read_bytes()
    assert verify_log(log, TRANSITIONS).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]  # no file left behind


class _UnattachableSink:
    """A sink the hub refuses while the run is being set up (its batch size is no number),
    so the run cannot start after the audit log's sink was created."""

    name = "broken"
    max_batch = "many"

    async def emit(self, event: object, *, line: str) -> None:
        raise AssertionError("never attached")

    async def emit_batch(self, batch: object) -> None:
        raise AssertionError("never attached")


async def test_a_run_that_cannot_start_leaves_the_previous_log_untouched(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    await _run(log)
    before = log.read_bytes()
    inode = log.stat().st_ino
    with pytest.raises(ValueError, match="many"):
        await _run(log, sinks=[_UnattachableSink()])
    assert log.read_bytes() == before and log.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]


def test_a_replacing_sink_touches_nothing_until_installed(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    log.write_text("the previous run\n")
    sink = FileSink(log, replace=True)
    sink.write_lines(["one", "two"])
    assert log.read_text() == "the previous run\n"  # written to its own new file so far
    sink.install()
    assert log.read_text() == "one\ntwo\n"
    sink.write_lines(["three"])
    sink.close()
    assert log.read_text() == "one\ntwo\nthree\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]


def test_a_replacing_sink_closed_before_install_leaves_no_file(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    log.write_text("the previous run\n")
    sink = FileSink(log, replace=True)
    sink.close()
    assert log.read_text() == "the previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]
    fresh = tmp_path / "new" / "run.jsonl"  # a missing directory is created, as before
    sink = FileSink(fresh, replace=True)
    sink.install()
    sink.close()
    assert fresh.read_bytes() == b""
