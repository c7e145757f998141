"""Resume as an attacker or a careless user would try it (second reader, issue 11):
two resumes of one run at once, event identities that collide in the replay filter,
a resumed run's summary. Real store, hub, engine and FileSink throughout."""

from __future__ import annotations

from pathlib import Path

import trio

from agentflow.runtime.engine.resume import ResumeRefused, open_resume
from agentflow.runtime.engine.run_result import RunResult
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.store import RunStore

from .resume_harness import SAFETY, Scripted, check_log, resume
from .test_engine_fakes import compile_dict, hello_spec
from .test_resume_api import RUN, _cut, _scripts


async def test_two_resumes_of_one_run_at_once_one_wins_the_other_is_refused(
    tmp_path: Path,
) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        log = await _cut(store, tmp_path, hello_spec(), at=3)
        compiled = compile_dict(hello_spec())
        handlers = Scripted(_scripts())
        outcomes: list[RunResult | ResumeRefused] = []

        async def attempt() -> None:
            try:
                outcomes.append(await resume(store, compiled, handlers, RUN, log))
            except ResumeRefused as refused:
                outcomes.append(refused)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(attempt)
            nursery.start_soon(attempt)
        results = [o for o in outcomes if isinstance(o, RunResult)]
        refusals = [o for o in outcomes if isinstance(o, ResumeRefused)]
        assert len(results) == 1 and len(refusals) == 1, outcomes
        assert results[0].ok
        assert "resumed by another process" in str(refusals[0])
        # The loser ran nothing: the invocations after the cut were called once.
        assert handlers.calls == [("writer_agent", "main", 2), ("reviewer_agent", "main", 2)]
        assert store.run(RUN).status == "succeeded"
        check_log(store, RUN, log)


async def test_a_resumed_runs_audit_count_is_the_whole_log_not_its_last_segment(
    tmp_path: Path,
) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        log = await _cut(store, tmp_path, hello_spec(), at=3)
        earlier = len(log.read_text().splitlines())
        with trio.fail_after(SAFETY):
            resumption = await open_resume(
                compile_dict(hello_spec()), store, RUN,
                options=RunOptions(backoff_scale=0, audit_log=log),
            )  # fmt: skip
            result = await resumption.run(handlers=Scripted(_scripts()), model=None)
        lines = len(log.read_text().splitlines())
        assert result.ok and earlier < lines
        # `agentflow resume` prints "audit log -> LOG (N events, sealed)" from this count.
        assert resumption.hub.audit_events_written == lines
        assert result.events == lines - 1  # up to run_finished: the whole log's, too
        assert resumption.hub.audit_failure_message() is None
