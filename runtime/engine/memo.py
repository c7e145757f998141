"""A run's memo in the engine: commit before proceed, and what a resume serves.

With a run store (the hub commits to a `RunCommitter`), the engine records, through
the store's writer thread, every finished invocation's output (`steps`), every
model turn's response (`model_calls`) and every tool result (`tool_calls`), and
waits for each row's commit before it goes on (DURABLE.md "Commit before
proceed"): a model's answer before the agent sees it, a tool's result before
the model does, an invocation's output before it is dispatched onward, a
fan-out's `item_created` events before its children start. Each task waits for
its own acknowledgement only; the writer commits whatever is queued as one
transaction, so a fan-out's rows share commits. A row is submitted after the
events published before it (`EventHub.after_submitted`), so it is committed in
the same transaction as its events or a later one, never before them.

A resumed run's `Memo` also holds what the store recorded (`RunMemo`) and the
replay filter (`engine/replay.py`): recorded invocations, turns and tool results
are served instead of being run again.

Without a store there is no `Memo` (`RunServices.memo` is None): the engine then
checks one attribute per invocation and waits for nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import outcome
import trio
from pydantic import BaseModel

from ..events.event import EventKind
from ..events.hub import EventHub
from ..models.base import ModelRequest, ModelTurn
from ..store import MemoRow, ModelCallMemo, RunCommitter, RunMemo
from ..store.run_store import model_call_row, step_row, tool_call_row
from ..usage import Usage


class ReplayFilter(Protocol):
    """What a `Memo` uses of a resume's replay filter (`replay.ReplayFilter`; this module
    does not import it: the replay module sits above the engine's plans)."""

    memo: RunMemo
    usage: Usage
    stats: Any

    def consume(
        self, kind: str, agent: str | None, item: str | None, attempt: int | None
    ) -> bool: ...

    def go_live(self, agent: str, item: str, attempt: int, *, mismatch: bool = False) -> None: ...

    def settled(self, namespace: str | None, item: str | None) -> bool: ...

    def restore(
        self,
        namespace: str | None,
        main_item: str | None,
        prefix: str,
        machine: Any,
        deferred: list[Any],
        pipeline: Any,
    ) -> None: ...


__all__ = [
    "Memo",
    "RecordedFailure",
    "ReplayFilter",
    "recorded_failure",
    "recorded_turn",
    "request_digest",
    "request_record",
    "run_memo",
]

_TRANSITION = EventKind.TRANSITION
_TRANSITION_DEFERRED = EventKind.TRANSITION_DEFERRED


class RecordedFailure(Exception):
    """An invocation's failure served from the memo: the same error name and message."""


_FAILURE_TYPES: dict[str, type[RecordedFailure]] = {}


def recorded_failure(error: str, message: str) -> RecordedFailure:
    """An exception whose type is named `error` (the recorded exception's class name), so
    the item's reason reads as it did when the invocation failed."""
    cls = _FAILURE_TYPES.get(error)
    if cls is None:
        cls = _FAILURE_TYPES[error] = type(error, (RecordedFailure,), {})
    return cls(message)


def request_record(request: ModelRequest) -> dict[str, Any]:
    """The parts of a request that decide its answer, as JSON data (agent/item/attempt
    and the timeout do not)."""
    return {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "system": request.system,
        "messages": list(request.messages),
        "tools": [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in request.tools
        ],
        "output": request.output,
        "output_schema": request.output_schema,
    }


def request_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of a request record's canonical JSON: a recorded turn is served only to the
    same request."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def turn_record(result: ModelTurn) -> dict[str, Any]:
    """A model turn as JSON data (the `model_response` payload's fields, and the id of
    the structured answer's tool call, which a re-ask answers)."""
    return {
        "text": result.text,
        "tool_calls": [
            {"id": c.id, "name": c.name, "input": dict(c.input)} for c in result.tool_calls
        ],
        "structured": dict(result.structured) if result.structured is not None else None,
        "usage": result.usage.model_dump(),
        "stop_reason": result.stop_reason,
        "model": result.model,
        "structured_call_id": result.structured_call_id,
    }


