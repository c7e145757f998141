"""Memo rows (`steps`, `model_calls`, `tool_calls`): committed through the writer thread,
acknowledged after their commit, loaded back by `RunStore.memo`; on SQLite and PostgreSQL."""

from __future__ import annotations

import functools

import trio
import trio.testing

from agentflow.runtime.store import (
    MIGRATIONS,
    LeaseLostError,
    RunStore,
    migrate,
    parse_location,
)
from agentflow.runtime.store.backends import connect

SAFETY = 30  # seconds: turns a hang into a failure, never a speed assertion


async def test_memo_rows_round_trip_after_their_acknowledgement(store_url: str) -> None:
    with RunStore.open(store_url) as store:
        committer = await store.begin_run(
            run_id="run-memo00000001", pipeline="p", source_hash="h", input="x", options={}
        )
        with trio.fail_after(SAFETY):
            await committer.record_step("writer", "main", 1, {"text": "hi", "data": None}, seq=4)
            await committer.record_model_call(
                "writer", "main", 1, 1,
                request_hash="abc", response={"text": "hi", "tool_calls": []},
                usage={"input_tokens": 3, "output_tokens": 1}, seq=3,
                request={"system": "be brief", "messages": [{"role": "user", "content": "x"}]},
            )  # fmt: skip
            await committer.record_tool_call(
                "writer", "main", 1, 1, "call-1", {"output": "42"}, seq=5
            )
        # Each call returned after its commit: a reader sees the rows now.
        memo = store.memo("run-memo00000001")
        assert memo.steps == {("writer", "main", 1): {"text": "hi", "data": None}}
        call = memo.model_calls[("writer", "main", 1, 1)]
        assert (call.request_hash, call.response, call.usage, call.seq) == (
            "abc",
            {"text": "hi", "tool_calls": []},
            {"input_tokens": 3, "output_tokens": 1},
            3,
        )
        assert call.request["system"] == "be brief"
        assert memo.tool_calls == {("writer", "main", 1, 1, "call-1"): {"output": "42"}}
        assert store.memo("run-other0000001").steps == {}


async def test_a_memo_row_recorded_again_replaces_the_old_one(store_url: str) -> None:
    """A resumed run that re-executes a step (its request changed) rewrites the row."""
    with RunStore.open(store_url) as store:
        committer = await store.begin_run(
            run_id="run-memo00000002", pipeline="p", source_hash="h", input="x", options={}
        )
        with trio.fail_after(SAFETY):
            for text in ("old", "new"):
                await committer.record_model_call(
                    "a", "main", 1, 1, request_hash=text, response={"text": text},
                    usage={}, seq=1,
                )  # fmt: skip
        call = store.memo("run-memo00000002").model_calls[("a", "main", 1, 1)]
        assert (call.request_hash, call.response, call.request) == ("new", {"text": "new"}, None)


async def test_a_memo_row_of_a_taken_over_run_is_refused(store_url: str) -> None:
    with RunStore.open(store_url) as store:
        first = await store.begin_run(
            run_id="run-memo00000003", pipeline="p", source_hash="h", input="x", options={}
        )
        await store.take_over("run-memo00000003")
        with trio.fail_after(SAFETY):
            try:
                await first.record_step("a", "main", 1, {"text": "late"}, seq=0)
            except LeaseLostError:
                pass
            else:
                raise AssertionError("a fenced-out committer wrote a memo row")
        assert store.memo("run-memo00000003").steps == {}


async def test_memo_rows_queued_together_are_one_transaction(store_url: str) -> None:
    """Group commit: rows recorded by many tasks while the writer is busy cost one commit."""
    with RunStore.open(store_url) as store:
        committer = await store.begin_run(
            run_id="run-memo00000004", pipeline="p", source_hash="h", input="x", options={}
        )
        before = store.stats.transactions
        with trio.fail_after(SAFETY):
            async with trio.open_nursery() as nursery:
                with store.writer.hold():
                    for n in range(40):
                        nursery.start_soon(
                            functools.partial(
                                committer.record_step, "a", f"item-{n}", 1, {"text": str(n)}, seq=n
                            )
                        )
                    await trio.testing.wait_all_tasks_blocked()
        assert store.stats.transactions == before + 1
        assert len(store.memo("run-memo00000004").steps) == 40


def test_a_v2_store_gains_the_request_column_keeping_its_model_calls(store_url: str) -> None:
    location = parse_location(store_url)
    connection = connect(location, create=True)
    try:
        migrate(connection, location.dialect, MIGRATIONS[:2])
        cursor = connection.cursor()
        sql = location.dialect.sql
        cursor.execute(location.dialect.begin)
        cursor.execute(
            sql(
                "INSERT INTO runs (id, pipeline, source_hash, agentflow_version, options, "
                "status, owner, epoch, last_seq, last_hash, started_at, updated_at) "
                "VALUES (?, 'p', 'h', '0.0', '{}', 'running', 'o', 1, -1, '', 1, 1)"
            ),
            ("run-v2",),
        )
        cursor.execute(
            sql(
                "INSERT INTO model_calls (run_id, agent, item, attempt, turn, request_hash, "
                "response, usage, seq) VALUES (?, 'a', 'main', 1, 1, 'h1', '{}', '{}', 2)"
            ),
            ("run-v2",),
        )
        cursor.execute("COMMIT")
    finally:
        connection.close()
    with RunStore.open(store_url) as store:
        call = store.memo("run-v2").model_calls[("a", "main", 1, 1)]
        assert (call.request_hash, call.request, call.seq) == ("h1", None, 2)
