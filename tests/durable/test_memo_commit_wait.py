"""`Memo.commit` (commit before proceed) parks its task until the store acknowledges the
row, and a task cancelled while it waits leaves the late acknowledgement harmless."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from agentflow.runtime.engine.memo import Memo
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.store import RunStore
from agentflow.runtime.store.run_store import step_row

RUN = "run-0000c0ffee42"


async def _memo(store: RunStore) -> tuple[EventHub, Memo]:
    committer = await store.begin_run(
        run_id=RUN, pipeline="p", source_hash="h", input="x", options={}
    )
    hub = EventHub(run_id=RUN, committer=committer, keep_history=False)
    return hub, Memo(hub, committer)


async def test_commit_returns_once_its_row_is_committed(tmp_path: Path) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        hub, memo = await _memo(store)
        async with hub.running():
            hub.publish(EventKind.RUN_STARTED, payload={})
            returned = trio.Event()

            async def commit() -> None:
                await memo.commit(step_row("a", "main", 1, {"text": "out"}, 0))
                returned.set()

            async with trio.open_nursery() as nursery:
                with store.writer.hold():  # the writer cannot start a transaction
                    nursery.start_soon(commit)
                    await trio.testing.wait_all_tasks_blocked()
                    assert not returned.is_set()
                    assert store.memo(RUN).steps == {}
                with trio.fail_after(30):  # a safety net, not a budget
                    await returned.wait()
            assert store.memo(RUN).steps == {("a", "main", 1): {"text": "out"}}


async def test_a_task_cancelled_while_it_waits_ignores_the_late_acknowledgement(
    tmp_path: Path,
) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        hub, memo = await _memo(store)
        async with hub.running():
            hub.publish(EventKind.RUN_STARTED, payload={})
            cancelled = []

            async def commit() -> None:
                try:
                    await memo.commit(step_row("a", "main", 1, {"text": "out"}, 0))
                except trio.Cancelled:
                    cancelled.append(True)
                    raise

            with store.writer.hold():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(commit)
                    await trio.testing.wait_all_tasks_blocked()
                    nursery.cancel_scope.cancel()
            assert cancelled == [True]
            # the writer now commits the row and acknowledges a task that left: no effect
            with trio.fail_after(30):
                await hub.wait_committed()
                while not store.memo(RUN).steps:
                    await trio.sleep(0.01)
            await memo.commit(None)  # the memo still works for the next task