def recorded_turn(response: Mapping[str, Any]) -> ModelTurn:
    """The `ModelTurn` of a recorded response (`turn_record`)."""
    from ..models.replay import _turn_from  # the cassette's reader: one format

    turn = _turn_from(response)
    call_id = response.get("structured_call_id")
    if isinstance(call_id, str):
        from dataclasses import replace

        turn = replace(turn, structured_call_id=call_id)
    return turn


class Memo:
    """One run's (or one sub-pipeline invocation's) view of the memo; see the module
    docstring. `prefix` is a sub-pipeline's agent namespace (`team.`), as the log and
    the memo tables name its agents; `item` the item its events default to."""

    def __init__(
        self,
        hub: EventHub,
        committer: RunCommitter,
        recorded: RunMemo | None = None,
        replay: ReplayFilter | None = None,
        *,
        prefix: str = "",
        namespace: str | None = None,
        item: str | None = None,
    ) -> None:
        self.hub = hub  # the run's own hub (a sub-pipeline's ChildHub publishes into it)
        self.committer = committer
        self.recorded = recorded
        self.replay = replay
        self.prefix = prefix
        self.namespace = namespace
        self.item = item

    def child(self, agent: str, item: str) -> Memo:
        """The view of a sub-pipeline run by `agent` on its main item `item`."""
        namespace = agent if self.namespace is None else f"{self.namespace}.{agent}"
        return Memo(
            self.hub, self.committer, self.recorded, self.replay,
            prefix=f"{self.prefix}{agent}.", namespace=namespace, item=item,
        )  # fmt: skip

    # -- committing ---------------------------------------------------------------

    async def commit(self, row: MemoRow | None) -> None:
        """Commit `row` (None: nothing, a barrier for the events published so far) after
        every event published before it, and wait for that commit.

        If the store refuses it, the hub fails as for a failed commit of its events: the
        run stops as an error (its cancel scope is cancelled, and this returns at the
        checkpoint after it, raising `trio.Cancelled`).
        """
        # The task parks itself and the acknowledgement reschedules it: ~8% of a 10,000-item
        # fan-out's CPU less than a trio.Event per row (bench/RESULTS.md).
        waiting: list[trio.lowlevel.Task | None] = [trio.lowlevel.current_task()]

        def acknowledged(error: BaseException | None) -> None:
            task = waiting[0]
            if task is not None:  # None: it was cancelled meanwhile and has left
                waiting[0] = None
                trio.lowlevel.reschedule(task, outcome.Value(error))

        def abort(_: Any) -> trio.lowlevel.Abort:
            waiting[0] = None
            return trio.lowlevel.Abort.SUCCEEDED

        committer = self.committer
        self.hub.after_submitted(lambda: committer.submit_memo(row, acknowledged))
        error: BaseException | None = await trio.lowlevel.wait_task_rescheduled(abort)
        if error is not None:
            self.hub.report_commit_failure(error)
            await trio.lowlevel.checkpoint()  # the run's scope is cancelled by now

    def _seq(self) -> int:
        return self.hub.events_emitted - 1

    async def record_step(
        self, agent: str, item: str, attempt: int, output: Any, *, wait: bool = True
    ) -> None:
        """Commit an invocation's output (JSON data, or a pydantic model: its JSON dump).

        `wait=False`: submit it and go on (an output nothing is dispatched to). The
        writer commits in submission order, so it is still committed before any row
        submitted after it; a failure fails the hub, as a failed commit does.
        """
        seq = self._seq()
        if isinstance(output, BaseModel):
            row = step_row(
                self.prefix + agent, item, attempt, None, seq, encoded=output.model_dump_json()
            )
        else:
            row = step_row(self.prefix + agent, item, attempt, output, seq)
        if wait:
            await self.commit(row)
        else:
            self.submit(row)

    def submit(self, row: MemoRow) -> None:
        """Submit `row` after the events published so far, without waiting for it."""
        hub, committer = self.hub, self.committer

        def acknowledged(error: BaseException | None) -> None:
            if error is not None:
                hub.report_commit_failure(error)

        hub.after_submitted(lambda: committer.submit_memo(row, acknowledged))

    async def record_turn(
        self,
        agent: str,
        item: str,
        attempt: int,
        turn: int,
        request: Mapping[str, Any],
        digest: str,
        result: ModelTurn,
    ) -> None:
        await self.commit(
            model_call_row(
                self.prefix + agent, item, attempt, turn, request_hash=digest,
                response=turn_record(result), usage=result.usage.model_dump(),
                seq=self._seq(), request=request,
            )
        )  # fmt: skip

    async def record_tool(
        self, agent: str, item: str, attempt: int, turn: int, call_id: str, result: Any
    ) -> None:
        await self.commit(
            tool_call_row(self.prefix + agent, item, attempt, turn, call_id, result, self._seq())
        )

    # -- serving (a resume) -------------------------------------------------------

    def step(self, agent: str, item: str, attempt: int, *, count: bool = True) -> Any | None:
        """The recorded output of this invocation, or None (`count`: it is served)."""
        recorded = self.recorded
        if recorded is None:
            return None
        found = recorded.steps.get((self.prefix + agent, item, attempt))
        if count and self.replay is not None:
            if found is None:
                self.replay.stats.live_invocations += 1
            else:
                self.replay.stats.steps_served += 1
        return found

    def turn(self, agent: str, item: str, attempt: int, turn: int) -> ModelCallMemo | None:
        """The recorded model turn with this key, or None."""
        recorded = self.recorded
        if recorded is None:
            return None
        return recorded.model_calls.get((self.prefix + agent, item, attempt, turn))

    def tool(self, agent: str, item: str, attempt: int, turn: int, call_id: str) -> Any | None:
        """The recorded result of this tool call, or None."""
        recorded = self.recorded
        if recorded is None:
            return None
        found = recorded.tool_calls.get((self.prefix + agent, item, attempt, turn, call_id))
        if found is not None and self.replay is not None:
            self.replay.stats.tools_served += 1
        return found

    def served_turn(self) -> None:
        if self.replay is not None:
            self.replay.stats.turns_served += 1

    def went_live(self, agent: str, item: str, attempt: int, *, mismatch: bool = False) -> None:
        """A turn or tool call of this invocation runs for real: its model and tool events
        are published from here on, even where earlier ones were committed."""
        if self.replay is not None:
            self.replay.go_live(self.prefix + agent, item, attempt, mismatch=mismatch)

    def consumed(
        self, kind: EventKind, agent: str | None, item: str | None, attempt: int | None
    ) -> bool:
        """Whether this event was committed before the resume (and is now consumed):
        the engine then does not repeat what it did (a state machine move)."""
        replay = self.replay
        if replay is None:
            return False
        return replay.consume(
            kind,
            None if agent is None else self.prefix + agent,
            self.item if item is None else item,
            attempt,
        )

    def consumed_transition(self, agent: str, item: str | None, attempt: int | None) -> bool:
        """`consumed` for an agent event's move, whichever of `transition` or
        `transition_deferred` it was."""
        return self.consumed(_TRANSITION, agent, item, attempt) or self.consumed(
            _TRANSITION_DEFERRED, agent, item, attempt
        )

    def settled_before(self) -> bool:
        """Whether this run (or sub-pipeline invocation) settled its state machine before
        the resume (its settling `transition` is consumed)."""
        replay = self.replay
        return replay is not None and replay.settled(self.namespace, self.item)

    def restore(self, machine: Any, deferred: list[Any], pipeline: Any) -> None:
        """Put the state machine where the committed events left it, and the deferred
        terminal moves they requested back (`engine/replay.py`)."""
        if self.replay is not None:
            self.replay.restore(self.namespace, self.item, self.prefix, machine, deferred, pipeline)


def run_memo(hub: EventHub, prime: Callable[[Usage], None] | None = None) -> Memo | None:
    """The run's `Memo`, if its hub commits to a run store (else None: no memo, no waits).

    A resumed run's hub (`replay.ReplayHub`) brings the recorded memo and the replay
    filter; `prime` then receives the usage recorded so far (the run's budget starts
    from it).
    """
    committer = hub.committer
    if not isinstance(committer, RunCommitter):
        return None
    replay: ReplayFilter | None = getattr(hub, "replay", None)
    if replay is None:
        return Memo(hub, committer)
    if prime is not None:
        prime(replay.usage)
    return Memo(hub, committer, replay.memo, replay, item=None)
