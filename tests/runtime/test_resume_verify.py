"""`agentflow verify` on a resumed log: what breaks an earlier segment is still found."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.store import RunStore

from .resume_harness import Scripted, resume, start_run
from .test_engine_fakes import compile_dict, hello_spec, text, verdict

RUN = "run-00000000cafe"


def _scripts() -> dict[str, object]:
    return {
        "writer_agent": lambda ctx: text(f"draft {ctx.attempt}"),
        "reviewer_agent": lambda ctx: verdict(ctx.attempt >= 2, "again"),
    }


async def _cut(store: RunStore, log: Path) -> None:
    first = Scripted(_scripts(), interrupt_at=3, scope=trio.CancelScope())  # type: ignore[arg-type]
    cut = await start_run(store, compile_dict(hello_spec()), first, RUN, log, scope=first.scope)
    assert cut is None


async def test_an_edit_in_an_earlier_segment_still_fails_the_resumed_log(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    with RunStore.open(str(tmp_path / "store.db")) as store:
        await _cut(store, log)
        await resume(store, compile_dict(hello_spec()), Scripted(_scripts()), RUN, log)  # type: ignore[arg-type]
    assert verify_log(log).ok
    lines = log.read_text().splitlines()
    lines[3] = lines[3].replace('"attempt":1', '"attempt":7', 1)
    log.write_text("".join(line + "\n" for line in lines))
    report = verify_log(log)
    assert not report.ok
    assert any("prev_hash does not match" in p.message for p in report.problems)


async def test_a_resumed_log_whose_last_segment_did_not_finish_is_not_ok(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    with RunStore.open(str(tmp_path / "store.db")) as store:
        await _cut(store, log)
        await resume(store, compile_dict(hello_spec()), Scripted(_scripts()), RUN, log)  # type: ignore[arg-type]
    lines = log.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines].count("run_finished") == 2
    log.write_text("".join(line + "\n" for line in lines[:-2]))  # the last end cut off
    report = verify_log(log)
    assert not report.ok and report.segments == 2
    assert any("no run_finished event ends the log" in p.message for p in report.problems)
