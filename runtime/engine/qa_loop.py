"""The QA feedback loop: what the `Dispatcher` does with failing QA verdicts.

A failing verdict (one QA agent's, or the joined verdicts of a broadcast) is
retried (its `on_fail` target re-runs with every failing verdict's issues as
feedback, after the governor's backoff), aborts the item (`on_fail: abort`, or
`max_attempts` exhausted), or stands (a gate without `on_fail`, or gates that
already satisfy the aggregation). See docs/semantics.md, "QA feedback loop".

These functions take the run's engine as their first argument: anything that
is a `QAEngine` (the `Dispatcher` is), so this module does not import the
dispatcher that calls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import trio

from ..agents import AgentOutput, QAIssue
from ..errors import OutputValidationError
from ..events.event import EventKind
from ..events.hub import EventHub
from ..spec import AggregationSpec
from . import aggregator
from .governor import RetryGovernor
from .jsonpath import feedback_issues
from .plan import AgentPlan, ItemState

__all__ = ["QAEngine", "handle_failures", "join_verdicts"]


class QAEngine(Protocol):
    """What the QA loop uses of the run's engine (`dispatcher.Dispatcher`)."""

    @property
    def fatal(self) -> BaseException | None: ...
    @property
    def plans(self) -> Mapping[str, AgentPlan]: ...
    @property
    def aggregation(self) -> AggregationSpec | None: ...
    @property
    def governor(self) -> RetryGovernor: ...
    @property
    def hub(self) -> EventHub: ...

    async def run_agent(
        self,
        item: ItemState,
        agent: str,
        upstream: AgentOutput | None,
        feedback: Sequence[QAIssue],
        source: str | None,
    ) -> None: ...

    async def dispatch(self, plan: AgentPlan, item: ItemState, out: AgentOutput) -> None: ...

    def abort_item(self, item: ItemState, plan: AgentPlan, reason: str) -> None: ...

    def fail_item(self, plan: AgentPlan, item: ItemState, exc: Exception) -> None: ...

    def memoised(self, agent: str, item_id: str, attempt: int) -> bool: ...


_RETRY_SCHEDULED = EventKind.RETRY_SCHEDULED  # Enum member lookups cost ~0.7 us each


async def join_verdicts(
    engine: QAEngine, plan: AgentPlan, item: ItemState, verdicts: dict[str, AgentOutput]
) -> bool:
    """Join a finished broadcast's QA verdicts on `item`: handle the failing ones, then
    dispatch the passing ones onward (unless a retry or an abort took over).

    Returns True when the verdicts stand (this pass of the broadcast is its final
    one: its join agent may run), False when a retry or an abort took over or the
    run is ending.
    """
    if engine.fatal is not None:
        return False
    qa = [(engine.plans[t], verdicts[t]) for t in plan.targets if t in verdicts]
    failing = [(p, o) for p, o in qa if not o.passed]
    if failing and await handle_failures(engine, item, failing):
        return False  # retried (the retry flows through this broadcast again) or aborted
    for qa_plan, qa_out in qa:  # every verdict passed, or the failing ones stand
        if qa_out.passed and qa_plan.strategy is not None:
            await engine.dispatch(qa_plan, item, qa_out)
    return True


async def handle_failures(
    engine: QAEngine, item: ItemState, failing: list[tuple[AgentPlan, AgentOutput]]
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
    engine: QAEngine,
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
    # A resume serving the retry from its memo does not wait its backoff again.
    if delay > 0 and not engine.memoised(target, item.item.id, item.attempts.get(target, 0) + 1):
        engine.hub.flush()
        await trio.sleep(delay)
    source, upstream = item.inputs.get(target, (None, None))
    await engine.run_agent(item, target, upstream, issues, source)
