"""A process killed with SIGKILL mid-run leaves an audit log of whole, chained lines.

Each batch of lines goes out in one write(2), but Linux may stop a write to a
regular file at a page boundary when a fatal signal arrives, so the one thing a
kill can leave is an incomplete *final* line (no newline). Everything before
it is whole and chained, and `verify` names the cut-off tail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentflow.runtime.events.event import PipelineEvent
from agentflow.runtime.events.verify import verify_log

WRITER = """
import sys, trio
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.sinks.file import FileSink

async def main():
    hub = EventHub(run_id="run-kill", sinks=[FileSink(sys.argv[1])], keep_history=False)
    async with hub.running():
        i = 0
        while True:
            hub.emit(EventKind.MODEL_TEXT, agent="writer_agent", item="main", attempt=1,
                     payload={"turn": 0, "text": "lorem ipsum " * (i % 40)})
            i += 1
            if i % 64 == 0:
                await trio.sleep(0)

trio.run(main)
"""


def test_sigkill_leaves_no_torn_line(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(log)])
    try:
        deadline = time.monotonic() + 300  # a safety net against a hang, not a budget
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.stat().st_size > 400_000:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    data = log.read_bytes()
    assert len(data) > 400_000
    *lines, tail = data.split(b"\n")
    seqs = [PipelineEvent.model_validate_json(line).seq for line in lines]
    assert seqs == list(range(len(lines)))
    report = verify_log(log)
    expected = [
        "truncated: no run_finished event ends the log (the run crashed or was killed, or the "
        "end of the log was cut off)",
        "not sealed: the log has no log_sealed record, so it is not a finished run's whole log",
    ]
    if tail:  # killed inside a write that crossed a page boundary
        head = b'{"run_id":"run-kill"'  # the cut may fall inside this prefix too
        assert b"\n" not in tail and (tail.startswith(head) or head.startswith(tail))
        expected.insert(0, "the last line has no newline: it was cut off mid-write")
    assert [p.message for p in report.problems] == expected
