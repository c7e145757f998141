"""Resume as an attacker or a careless user would try it (second reader, issue 11):
two resumes of one run at once, event identities that collide in the replay filter,
a resumed run's summary. Real store, hub, engine and FileSink throughout."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.cli.main import main
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.replay import ReplayFilter, ReplayHub
from agentflow.runtime.engine.resume import ResumeRefused, open_resume
from agentflow.runtime.engine.run_result import RunResult
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.store import RunMemo, RunStore

from .resume_harness import SAFETY, Scripted, check_log, resume, start_run
from .test_engine_fakes import compile_dict, hello_spec, verdict
from .test_resume_api import RUN, _cut, _scripts

OTHER = "run-00000000beef"


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
        # Refused by the lease's compare-and-swap, or (had the winner's take-over landed
        # before the loser read the run) by the live owner check.
        message = str(refusals[0])
        assert "resumed by another process" in message or "is running: its owner" in message
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


_OUTCOMES = ("agent_completed", "qa_verdict", "agent_failed")


async def test_an_invocations_output_is_committed_no_later_than_the_events_that_report_it(
    tmp_path: Path,
) -> None:
    """A step row is submitted before its outcome event is published, so the writer (in
    order) never commits the outcome without the row. Had it (a crash between the two
    commits), the resume would call a handler that answers differently this time while
    the log keeps its first answer: a log that lies (the row is what a resume trusts)."""

    def flaky(ctx: AgentContext) -> AgentOutput:
        raise RuntimeError("the disk is gone")

    scripts = {**_scripts(), "reviewer_agent": flaky}
    with RunStore.open(str(tmp_path / "store.db")) as store:
        done = await start_run(
            store, compile_dict(hello_spec()), Scripted(scripts), RUN, tmp_path / "a.jsonl"
        )
        assert done is not None and done.status == "failed"
        outcome_seq: dict[tuple[str, str, int], int] = {}
        for line in store.lines(RUN, kinds=_OUTCOMES):
            event = json.loads(line)
            outcome_seq[(event["agent"], event["item"], event["attempt"])] = event["seq"]
    with closing(sqlite3.connect(tmp_path / "store.db")) as db:
        rows = db.execute("SELECT agent, item, attempt, seq FROM steps WHERE run_id = ?", (RUN,))
        steps = {(agent, item, attempt): seq for agent, item, attempt, seq in rows}
    expected = {("writer_agent", "main", 1), ("reviewer_agent", "main", 1)}
    assert set(steps) == set(outcome_seq) == expected
    for key, seq in steps.items():  # a row's seq: the last event published before it
        assert seq < outcome_seq[key], (key, seq, outcome_seq)


async def test_an_output_committed_without_its_outcome_events_is_reported_on_resume(
    tmp_path: Path,
) -> None:
    """Cut between the step row's commit and its outcome events: the resume serves the
    recorded verdict (not the handler's new answer) and logs it, so the log tells what
    the run did."""
    scope = trio.CancelScope()

    def cut_after_answering(ctx: AgentContext) -> AgentOutput:
        scope.cancel()  # the run stops at its next checkpoint: the row's commit
        return verdict(False, "too short")

    first = Scripted({**_scripts(), "reviewer_agent": cut_after_answering})
    log = tmp_path / "run.jsonl"
    with RunStore.open(str(tmp_path / "store.db")) as store:
        compiled = compile_dict(hello_spec())
        assert await start_run(store, compiled, first, RUN, log, scope=scope) is None
        assert ("reviewer_agent", "main", 1) in store.memo(RUN).steps
        assert not list(store.lines(RUN, kinds=["qa_verdict"]))  # the outcome: not logged
        second = Scripted({**_scripts(), "reviewer_agent": lambda ctx: verdict(True)})
        result = await resume(store, compiled, second, RUN, log)
        # The recorded failing verdict holds: a retry, and the new reviewer passes attempt 2.
        assert second.calls == [("writer_agent", "main", 2), ("reviewer_agent", "main", 2)]
        assert result.ok
        verdicts = [json.loads(line) for line in store.lines(RUN, kinds=["qa_verdict"])]
        assert [(v["attempt"], v["payload"]["passed"]) for v in verdicts] == [
            (1, False),
            (2, True),
        ]
        check_log(store, RUN, log)


@pytest.mark.parametrize("kind", [EventKind.RATE_LIMITED, EventKind.INVOCATION_RESUBMITTED])
async def test_a_wait_or_resubmission_in_the_resumed_process_is_logged_not_consumed(
    kind: EventKind,
) -> None:
    """What the model client or executor does in this process (a rate-limit wait, an
    invocation resubmitted to a new actor) is a new fact even where the interrupted
    process logged one with the same (kind, agent, item, attempt): the live turn's wait
    was consumed by the dead turn's."""
    committed = [
        {"kind": "agent_started", "agent": "writer_agent", "item": "main", "attempt": 1},
        {"kind": kind.value, "agent": "writer_agent", "item": "main", "attempt": 1},
    ]
    replay = ReplayFilter(committed, RunMemo({}, {}, {}))
    sink = MemorySink()
    hub = ReplayHub(replay=replay, run_id=RUN, pipeline_hash="", sinks=[sink])
    async with hub.running():
        hub.publish(EventKind.AGENT_STARTED, agent="writer_agent", item="main", attempt=1)
        hub.emit(kind, agent="writer_agent", item="main", attempt=1, payload={"turn": 1})
    assert [event.kind for event in sink.events] == [kind]


async def test_show_tells_a_resumed_run_and_what_it_resumed_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = str(tmp_path / "store.db")
    with RunStore.open(where) as store:
        log = await _cut(store, tmp_path, hello_spec(), at=3)
        result = await resume(store, compile_dict(hello_spec()), Scripted(_scripts()), RUN, log)
        assert result.ok
    capsys.readouterr()
    assert main(["show", RUN, "--store", where]) == 0
    shown = capsys.readouterr().out
    assert "resumed 1 time (from cancelled)" in shown, shown
    # Its duration spans the interruption: said so, not passed off as working time.
    assert "(wall time from its start, across 1 resume)" in shown, shown


async def test_a_resume_does_not_overwrite_another_runs_log_at_its_path(tmp_path: Path) -> None:
    """The run's JSONL path now holds another run's log (both were given one --jsonl):
    the resume refuses before touching anything, instead of rewriting that log."""
    with RunStore.open(str(tmp_path / "store.db")) as store:
        log = await _cut(store, tmp_path, hello_spec(), at=3)
        compiled = compile_dict(hello_spec())
        log.unlink()  # agentflow run writes a new file in the path's place
        other = await start_run(store, compiled, Scripted(_scripts()), OTHER, log)
        assert other is not None and other.ok
        theirs = log.read_bytes()
        epoch = store.run(RUN).epoch
        with pytest.raises(ResumeRefused, match=rf"{log}.* holds run {OTHER}'s log"):
            await resume(store, compiled, Scripted(_scripts()), RUN, log)
        assert log.read_bytes() == theirs
        assert (store.run(RUN).epoch, store.run(RUN).status) == (epoch, "cancelled")
        # Moved away, the log is rebuilt from the store and the run goes on.
        log.rename(tmp_path / "other.jsonl")
        result = await resume(store, compiled, Scripted(_scripts()), RUN, log)
        assert result.ok
        check_log(store, RUN, log)


async def test_runs_does_not_show_zero_counts_for_a_run_that_never_finished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A killed run has no run_finished, so its row's counts were never written: the
    table showed 0 model calls and $0 for a run that made hundreds; now '-'."""
    where = str(tmp_path / "store.db")
    with RunStore.open(where) as store:
        await store.begin_run(
            run_id=RUN, pipeline="hello-world", source_hash="", input="x", options={}
        )
    capsys.readouterr()
    assert main(["runs", "--store", where]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == RUN and row[2] == "running"
    assert row[-6:] == ["-"] * 6, row  # took, passed, failed, calls, tokens, cost
