"""A run whose audit log cannot be written (a full disk) stops, is an error, says so
clearly (also with --quiet) and never claims events it did not write.

The disk is real: a 8 KiB tmpfs mounted for the test (needs root; skipped otherwise),
`RLIMIT_FSIZE` on the `agentflow run` subprocess (the kernel refuses the write with
EFBIG, no mount needed), or /dev/full (every write fails with ENOSPC).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.run_result import with_audit_outcome
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.sinks.memory import MemorySink

from .test_engine_fakes import Handlers, compile_dict, hello_spec, text, verdict

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "pipelines" / "hello_world.yaml"
W, R = "writer_agent", "reviewer_agent"
_FAILED = re.compile(
    r"agentflow: error: audit log (?P<path>\S+) could not be written: (?P<why>[^;]+); "
    r"(?P<written>\d+) of (?P<emitted>\d+) events written"
)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 KiB tmpfs (the hello-world log is ~30 KB)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the RLIMIT test runs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)  # even if a file is open


def _run_cli(log: Path, cwd: Path, *extra: str, file_size_limit: int | None = None) -> Any:
    def limit() -> None:  # in the child, before exec: the kernel caps every file it writes
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "agentflow", "run", str(HELLO), "topic", "--no-ui",
         "--jsonl", str(log), *extra],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=120, preexec_fn=limit,
    )  # fmt: skip


def _check_cli_failure(done: Any, log: Path, why: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    match = _FAILED.search(done.stderr)
    assert match is not None, done.stderr
    assert match["path"] == str(log) and match["why"] == why
    written, emitted = int(match["written"]), int(match["emitted"])
    assert written == log.read_bytes().count(b"\n")  # exactly the whole lines in the file
    assert 0 < written < emitted
    assert "SUCCEEDED" not in done.stdout
    assert "ERROR in state" in done.stdout
    assert f"audit log -> {log} (INCOMPLETE: {written} of {emitted} events)" in done.stdout
    assert not verify_log(log).ok


@pytest.mark.parametrize("quiet", [False, True])
def test_a_full_tmpfs_fails_the_run_with_a_clear_message(
    tmp_path: Path, tiny_disk: Path, quiet: bool
) -> None:
    log = tiny_disk / "run.jsonl"
    done = _run_cli(log, tmp_path, *(["--quiet"] if quiet else []))
    _check_cli_failure(done, log, "No space left on device")


def test_a_file_size_limit_fails_the_run_with_a_clear_message(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    # --no-store: the limit is for the log (the run store would hit it first, and a store
    # that cannot be opened is a run that cannot start: tests/store/test_store_cli.py)
    done = _run_cli(log, tmp_path, "--quiet", "--no-store", file_size_limit=8192)
    _check_cli_failure(done, log, "File too large")


# -- in process: the RunResult, and the run stops ------------------------------------------


async def _writer(ctx: AgentContext) -> AgentOutput:
    await trio.sleep(0)  # a checkpoint, where a stopped run is cancelled
    return text("draft")


async def test_the_run_stops_and_its_result_is_an_error_on_a_full_device() -> None:
    handlers = Handlers(writer_agent=_writer, reviewer_agent=lambda c: verdict(True))
    hub = EventHub(run_id="run-full", sinks=[FileSink("/dev/full"), memory := MemorySink()])
    async with hub.running():
        result = await run_pipeline(
            compile_dict(hello_spec()), "x", handlers=handlers, hub=hub,
            options=RunOptions(backoff_scale=0),
        )  # fmt: skip
    result = with_audit_outcome(result, hub)  # the caller closed its hub: final counts
    assert [agent for agent, _, _ in handlers.calls] == [W]  # nothing ran after the failure
    assert result.status == "error" and not result.ok
    assert result.reason == (
        f"audit log /dev/full could not be written: No space left on device; "
        f"0 of {hub.events_emitted} events written"
    )
    assert result.events == 0
    kinds = [e.kind for e in memory.events]
    assert EventKind.LOG_SEALED not in kinds  # a lost log is never sealed
    (report,) = [e.payload for e in memory.of_kind(EventKind.SINK_ERROR)]
    assert report["sink"] == "file" and report["disabled"] is True
    (failed,) = [e.payload for e in memory.of_kind(EventKind.AGENT_FAILED)]
    assert failed["error"] == "AuditLogError" and failed["fatal"] is True


async def test_run_pipeline_with_its_own_log_on_a_full_tmpfs(tiny_disk: Path) -> None:
    log = tiny_disk / "run.jsonl"
    handlers = Handlers(writer_agent=_writer, reviewer_agent=lambda c: verdict(True))
    result = await run_pipeline(
        compile_dict(hello_spec()), "y" * 7000, handlers=handlers,  # run_started: ~7.2 KB
        options=RunOptions(backoff_scale=0, audit_log=str(log)),
    )  # fmt: skip
    written = log.read_bytes().count(b"\n")
    assert result.status == "error" and not result.ok
    assert result.events == written
    assert re.fullmatch(
        rf"audit log {re.escape(str(log))} could not be written: No space left on device; "
        rf"{written} of \d+ events written",
        result.reason or "",
    ), result.reason


# -- the hub -----------------------------------------------------------------------------


class FailingAuditLog:
    """An inline audit sink whose every write fails, as on a full disk."""

    audit = True
    inline = True
    name = "audit"

    def write_lines(self, lines: Any) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def test_an_audit_sink_is_disabled_at_its_first_failure() -> None:
    stopped: list[str] = []
    hub = EventHub(run_id="run-1", sinks=[FailingAuditLog()], max_consecutive_failures=5)
    hub.on_audit_failure = lambda: stopped.append(hub.audit_failure_message() or "")
    hub.open_inline()
    hub.publish(EventKind.RUN_STARTED)
    hub.flush()
    hub.publish(EventKind.RUN_FINISHED)
    hub.seal_on_close = True
    hub.close_inline()
    assert stopped == ["audit log sink 'audit' could not be written: No space left on device; "
                       "0 of 2 events written"]  # fmt: skip
    stats = hub.sink_stats()["audit"]
    assert stats["disabled"] is True and stats["failures"] == 1  # no retry after a torn write
    assert hub.audit_events_written == 0
    # sink_error and run_finished were emitted (for other sinks), but nothing was sealed.
    assert hub.events_emitted == 3


def test_a_file_sink_counts_the_whole_lines_of_a_short_write(tiny_disk: Path) -> None:
    sink = FileSink(tiny_disk / "run.jsonl")
    lines = [PipelineEvent(run_id="r", seq=i, ts=1.0, kind=EventKind.WARNING).model_dump_json()
             for i in range(200)]  # fmt: skip
    try:
        with pytest.raises(OSError, match="No space left on device"):
            sink.write_lines(lines)
        data = (tiny_disk / "run.jsonl").read_bytes()
        assert 0 < sink.lines_written == data.count(b"\n") < 200
    finally:
        sink.close()
