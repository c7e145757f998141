"""The writer thread (group commit, acknowledged on the trio loop), the lease's fencing
epoch, and the hub's "commit, then publish", on SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.run_result import with_audit_outcome
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.store import LeaseLostError, RunCommitter, RunStore

from ..runtime.test_engine_fakes import Handlers, compile_dict, fanout_spec, text, verdict

SAFETY = 30  # seconds: turns a hang into a failure, never a speed assertion


async def _commit(committer: RunCommitter, first_seq: int, lines: list[str]) -> None:
    """Submit lines and wait for their acknowledgement; raise its error."""
    done = trio.Event()
    outcome: list[BaseException | None] = []

    def ack(error: BaseException | None) -> None:
        outcome.append(error)
        done.set()

    last = hashlib.sha256(lines[-1].encode()).hexdigest()
    committer.submit(first_seq, lines, ["warning"] * len(lines), last, ack)
    with trio.fail_after(SAFETY):
        await done.wait()
    if outcome[0] is not None:
        raise outcome[0]


async def _begin(store: RunStore, run_id: str = "run-000000000001") -> RunCommitter:
    return await store.begin_run(
        run_id=run_id, pipeline="p", source_hash="h", input="x", options={}
    )


async def test_everything_queued_is_one_transaction(store_url: str) -> None:
    with RunStore.open(store_url) as store:
        committer = await _begin(store)
        before = store.stats.transactions
        operations = store.stats.operations
        acks: list[BaseException | None] = []
        all_done = trio.Event()

        def ack(error: BaseException | None) -> None:
            acks.append(error)
            if len(acks) == 50:
                all_done.set()

        with store.writer.hold():  # the writer waits: the 50 bursts queue up
            for burst in range(50):
                lines = [f'{{"n":{burst * 4 + i}}}' for i in range(4)]
                committer.submit(burst * 4, lines, ["warning"] * 4, "h", ack)
        with trio.fail_after(SAFETY):
            await all_done.wait()
        assert acks == [None] * 50  # acknowledged in order, all committed
        assert store.stats.transactions == before + 1  # one commit for all of them
        assert store.stats.operations == operations + 1  # the bursts joined one operation
        assert store.stats.rows == 200
        assert list(store.lines(committer.run_id)) == [f'{{"n":{n}}}' for n in range(200)]
        assert store.run(committer.run_id).last_seq == 199


async def test_many_runs_queued_share_one_transaction(store_url: str) -> None:
    with RunStore.open(store_url) as store:
        committers = [await _begin(store, f"run-{n:012x}") for n in range(6)]
        before = store.stats.transactions
        acks: list[BaseException | None] = []
        all_done = trio.Event()

        def ack(error: BaseException | None) -> None:
            acks.append(error)
            if len(acks) == 18:
                all_done.set()

        with store.writer.hold():
            for burst in range(3):
                for committer in committers:
                    committer.submit(burst, [f"line {burst}"], ["warning"], "h", ack)
        with trio.fail_after(SAFETY):
            await all_done.wait()
        assert acks == [None] * 18
        assert store.stats.transactions == before + 1
        assert store.stats.largest_batch == 6  # one operation a run, all in one commit
        for committer in committers:
            assert list(store.lines(committer.run_id)) == ["line 0", "line 1", "line 2"]


async def test_a_second_writer_fences_out_the_first(store_url: str) -> None:
    with RunStore.open(store_url) as store:
        first = await _begin(store)
        await _commit(first, 0, ["a0", "a1"])
        second = await store.take_over(first.run_id, owner="elsewhere:1")
        assert (first.epoch, second.epoch) == (1, 2)
        with pytest.raises(LeaseLostError, match="lease epoch 1 is no longer current"):
            await _commit(first, 2, ["a2"])
        await _commit(second, 2, ["b2", "b3"])
        with pytest.raises(LeaseLostError):  # a fenced writer stays fenced
            await _commit(first, 4, ["a4"])
        record = store.run(first.run_id)
        assert (record.owner, record.epoch, record.last_seq) == ("elsewhere:1", 2, 3)
        assert list(store.lines(first.run_id)) == ["a0", "a1", "b2", "b3"]


async def test_one_runs_failure_does_not_fail_another_in_the_same_transaction(
    store_url: str,
) -> None:
    with RunStore.open(store_url) as store:
        fenced, healthy = await _begin(store, "run-a"), await _begin(store, "run-b")
        await store.take_over("run-a")
        acks: dict[str, BaseException | None] = {}
        both = trio.Event()

        def ack(name: str) -> object:
            def done(error: BaseException | None) -> None:
                acks[name] = error
                if len(acks) == 2:
                    both.set()

            return done

        with store.writer.hold():
            fenced.submit(0, ["x"], ["warning"], "h", ack("a"))  # type: ignore[arg-type]
            healthy.submit(0, ["y"], ["warning"], "h", ack("b"))  # type: ignore[arg-type]
        with trio.fail_after(SAFETY):
            await both.wait()
        assert isinstance(acks["a"], LeaseLostError) and acks["b"] is None
        assert list(store.lines("run-b")) == ["y"] and list(store.lines("run-a")) == []


# -- the hub: commit, then publish ---------------------------------------------------------


def _handlers() -> Handlers:
    async def work(ctx: object) -> AgentOutput:
        await trio.sleep(0)
        return text("done")

    return Handlers(
        orchestrator_agent=lambda c: AgentOutput(text="plan", items=list("abcdef")),
        worker_agent=work,
        qa_agent=lambda c: verdict(True),
    )


async def _run_with_store(
    store: RunStore, log: Path, run_id: str
) -> tuple[object, EventHub, MemorySink]:
    pipeline = compile_dict(fanout_spec())
    committer = await store.begin_run(
        run_id=run_id, pipeline="fanout", source_hash=pipeline.source_sha256, input="x", options={}
    )
    memory = MemorySink()
    hub = EventHub(
        run_id=run_id,
        pipeline_hash=pipeline.source_sha256,
        sinks=[FileSink(log), memory],
        committer=committer,
    )
    with trio.fail_after(SAFETY):
        async with hub.running():
            result = await run_pipeline(
                pipeline, "x", handlers=_handlers(), hub=hub, options=RunOptions(backoff_scale=0)
            )
    return with_audit_outcome(result, hub), hub, memory


async def test_the_jsonl_log_is_exactly_the_committed_events(
    store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    with RunStore.open(store_url) as store:
        result, hub, memory = await _run_with_store(store, log, "run-00000000c0de")
        assert result.ok, result  # type: ignore[attr-defined]
        stored = list(store.lines("run-00000000c0de"))
        assert log.read_text().splitlines() == stored == memory.lines
        assert verify_log(log).ok
        assert hub.events_committed == len(stored) == hub.events_emitted
        assert store.stats.transactions < len(stored)  # bursts were grouped
        record = store.run("run-00000000c0de")
        assert record.status == "succeeded" and record.last_seq == len(stored) - 1
        assert (record.items_passed, record.final_state) == (6, "complete")


async def test_a_failed_commit_ends_the_run_and_nothing_after_it_is_published(
    store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    with RunStore.open(store_url) as store:
        _refuse_events_from(store, seq=12)
        result, hub, memory = await _run_with_store(store, log, "run-0000000fa11")
        stored = list(store.lines("run-0000000fa11"))
        assert len(stored) <= 12  # the batch holding seq 12 failed whole
        assert result.status == "error"  # type: ignore[attr-defined]
        assert "could not be written" in (result.reason or "")  # type: ignore[attr-defined]
        # The sinks saw exactly what was committed, never more: the JSONL and the
        # memory sink stop at the last commit, and the log is not sealed.
        assert log.read_text().splitlines() == stored == memory.lines
        assert hub.events_committed == len(stored) < hub.events_emitted
        assert EventKind.RUN_FINISHED not in [e.kind for e in memory.events]
        assert not verify_log(log).ok


def _refuse_events_from(store: RunStore, seq: int) -> None:
    """A real database failure: a trigger that refuses every event from `seq` on."""
    from agentflow.runtime.store.backends import connect

    connection = connect(store.location, create=False)
    try:
        cursor = connection.cursor()
        if store.dialect.name == "sqlite":
            cursor.execute(
                f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.seq >= {seq} "
                "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.seq >= {seq} THEN RAISE EXCEPTION 'the disk is full'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
    finally:
        connection.close()
