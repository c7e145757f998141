"""The resume API around the engine: `Pipeline.resume`, refusals, the JSONL export's
repair from the store, and a memoised QA retry's backoff not slept again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.pipeline_app import Pipeline
from agentflow.runtime.engine.resume import ResumeRefused, repair_export, resume_run
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.errors import CannotStartError
from agentflow.runtime.store import RunStore

from .resume_harness import SAFETY, Script, Scripted, check_log, same_outcome, start_run
from .test_engine_fakes import compile_dict, hello_spec, text, verdict

RUN = "run-00000000abcd"


def _scripts() -> dict[str, Script]:
    def reviewer(ctx: AgentContext) -> AgentOutput:
        return verdict(ctx.attempt >= 2, "too short")

    return {"writer_agent": lambda ctx: text(f"draft {ctx.attempt}"), "reviewer_agent": reviewer}


async def _cut(store: RunStore, tmp_path: Path, spec: dict, at: int) -> Path:
    log = tmp_path / "run.jsonl"
    first = Scripted(_scripts(), interrupt_at=at, scope=trio.CancelScope())
    cut = await start_run(store, compile_dict(spec), first, RUN, log, scope=first.scope)
    assert cut is None
    return log


async def test_pipeline_resume_continues_a_run_from_a_store_path(tmp_path: Path) -> None:
    where = str(tmp_path / "store.db")
    with RunStore.open(where) as store:
        await _cut(store, tmp_path, hello_spec(), at=3)
    compiled = compile_dict(hello_spec())
    second = Scripted(_scripts())
    with trio.fail_after(SAFETY):
        result = await Pipeline(compiled, second).resume(
            RUN, store=where, options=RunOptions(backoff_scale=0)
        )
    assert result.ok and result.final_state == "complete"
    assert second.calls == [("writer_agent", "main", 2), ("reviewer_agent", "main", 2)]


async def test_a_finished_run_and_a_changed_pipeline_are_refused(tmp_path: Path) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        compiled = compile_dict(hello_spec())
        done = await start_run(store, compiled, Scripted(_scripts()), RUN, tmp_path / "a.jsonl")
        assert done is not None and done.ok
        with pytest.raises(ResumeRefused, match=rf"run {RUN} finished \(succeeded\)"):
            await resume_run(compiled, store, RUN, handlers=Scripted(_scripts()), model=None)
        await _cut_other(store, tmp_path)
        changed = dataclasses.replace(compiled, source_sha256="0" * 64)  # another source
        with pytest.raises(ResumeRefused, match="ran another version of pipeline") as refused:
            await resume_run(changed, store, "run-00000000ffff", handlers=None, model=None)
        assert isinstance(refused.value, CannotStartError)  # `agentflow resume` exits 2
        assert store.run("run-00000000ffff").epoch == 1  # refused before the lease was taken


async def _cut_other(store: RunStore, tmp_path: Path) -> None:
    first = Scripted(_scripts(), interrupt_at=2, scope=trio.CancelScope())
    cut = await start_run(
        store, compile_dict(hello_spec()), first, "run-00000000ffff", tmp_path / "f.jsonl",
        scope=first.scope,
    )  # fmt: skip
    assert cut is None


async def test_a_lagging_or_torn_export_is_repaired_from_the_store_on_resume(
    tmp_path: Path,
) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        log = await _cut(store, tmp_path, hello_spec(), at=3)
        lines = log.read_bytes().splitlines(keepends=True)
        # A process killed between a commit and the export's write: the export lags
        # by three lines and ends in half a line.
        log.write_bytes(b"".join(lines[:-3]) + lines[-3][:17])
        with trio.fail_after(SAFETY):
            result = await resume_run(
                compile_dict(hello_spec()), store, RUN, handlers=Scripted(_scripts()),
                model=None, options=RunOptions(backoff_scale=0, audit_log=log),
            )  # fmt: skip
        assert result.ok
        check_log(store, RUN, log)  # verifies, and is exactly the store


def test_repair_export_leaves_a_whole_export_alone_and_rewrites_a_damaged_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.jsonl"
    lines = ['{"seq":0}', '{"seq":1}']
    assert repair_export(path, lines) is True  # missing: written
    assert repair_export(path, lines) is False  # whole: untouched
    path.write_text('{"seq":0}\n{"seq":9}\n')  # not a prefix of the store: rewritten
    assert repair_export(path, lines) is True
    assert path.read_text() == '{"seq":0}\n{"seq":1}\n'


async def test_a_memoised_qa_retry_does_not_sleep_its_backoff_again(tmp_path: Path) -> None:
    """The reviewer's retry waits ten minutes before the writer's 2nd attempt; the first run
    ran with backoff off and was cut after that attempt was committed. The resume
    serves it from the store: it must not sleep (the safety timeout would fail it)."""
    slow = hello_spec(defaults={"retry": {"max_attempts": 3, "backoff_ms": 600_000}})
    slow["agents"][1]["retry"] = {"max_attempts": 2, "backoff_ms": 600_000}
    with RunStore.open(str(tmp_path / "store.db")) as store:
        log = await _cut(store, tmp_path, slow, at=4)  # writer 2 committed, reviewer 2 cut
        assert ("writer_agent", "main", 2) in store.memo(RUN).steps
        second = Scripted(_scripts())
        with trio.fail_after(SAFETY):
            result = await resume_run(
                compile_dict(slow), store, RUN, handlers=second, model=None,
                options=RunOptions(backoff_scale=1.0, audit_log=log),
            )  # fmt: skip
        assert result.ok
        assert second.calls == [("reviewer_agent", "main", 2)]
        whole = await start_run(
            store, compile_dict(hello_spec()), Scripted(_scripts()), "run-0000000whole",
            tmp_path / "w.jsonl",
        )  # fmt: skip
        assert whole is not None
        same_outcome(result, whole)
