"""The QA feedback loop: what the `Dispatcher` does with failing QA verdicts.

A failing verdict (one QA agent's, or the joined verdicts of a broadcast) is
retried (its `on_fail` target re-runs with every failing verdict's issues as
feedback, after the governor's backoff), aborts the item (`on_fail: abort`, or
`max_attempts` exhausted), or stands (a gate without `on_fail`, or gates that
already satisfy the aggregation). See docs/semantics.md, "QA feedback loop".

These functions take the run's `Dispatcher` as their first argument and use
only its public methods (`run_agent`, `dispatch`, `abort_item`, `fail_item`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from . import aggregator
from .agents import AgentOutput, QAIssue
from .errors import OutputValidationError
from .events import EventKind
from .jsonpath import feedback_issues
from .plan import AgentPlan, ItemState

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

__all__ = ["handle_failures", "join_verdicts"]

_RETRY_SCHEDULED = EventKind.RETRY_SCHEDULED  # Enum member lookups cost ~0.7 us each


async def join_verdicts(
    engine: Dispatcher, plan: AgentPlan, item: ItemState, verdicts: dict[str, AgentOutput]
) -> None:
    """Join a finished broadcast's QA verdicts on `item`: handle the failing ones, then
    dispatch the passing ones onward (unless a retry or an abort took over)."""
    if engine.fatal is not None:
        return
    qa = [(engine.plans[t], verdicts[t]) for t in plan.targets if t in verdicts]
    failing = [(p, o) for p, o in qa if not o.passed]
    if failing and await handle_failures(engine, item, failing):
        return  # retried (the retry flows through this broadcast again) or aborted
    for qa_plan, qa_out in qa:  # every verdict passed, or the failing ones stand
        if qa_out.passed and qa_plan.strategy is not None:
            await engine.dispatch(qa_plan, item, qa_out)


async def handle_failures(
    engine: Dispatcher, item: ItemState, failing: list[tuple[AgentPlan, AgentOutput]]
) -> bool:
    """Retry, abort, or accept failing verdicts (docs/semantics.md, QA feedback loop).

    Returns False when the verdicts stand (no retry, no abort), so the caller
    dispatches the passing verdicts onward; True when it retried or aborted.
    """
    if item.status == "aborted":
        return True
    aggregation = engine.aggregation
    if (
        aggregation is not None
        and all(p.is_gate for p, _ in failing)
        and aggregator.satisfied(aggregation, item.verdicts)
    ):
        return False  # the item's gates already satisfy the strategy: no retry changes it
    governor, item_id = engine.governor, item.item.id
    retrying: list[AgentPlan] = []
    aborting: AgentPlan | None = None
    exhausted: AgentPlan | None = None
    for plan, _ in failing:
        on_fail = plan.on_fail
        if on_fail is None:
            continue  # a gate without on_fail: its verdict stands
        if on_fail.action == "abort":
            aborting = aborting or plan
        elif governor.record_failure(plan.id, item_id):
            retrying.append(plan)
        else:
            exhausted = exhausted or plan
    if exhausted is not None:
        count = governor.failures(exhausted.id, item_id)
        engine.abort_item(
            item,
            exhausted,
            f"QA agent '{exhausted.id}' failed {count} times; max_attempts "
            f"{governor.max_attempts(exhausted.id)} exhausted",
        )
    elif retrying:  # a retry may still satisfy even an abort-action peer
        await _retry(engine, item, retrying[0], failing)
    elif aborting is not None:
        engine.abort_item(item, aborting, f"QA agent '{aborting.id}' failed (on_fail: abort)")
    else:
        return False  # only gates without on_fail failed: their verdicts stand
    return True


async def _retry(
    engine: Dispatcher,
    item: ItemState,
    first: AgentPlan,
    failing: list[tuple[AgentPlan, AgentOutput]],
) -> None:
    """Re-run `first`'s on_fail target with every failing verdict's issues as feedback."""
    assert first.on_fail is not None and first.on_fail.target is not None
    target = first.on_fail.target
    issues: list[QAIssue] = []
    for plan, out in failing:
        try:
            issues.extend(feedback_issues(out, plan.feedback_steps))
        except OutputValidationError as exc:  # feedback_path selected no issues
            engine.fail_item(plan, item, exc)
            return
    failures = engine.governor.failures(first.id, item.item.id)
    delay = engine.governor.next_delay(first.id, failures)
    engine.hub.publish(
        _RETRY_SCHEDULED,
        agent=first.id,
        item=item.item.id,
        attempt=item.attempts.get(first.id),
        payload={
            "qa": [p.id for p, _ in failing],
            "target": target,
            "next_attempt": item.attempts.get(target, 0) + 1,
            "delay_ms": round(delay * 1000, 3),
            "issues": len(issues),
        },
    )
    if delay > 0:
        engine.hub.flush()
        await trio.sleep(delay)
    source, upstream = item.inputs.get(target, (None, None))
    await engine.run_agent(item, target, upstream, issues, source)
