"""Two answers to one human step at once (two `agentflow answer` processes, or the CLI
and the UI): exactly one is recorded, the other is a clear refusal, not a store error."""

from __future__ import annotations

from pathlib import Path

import trio

from agentflow.runtime.engine.human import HumanAnswerError, HumanStep, record_answer
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.store import RunStore

from .test_human_runtime import _events, _parked


async def test_two_answers_at_once_one_is_recorded_the_other_refused(tmp_path: Path) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        module = await _parked(store, tmp_path, "run-race")
        models = module.module.HUMAN_ANSWERS
        outcomes: list[HumanStep | BaseException] = []

        async def answer(by: str) -> None:
            reply = {"approved": by == "alice", "comment": by}
            try:
                step = await record_answer(
                    store, "run-race", models, item="main", agent="approver", answer=reply, by=by
                )
            except Exception as error:  # what the loser gets is the point
                outcomes.append(error)
            else:
                outcomes.append(step)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer, "alice")
                nursery.start_soon(answer, "bob")
        recorded = [o for o in outcomes if isinstance(o, HumanStep)]
        refused = [o for o in outcomes if not isinstance(o, HumanStep)]
        assert len(recorded) == 1 and len(refused) == 1, outcomes
        assert isinstance(refused[0], HumanAnswerError), repr(refused[0])
        assert "answered by another process" in str(refused[0])
        winner = recorded[0].answered_by
        answered = [e for e in _events(store, "run-race") if e["kind"] == "human_answered"]
        assert [e["payload"]["by"] for e in answered] == [winner]
        assert store.memo("run-race").steps[("approver", "main", 1)]["data"]["comment"] == winner
    assert verify_log(tmp_path / "run-race.jsonl").ok
