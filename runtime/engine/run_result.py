"""How a run ends: its terminal move, its status, `run_finished` and its `RunResult`.

Once the `Dispatcher` has walked every item, `settle` takes the run's terminal
move (the aggregation's decision, or the last deferred terminal request, or for
a pipeline without `state_machine:` its implicit end, `run.complete`/`run.failed`;
docs/semantics.md, "How a run ends"), `run_status` names the outcome, and
`finish_run` writes `run_finished` and builds the `RunResult`; once the hub is
closed, `with_audit_outcome` turns a run whose audit log could not be written
into an error whose reason says so. The result and its
`ItemOutcome`s are built without validation (a 10,000-item run builds 10,000),
pinned against validated instances by test_engine.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from ..errors import BudgetExceededError
from ..events.event import EventKind
from ..events.hub import EventHub
from ..pipeline import CompiledPipeline
from ..usage import Usage
from . import aggregator
from .dispatcher import UNFINISHED, WAITING_FOR_CHILD, Dispatcher
from .plan import ItemState, trigger_member
from .run_services import RunBudget

__all__ = [
    "ItemOutcome",
    "ItemStatus",
    "RunResult",
    "RunStatus",
    "finish_run",
    "run_status",
    "settle",
    "with_audit_outcome",
]

ItemStatus = Literal["passed", "failed", "aborted", "completed", "waiting"]
RunStatus = Literal["succeeded", "failed", "incomplete", "error", "cancelled", "waiting"]
"""`waiting`: items wait for a person's answer (human steps, docs/human.md); the run
resumes once `agentflow answer` records it."""
_RUN_FINISHED = EventKind.RUN_FINISHED  # Enum member lookups cost ~0.7 us each on 3.11


class ItemOutcome(BaseModel):
    """How one work item ended."""

    id: str
    parent: str | None
    status: ItemStatus
    attempts: dict[str, int]  # agent id -> invocations on this item
    gates: dict[str, bool]  # QA agent -> its last verdict on this item
    output: str  # text of the last non-QA agent output on this item
    reason: str | None


class RunResult(BaseModel):
    """The outcome of a run; `ok` only when it succeeded.

    `events` is the number of events up to and including `run_finished` (the closed
    log then holds any late `sink_error` and the `log_sealed` line too). When the
    audit log could not be written, the run is an `error` whose `reason` says so
    and `events` is the number of whole events the log holds.
    """

    run_id: str
    pipeline: str
    status: RunStatus
    final_state: str
    items: list[ItemOutcome]
    usage: Usage
    events: int
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


# Shared by every instance built here (`agents.text_output` says why that is safe).
_OUTCOME_FIELDS = set(ItemOutcome.model_fields)
_RESULT_FIELDS = set(RunResult.model_fields)
_new_object = object.__new__
_set = object.__setattr__


def _construct(model: BaseModel, fields: dict[str, Any], fields_set: set[str]) -> None:
    """Fill a bare instance of a pydantic model with trusted, complete fields.

    This is what `model_construct` does, minus its per-field default handling
    (~2-10 us an instance); every field is given, in declaration order.
    """
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", fields_set)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)


def _outcome(item: ItemState) -> ItemOutcome:
    """Build an ItemOutcome without validation (10,000-item runs build 10,000 of them).

    Pinned against a validated instance by
    test_engine.py::test_item_outcome_is_a_valid_model.
    """
    status = item.status or "aborted"
    outcome: ItemOutcome = _new_object(ItemOutcome)
    fields = {
        "id": item.item.id,
        "parent": item.item.parent,
        "status": status,
        "attempts": item.attempts,
        "gates": item.verdicts,
        "output": item.output,
        "reason": item.reason if item.status else UNFINISHED,
    }
    _construct(outcome, fields, _OUTCOME_FIELDS)
    return outcome


def settle(pipeline: CompiledPipeline, engine: Dispatcher) -> None:
    """Take the run's terminal move once every item has finished.

    Raises:
        InvalidTransition: the move is not in TRANSITIONS.
    """
    hub, machine = engine.hub, engine.machine
    memo = engine.memo
    if memo is not None and memo.settled_before():
        return  # a resume: it settled before; its machine was restored past the move
    statuses = [item.status or "aborted" for item in engine.items]
    if "waiting" in statuses:
        return  # the run parks: it decides once every human step is answered
    bad = any(s in ("failed", "aborted") for s in statuses)
    aggregation = pipeline.spec.aggregation
    if aggregation is not None:
        decision = aggregator.decide(statuses)
        trigger = trigger_member(pipeline, "aggregation." + decision.decision)
        assert trigger is not None  # declared_triggers always lists both outcomes
        target = machine.target_of(trigger)
        hub.publish(
            EventKind.AGGREGATION,
            payload={
                "strategy": aggregation.strategy,
                "passed": decision.passed,
                "failed": decision.failed,
                "aborted": decision.aborted,
                "decision": decision.decision,
                "transition": target.value,
            },
        )
        name, agent = str(trigger.value), None
    else:
        wanted = ("on_abort", "on_fail") if bad else ("on_pass", "on_complete")
        chosen = [d for d in engine.deferred if d.event in wanted]
        if chosen:
            trigger, name, agent = chosen[-1].trigger, chosen[-1].name, chosen[-1].agent
        elif pipeline.spec.implicit_state_machine and not machine.is_terminal:
            name, agent = "run.failed" if bad else "run.complete", None
            trigger = trigger_member(pipeline, name)
            assert trigger is not None  # declared_triggers lists both for the default machine
        else:
            return
    move = machine.fire(trigger, agent)
    hub.publish(
        EventKind.TRANSITION,
        agent=agent,
        payload={
            "from": move.source.value,
            "to": move.target.value,
            "trigger": name,
            "noop": move.noop,
        },
    )


def run_status(engine: Dispatcher, budget: RunBudget) -> tuple[RunStatus, str | None]:
    fatal = engine.fatal
    if isinstance(fatal, BudgetExceededError):
        reason = budget.exceeded or str(fatal)
        engine.hub.publish(EventKind.RUN_CANCELLED, payload={"reason": reason})
        return "cancelled", reason
    if fatal is not None:
        return "error", str(fatal)
    waiting = [i for i in engine.items if i.status == "waiting"]
    if waiting:
        asking = [i for i in waiting if i.reason != WAITING_FOR_CHILD] or waiting
        first = asking[0]
        return "waiting", (
            f"{len(asking)} item(s) wait for a person (first: {first.item.id}: {first.reason})"
        )
    if not engine.machine.is_terminal:
        state = engine.machine.state.value
        return "incomplete", f"the run ended in non-terminal state '{state}'"
    bad = [i for i in engine.items if i.status in ("failed", "aborted")]
    if bad:
        first = bad[0]
        why = f": {first.reason}" if first.reason else ""
        return "failed", f"{len(bad)} item(s) failed or were aborted (first: {first.item.id}{why})"
    return "succeeded", None


def finish_run(
    pipeline: CompiledPipeline,
    engine: Dispatcher,
    budget: RunBudget,
    status: RunStatus,
    reason: str | None,
) -> RunResult:
    hub = engine.hub
    hub.on_audit_failure = None  # the run is ending: nothing left to stop
    hub.seal_on_close = True  # the log is a whole run's: closing the hub seals it
    counts = {"passed": 0, "failed": 0, "aborted": 0, "completed": 0}
    for item in engine.items:
        status_of_item = item.status or "aborted"
        counts[status_of_item] = counts.get(status_of_item, 0) + 1  # "waiting": only if any
    final_state = str(engine.machine.state.value)
    usage = budget.usage
    # A plain Usage holds only numbers: its field dict is its dump (pydantic's costs ~0.7 us).
    dumped = dict(usage.__dict__) if type(usage) is Usage else usage.model_dump()
    hub.publish(
        _RUN_FINISHED,
        payload={
            "status": status,
            "final_state": final_state,
            "usage": dumped,
            "items": counts,
            "reason": reason,
        },
    )
    result: RunResult = _new_object(RunResult)
    fields = {
        "run_id": hub.run_id,
        "pipeline": pipeline.spec.name,
        "status": status,
        "final_state": final_state,
        "items": [_outcome(item) for item in engine.items],
        "usage": usage,
        "events": hub.events_emitted,
        "reason": reason,
    }
    _construct(result, fields, _RESULT_FIELDS)
    return result


def with_audit_outcome(result: RunResult, hub: EventHub) -> RunResult:
    """`result`, or, if the hub's audit log could not be written, a copy that says so.

    Call it once the hub is closed (its count of written events is then final):
    status `error`, the reason "audit log X could not be written: <why>; N of M events
    written", `events` N. A run whose record is lost never reports success.
    """
    message = hub.audit_failure_message()
    if message is None:
        return result
    written = hub.audit_events_written or 0
    return result.model_copy(update={"status": "error", "reason": message, "events": written})
