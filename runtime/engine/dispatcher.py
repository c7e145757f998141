"""The engine of one run: agent invocations, their events, dispatch.

`Dispatcher` walks each work item along its agents (docs/semantics.md):
sequential dispatch continues on the same item, a route picks one case by the
router's typed output (an agent, `end` or `abort`; bounded loops count their
iterations per item), fan-out starts one task per child item under a
`CapacityLimiter` (then its `reduce` agent, if any, runs on the parent),
broadcast runs every target in its own task and joins their QA verdicts (then
its `join` agent, if any, runs on the item). Failing verdicts go to the QA
feedback loop (`qa_loop.py`: retry, abort, or let them stand). A failing agent
aborts its item only (a joined broadcast's branch: recorded for the join); an
`InvalidTransition`, a `PipelineDefinitionError` or an exceeded budget ends the
run (`fatal`), cancelling every task through the run's cancel scope.

Whatever continues on the same item (a sequential target, a route case's agent,
a join, a reduce) runs in `run_agent`'s loop, not a nested call, so a bounded
loop of `MAX_ITERATIONS` iterations does not grow the stack.

Hot path: everything per agent (handler, triggers, dispatch) is resolved once
into an `AgentPlan`; an invocation costs three or four `hub.publish` calls.
`publish` holds the audit log's lines; the engine calls `hub.flush()` before
every await and every handler call, and a fan-out's or broadcast's tasks, which
end without one, run inside `hub.flushing_before_waits()`; so each synchronous
burst of events is one write, a handler finds its `agent_started` in the file,
and whenever the run waits its events are on disk (page cache).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import trio
from pydantic import BaseModel, ValidationError

from ..agents import (
    AgentOutput,
    BranchFailure,
    ChildResult,
    QAIssue,
    WorkItem,
    child_result,
    text_output,
    typed_agent_output,
)
from ..errors import BudgetExceededError, InvalidTransition, PipelineDefinitionError
from ..events.event import EventKind
from ..pipeline import CompiledPipeline
from ..spec import ROUTE_ABORT, ROUTE_END
from . import aggregator
from .context import new_context
from .governor import RetryGovernor
from .human import HumanAnswerNeeded
from .invocation import InvocationExecutor
from .memo import recorded_failure
from .payloads import issue_dicts, json_problem
from .plan import AgentPlan, Deferred, Handler, ItemState, build_plans
from .qa_loop import handle_failures, join_verdicts
from .run_services import RunServices
from .state_machine import StateMachine

__all__ = [
    "FATAL_ERRORS",
    "HUMAN_NEEDS_STORE",
    "UNFINISHED",
    "WAITING_FOR_CHILD",
    "Dispatcher",
    "json_problem",
]

FATAL_ERRORS = (InvalidTransition, PipelineDefinitionError, BudgetExceededError)
"""Errors that end the whole run instead of aborting one item."""

UNFINISHED = "the run ended before this item finished"
"""The reason reported for items a run-ending error or a cancellation cut short."""

HUMAN_NEEDS_STORE = (
    "agent '{agent}' is answered by a person, and this run has no run store to wait in: "
    "run it with a store (agentflow run without --no-store; in a library run, commit the "
    "hub to a RunStore's committer) so the run can park until `agentflow answer`"
)
"""Why a human step fails its item in a run without a store (docs/human.md)."""

WAITING_FOR_CHILD = "a child item waits for a person"
"""The reason of a fan-out's parent item left waiting by a child's human step."""

Next = tuple[str, AgentOutput, str]
"""Where an item's path continues: (agent, its upstream output, the source agent)."""
_NOTHING_JOINED: Mapping[str, BaseModel] = {}  # never mutated: the default `ctx.joined`

# Module constants: Enum member lookups cost ~0.7 us each on Python 3.11.
_AGENT_COMPLETED = EventKind.AGENT_COMPLETED
_AGENT_FAILED = EventKind.AGENT_FAILED
_AGENT_STARTED = EventKind.AGENT_STARTED
_HUMAN_REQUESTED = EventKind.HUMAN_REQUESTED
_ITEM_ABORTED = EventKind.ITEM_ABORTED
_ITEM_CREATED = EventKind.ITEM_CREATED
_ITEM_FINISHED = EventKind.ITEM_FINISHED
_QA_VERDICT = EventKind.QA_VERDICT
_ROUTE_CHOSEN = EventKind.ROUTE_CHOSEN
_TRANSITION = EventKind.TRANSITION
_TRANSITION_DEFERRED = EventKind.TRANSITION_DEFERRED


class Dispatcher:
    """Runs one pipeline run's items; see the module docstring."""

    def __init__(
        self,
        pipeline: CompiledPipeline,
        handlers: dict[str, Handler],
        services: RunServices,
        governor: RetryGovernor,
        *,
        run_id: str,
        input: object,
        max_concurrency: int,
        executor: InvocationExecutor | None = None,
    ) -> None:
        self.pipeline = pipeline
        # None: handlers are awaited here; else the executor runs them (docs/scale.md).
        self.executor = executor
        self.services = services
        self.hub = services.hub
        self.governor = governor
        self.run_id = run_id
        self.input = input
        self.aggregation = pipeline.spec.aggregation
        self.plans = build_plans(pipeline, max_concurrency)
        self.handlers = handlers
        self.output_models: Mapping[str, type[BaseModel]] = pipeline.output_models
        self.machine: StateMachine[Any, Any] = StateMachine(
            pipeline.transitions, pipeline.initial, pipeline.terminal
        )
        # Invariant: every item created so far, in creation order (main first).
        self.items: list[ItemState] = []
        # Invariant: every deferred terminal move, in the order requested.
        self.deferred: list[Deferred] = []
        # Invariant: the first run-ending error; set at most once.
        self.fatal: BaseException | None = None
        self.scope = trio.CancelScope()
        # The run's memo when it has a run store (`engine/memo.py`), else None. A resumed
        # run's machine and deferred moves start where its committed events left them.
        self.memo = memo = services.memo
        # With a memo: the agents whose outputs a join reads (their commit is awaited).
        self._joined: frozenset[str] = frozenset()
        if memo is not None:
            memo.restore(self.machine, self.deferred, pipeline)
            self._joined = frozenset(
                target
                for plan in self.plans.values()
                if plan.join is not None
                for target in plan.targets
            )

    # -- the run -----------------------------------------------------------------

    async def run(self, item_id: str = "main") -> None:
        """Run item `main` from the entry agent until every item is done or the run ends.

        A sub-pipeline's run names its main item after the parent's item and agent
        (`engine/subpipeline.py`), so its ids never collide with the parent's.
        """
        main = ItemState(WorkItem(item_id, self.input))
        self.items.append(main)
        with self.scope:
            await self._guarded(main, self.pipeline.spec.entry_agent, None, None)
            self.finish_item(main)

    def end_run(self, exc: BaseException) -> None:
        """Record a run-ending error (the first one wins) and cancel every task."""
        if self.fatal is None:
            self.fatal = exc
            if not isinstance(exc, BudgetExceededError):  # budget_exceeded is already recorded
                self.hub.publish(
                    _AGENT_FAILED,
                    agent=getattr(exc, "agent", None),
                    payload={"error": type(exc).__name__, "message": str(exc), "fatal": True},
                )
        self.scope.cancel()

    async def _guarded(
        self, item: ItemState, agent: str, upstream: AgentOutput | None, source: str | None
    ) -> None:
        try:
            await self.run_agent(item, agent, upstream, (), source)
        except FATAL_ERRORS as exc:
            self.end_run(exc)

    # -- one agent ---------------------------------------------------------------

    async def run_agent(
        self,
        item: ItemState,
        agent: str,
        upstream: AgentOutput | None,
        feedback: Sequence[QAIssue],
        source: str | None,
    ) -> None:
        """Invoke `agent` on `item`, then handle its verdict or dispatch its output.

        Whatever continues on the same item (a sequential hand-off, a route case's
        agent, a join or reduce agent) runs in this loop rather than a nested call,
        so a long chain or loop does not grow the stack (no RecursionError).
        """
        while True:
            plan = self.plans[agent]
            out = await self._invoke(plan, item, upstream, feedback, source)
            if out is None:
                return
            if plan.is_qa and not out.passed:
                await handle_failures(self, item, [(plan, out)])
                return
            if plan.strategy == "sequential":
                if item.status == "aborted":  # as `dispatch` does
                    return
                agent, upstream, feedback, source = plan.targets[0], out, (), plan.id
                continue
            if plan.strategy is None:
                return
            step = await self.dispatch_step(plan, item, out)
            if step is None:
                return
            (agent, upstream, source), feedback = step, ()

    async def _invoke(
        self,
        plan: AgentPlan,
        item: ItemState,
        upstream: AgentOutput | None,
        feedback: Sequence[QAIssue],
        source: str | None,
        branch_failures: dict[str, BranchFailure] | None = None,
    ) -> AgentOutput | None:
        """One invocation with its events; None if it failed or the run is ending.

        A failure aborts the item, or, for a joined broadcast's branch (`branch_failures`
        given), is recorded there for the join. After a run-ending error a task runs
        on until its next checkpoint: it starts no further invocation then.
        """
        if self.fatal is not None:
            return None
        agent, item_id = plan.id, item.item.id
        attempt = item.attempts.get(agent, 0) + 1
        item.attempts[agent] = attempt
        if plan.retried:
            item.inputs[agent] = (source, upstream)
        started: dict[str, Any] = {"upstream": source}
        if feedback:
            started["feedback"] = issue_dicts(feedback)
        self.hub.publish(
            _AGENT_STARTED, agent=agent, item=item_id, attempt=attempt, payload=started
        )
        if plan.triggers["on_start"] is not None:  # most agents move on no event: no call
            self._fire(plan, "on_start", item_id, attempt)
        memo = self.memo
        if memo is not None:
            recorded = memo.step(agent, item_id, attempt)
            if recorded is not None:  # a resume: the recorded output, no handler call
                return self._replayed(plan, item, attempt, recorded, branch_failures)
        joined, children = (
            (_NOTHING_JOINED, ()) if not plan.gathers else self._gathered(agent, item)
        )
        ctx = new_context(
            self.run_id, agent, item.item, attempt, self.input, upstream,
            feedback if type(feedback) is tuple else tuple(feedback), self.services,
            item.visible_outputs(), dict(item.history), joined, children, source,
        )  # fmt: skip
        self.hub.flush()  # the run may wait here: its events go to the audit log first
        try:
            executor = self.executor
            if executor is None:
                answer = await self.handlers[agent](ctx)
            else:
                answer = await executor.invoke(self.handlers[agent], ctx)
            if type(answer) is AgentOutput and agent not in self.output_models:
                out, typed = answer, None  # the common case, without a call
            else:
                out, typed = self._agent_output(agent, answer)
        except FATAL_ERRORS:
            raise
        except HumanAnswerNeeded as request:
            self._park(plan, item, request)
            return None
        except Exception as exc:
            # The row goes before the events that report it (the writer commits in order):
            # a resume finds every logged outcome in `steps` (else it would call the handler
            # again, and a different answer would run while the log kept the first).
            if memo is not None:  # its failure, too, is what a resume must find
                failed = {"error": type(exc).__name__, "message": str(exc)}
                await memo.record_step(agent, item_id, attempt, {"failed": failed})
            self._invocation_failed(plan, item, exc, branch_failures)
            return None
        if memo is not None:  # commit before proceed: the output, before it goes onward
            ends = (
                plan.strategy is None
                and agent not in self._joined
                and not (plan.is_qa and not out.passed)
            )  # nothing is dispatched from it: submitted, not awaited
            await memo.record_step(agent, item_id, attempt, out, wait=not ends)
        self._record(plan, item, out, attempt, typed)
        return out

    @staticmethod
    def _gathered(
        agent: str, item: ItemState
    ) -> tuple[Mapping[str, BaseModel], tuple[ChildResult, ...]]:
        """What a join / reduce agent sees on `item`: `ctx.joined`, `ctx.children`."""
        joined = item.joined.get(agent) if item.joined is not None else None
        children = item.children.get(agent) if item.children is not None else None
        return joined or _NOTHING_JOINED, children or ()

    def _agent_output(self, agent: str, answer: object) -> tuple[AgentOutput, BaseModel | None]:
        """The engine's `AgentOutput` for a handler's answer, and the typed output if any.

        An agent with `output:` must answer its output model: an instance, or a
        pydantic model that validates as one (the same generated class imported
        under another module name: `agentflow run` executes the generated code
        under a private name); any other agent an `AgentOutput`.
        """
        expected = self.output_models.get(agent)
        if expected is None:
            if not isinstance(answer, AgentOutput):
                raise TypeError(
                    f"handler for '{agent}' returned {type(answer).__name__}, not AgentOutput"
                )
            return answer, None
        if not isinstance(answer, expected):
            if not isinstance(answer, BaseModel) or isinstance(answer, AgentOutput):
                raise TypeError(
                    f"handler for '{agent}' returned {type(answer).__name__}, not "
                    f"{expected.__name__} (the agent's declared output)"
                )
            try:
                answer = expected.model_validate(answer.model_dump())
            except ValidationError as exc:
                raise TypeError(
                    f"handler for '{agent}' returned {type(answer).__name__}, which does not "
                    f"validate as {expected.__name__} (the agent's declared output): {exc}"
                ) from None
        return typed_agent_output(answer), answer

    def _park(self, plan: AgentPlan, item: ItemState, request: HumanAnswerNeeded) -> None:
        """A human step asks: publish `human_requested` and leave `item` waiting (no
        `item_finished`); with no run store to wait in, fail the item instead."""
        if self.hub.committer is None:
            self.fail_item(plan, item, RuntimeError(HUMAN_NEEDS_STORE.format(agent=plan.id)))
            return
        self.hub.publish(
            _HUMAN_REQUESTED,
            agent=plan.id,
            item=item.item.id,
            attempt=item.attempts.get(plan.id),
            payload=request.payload,
        )
        if item.status != "aborted":
            item.status, item.reason = "waiting", f"waiting for a person to answer '{plan.id}'"

    def _replayed(
        self,
        plan: AgentPlan,
        item: ItemState,
        attempt: int,
        recorded: Any,
        branch_failures: dict[str, BranchFailure] | None,
    ) -> AgentOutput | None:
        """An invocation a resume serves from `steps`: its recorded output (or failure),
        recorded on the item as if its handler had just answered."""
        agent = plan.id
        failed = recorded.get("failed") if type(recorded) is dict else None
        exc: Exception | None = None
        if failed is not None:
            exc = recorded_failure(str(failed.get("error")), str(failed.get("message")))
        else:
            expected = self.output_models.get(agent)
            try:
                if expected is not None:
                    typed: BaseModel | None = expected.model_validate(recorded.get("data"))
                    out = typed_agent_output(typed)  # type: ignore[arg-type]
                else:
                    typed, out = None, AgentOutput.model_validate(recorded)
            except (ValidationError, ValueError, TypeError, AttributeError) as error:
                exc = recorded_failure(
                    "RecordedOutputInvalid", f"the recorded output does not validate: {error}"
                )
        if exc is not None:
            self._invocation_failed(plan, item, exc, branch_failures)
            return None
        self._record(plan, item, out, attempt, typed)
        return out

    def _invocation_failed(
        self,
        plan: AgentPlan,
        item: ItemState,
        exc: Exception,
        branch_failures: dict[str, BranchFailure] | None,
    ) -> None:
        """A failed invocation aborts its item, or, for a joined broadcast's branch
        (`branch_failures` given), is recorded there for the join."""
        if branch_failures is None:
            self.fail_item(plan, item, exc)
        else:
            self._agent_failed(plan, item, exc)
            branch_failures[plan.id] = BranchFailure(error=f"{type(exc).__name__}: {exc}")

    def memoised(self, agent: str, item_id: str, attempt: int) -> bool:
        """Whether a resume serves this invocation from its memo (a QA retry's backoff is
        then not slept again)."""
        memo = self.memo
        return memo is not None and memo.step(agent, item_id, attempt, count=False) is not None

    def fail_item(self, plan: AgentPlan, item: ItemState, exc: Exception) -> None:
        """Record `plan`'s latest invocation on `item` as failed by `exc`; abort the item."""
        self._agent_failed(plan, item, exc)
        self.abort_item(item, plan, f"agent '{plan.id}' failed: {type(exc).__name__}: {exc}")

    def _agent_failed(self, plan: AgentPlan, item: ItemState, exc: Exception) -> None:
        agent = plan.id
        self.hub.publish(
            _AGENT_FAILED,
            agent=agent,
            item=item.item.id,
            attempt=item.attempts.get(agent),
            payload={"error": type(exc).__name__, "message": str(exc)},
        )

    def _record(
        self,
        plan: AgentPlan,
        item: ItemState,
        out: AgentOutput,
        attempt: int,
        typed: BaseModel | None,
    ) -> None:
        """Record the output on the item, emit the invocation's verdict or completion and
        fire its agent event. `typed` is a typed agent's output (emitted in full)."""
        agent, item_id = plan.id, item.item.id
        kept = typed if typed is not None else text_output(out.text)
        item.outputs[agent] = kept
        item.history[agent] = (*item.history.get(agent, ()), kept)
        if plan.is_qa:
            item.verdicts[agent] = out.passed
            verdict: dict[str, Any] = {"passed": out.passed}
            if out.issues:
                verdict["issues"] = issue_dicts(out.issues)
            self.hub.publish(
                _QA_VERDICT, agent=agent, item=item_id, attempt=attempt, payload=verdict
            )
            self._fire(plan, "on_pass" if out.passed else "on_fail", item_id, attempt)
        else:
            item.output, item.last = out.text, kept
            done: dict[str, Any] = {"text": out.text[:200]}
            if typed is not None:
                done["output"] = out.data
            if out.items is not None:
                done["items"] = len(out.items)
            self.hub.publish(
                _AGENT_COMPLETED, agent=agent, item=item_id, attempt=attempt, payload=done
            )
            if plan.triggers["on_complete"] is not None:
                self._fire(plan, "on_complete", item_id, attempt)

    def _fire(self, plan: AgentPlan, event: str, item: str | None, attempt: int | None) -> None:
        """Apply `plan`'s move for `event`: taken, recorded as a no-op, or deferred."""
        entry = plan.triggers[event]
        if entry is None:
            return
        memo = self.memo
        if (
            memo is not None
            and memo.replay is not None
            and memo.consumed_transition(plan.id, item, attempt)
        ):
            return  # a resume: this move was committed, the machine is already past it
        trigger, name, moves = entry
        machine = self.machine
        hit = moves.get(machine.state._name_)
        if hit is None:  # not in TRANSITIONS: let the machine raise InvalidTransition
            machine.fire(trigger, plan.id)
            raise AssertionError("unreachable: the machine accepted a move the plan lacks")
        target, source_name, target_name, terminal = hit
        if terminal:
            self.deferred.append(Deferred(event, trigger, name, plan.id, target))
            self.hub.publish(
                _TRANSITION_DEFERRED,
                agent=plan.id,
                item=item,
                attempt=attempt,
                payload={"to": target_name, "trigger": name},
            )
            return
        noop = machine.advance(target)  # `hit` is the TRANSITIONS row for the current state
        self.hub.publish(
            _TRANSITION,
            agent=plan.id,
            item=item,
            attempt=attempt,
            payload={"from": source_name, "to": target_name, "trigger": name, "noop": noop},
        )

    def abort_item(self, item: ItemState, plan: AgentPlan, reason: str) -> None:
        """Mark `item` aborted (once), emit `item_aborted`, fire `plan`'s on_abort."""
        if item.status == "aborted":
            return
        item.status, item.reason = "aborted", reason
        attempt = item.attempts.get(plan.id)
        self.hub.publish(
            _ITEM_ABORTED,
            agent=plan.id,
            item=item.item.id,
            attempt=attempt,
            payload={"reason": reason},
        )
        self._fire(plan, "on_abort", item.item.id, attempt)

    # -- dispatch ----------------------------------------------------------------

    async def dispatch(self, plan: AgentPlan, item: ItemState, out: AgentOutput) -> None:
        """Dispatch `plan`'s output `out` on `item` and run the rest of the item's path."""
        step = await self.dispatch_step(plan, item, out)
        if step is not None:
            await self.run_agent(item, step[0], step[1], (), step[2])

    async def dispatch_step(
        self, plan: AgentPlan, item: ItemState, out: AgentOutput
    ) -> Next | None:
        """Dispatch `out`; return where the item's path continues on `item`, if it does.

        Fan-outs and broadcasts run their children / branches here; the agent they
        continue with (their reduce / join) is returned for the caller's loop.
        """
        if item.status == "aborted":
            return None
        strategy = plan.strategy
        if strategy == "sequential":
            return plan.targets[0], out, plan.id
        if strategy == "route":
            return self._route(plan, item, out)
        if strategy == "parallel_fan_out":
            return await self._fan_out(plan, item, out)
        if strategy == "parallel_broadcast":
            return await self._broadcast(plan, item, out)
        return None

    def _route(self, plan: AgentPlan, item: ItemState, out: AgentOutput) -> Next | None:
        """Pick the router's case by its output field, emit `route_chosen`, follow it.

        A case with `max_iterations` n may be taken n times per item; choosing it
        again is exhausted: `on_exhausted` (`end` or `abort`) instead of its target.
        """
        route = plan.route
        assert route is not None  # a "route" strategy always has its RoutePlan
        data = out.data
        value = data.get(route.on) if type(data) is dict else None
        key = "true" if value is True else "false" if value is False else value
        label: str = key if type(key) is str else ""
        case = route.cases.get(label)
        counter: tuple[str, str | None] = (plan.id, label)
        if case is None:
            # `default` may also be a case's key: its counter is kept apart
            case, label, counter = route.default, "default", (plan.id, None)
            if case is None:
                self.abort_item(
                    item,
                    plan,
                    f"router '{plan.id}' answered {route.on}={value!r}, which no case "
                    "handles, and it has no default",
                )
                return None
        target = case.target
        chosen: dict[str, Any] = {"on": route.on, "value": value, "case": label, "to": target}
        limit = case.max_iterations
        if limit is not None:
            counts = item.iterations
            if counts is None:
                counts = item.iterations = {}
            taken = counts.get(counter, 0) + 1
            chosen["iteration"], chosen["max_iterations"] = taken, limit
            if taken > limit:
                target = chosen["to"] = case.on_exhausted
                chosen["exhausted"] = True
            else:
                counts[counter] = taken
        self.hub.publish(
            _ROUTE_CHOSEN,
            agent=plan.id,
            item=item.item.id,
            attempt=item.attempts.get(plan.id),
            payload=chosen,
        )
        if target == ROUTE_END:
            return None
        if target == ROUTE_ABORT:
            if chosen.get("exhausted"):
                reason = (
                    f"router '{plan.id}' chose case '{label}' again after {limit} "
                    f"iteration(s): max_iterations {limit} exhausted"
                )
            else:
                reason = f"router '{plan.id}' chose case '{label}' (abort)"
            self.abort_item(item, plan, reason)
            return None
        return target, out, plan.id

    async def _fan_out(self, plan: AgentPlan, item: ItemState, out: AgentOutput) -> Next | None:
        payloads = self._work_items(plan, item, out)
        if payloads is None:
            return None
        parent = item.item.id
        prefix = ("item-" if parent == "main" else parent + ".") + plan.id_tag
        # The fan-out's n-th run on this item (a loop, a QA retry) numbers its children
        # `<k>#<n>`, so no id is used twice.
        run = item.attempts.get(plan.id, 1)
        suffix = "" if run == 1 else f"#{run}"
        children: list[ItemState] = []
        emit = self.hub.publish
        for index, payload in enumerate(payloads, 1):
            child = ItemState(WorkItem(f"{prefix}{index}{suffix}", payload, index, parent), item)
            children.append(child)
            shown = payload[:200] if isinstance(payload, str) else payload
            emit(
                _ITEM_CREATED,
                agent=plan.id,
                item=child.item.id,
                payload={"parent": parent, "index": index, "payload": shown},
            )
        self.items.extend(children)
        if self.memo is not None:  # commit before proceed: the items, before their children
            await self.memo.commit(None)
        limiter = trio.CapacityLimiter(plan.limit)
        target = plan.targets[0]
        with self.hub.flushing_before_waits():  # so a child needs no flush as it ends
            async with trio.open_nursery() as nursery:
                for child in children:
                    try:  # the nowait path skips a scheduler round-trip per item
                        limiter.acquire_on_behalf_of_nowait(child)
                    except trio.WouldBlock:
                        self.hub.flush()
                        await limiter.acquire_on_behalf_of(child)
                    nursery.start_soon(self._child, child, target, out, plan.id, limiter)
                self.hub.flush()
        if item.status is None and any(child.status == "waiting" for child in children):
            # a child waits for a person: its parent cannot reduce (or finish) before it
            item.status, item.reason = "waiting", WAITING_FOR_CHILD
        if self.memo is not None and plan.reduce is not None:  # the children's outputs
            await self.memo.commit(None)  # are committed before the reduce reads them
        reduce = plan.reduce
        if reduce is None or item.status in ("aborted", "waiting") or self.fatal is not None:
            return None
        if item.children is None:
            item.children = {}
        item.children[reduce] = tuple(
            child_result(child.item.id, child.status or "aborted", child.last, child.reason)
            for child in children
        )
        return reduce, out, plan.id

    def _work_items(self, plan: AgentPlan, item: ItemState, out: AgentOutput) -> list[Any] | None:
        """The fan-out's work items (`AgentOutput.items`, or the typed output's `items:`
        field); None, with the item aborted, if there are none or one is not JSON."""
        field = plan.items
        if field is None:
            payloads = out.items
            if payloads is None:
                self.abort_item(
                    item,
                    plan,
                    f"fan-out agent '{plan.id}' returned no work items (AgentOutput.items is "
                    "None); return a list, empty if there is no work",
                )
                return None
        else:
            data = out.data
            payloads = data.get(field) if type(data) is dict else None
            if type(payloads) is not list:
                self.abort_item(
                    item,
                    plan,
                    f"fan-out agent '{plan.id}' returned no list in its output field "
                    f"'{field}' (items: {field})",
                )
                return None
        for index, payload in enumerate(payloads, 1):
            problem = None if type(payload) is str else json_problem(payload)
            if problem is not None:
                self.abort_item(
                    item,
                    plan,
                    f"fan-out agent '{plan.id}' returned work item {index} that the event log "
                    f"cannot record: {problem}; return text, numbers, lists or dicts",
                )
                return None
        return payloads

    async def _child(
        self,
        child: ItemState,
        target: str,
        upstream: AgentOutput,
        source: str,
        limiter: trio.CapacityLimiter,
    ) -> None:
        try:
            await self.run_agent(child, target, upstream, (), source)
        except FATAL_ERRORS as exc:
            self.end_run(exc)
        finally:
            limiter.release_on_behalf_of(child)
        self.finish_item(child)
        # No flush as the task ends: `_fan_out` flushes before trio waits (one write for
        # what the children of a scheduler batch leave).

    async def _broadcast(self, plan: AgentPlan, item: ItemState, out: AgentOutput) -> Next | None:
        """Run every target on `item`, join their verdicts; then the join agent, if any,
        once the verdicts stand (a retry flows through this broadcast again and joins
        there; an abort ends the item)."""
        verdicts: dict[str, AgentOutput] = {}
        join = plan.join
        failures: dict[str, BranchFailure] | None = None if join is None else {}
        with self.hub.flushing_before_waits():  # so a branch needs no flush as it ends
            async with trio.open_nursery() as nursery:
                for target in plan.targets:
                    nursery.start_soon(
                        self._broadcast_one, item, target, out, plan.id, verdicts, failures
                    )
                self.hub.flush()
        if item.status == "waiting":  # a branch waits for a person: nothing joins yet
            return None
        stands = await join_verdicts(self, plan, item, verdicts)
        if join is None or failures is None or not stands or item.status == "aborted":
            return None
        if self.fatal is not None:
            return None
        outputs = item.outputs
        joined: dict[str, BaseModel] = {
            target: failures[target] if target in failures else outputs[target]
            for target in plan.targets
        }
        if item.joined is None:
            item.joined = {}
        item.joined[join] = MappingProxyType(joined)  # one snapshot, shared by its retries
        return join, out, plan.id

    async def _broadcast_one(
        self,
        item: ItemState,
        agent: str,
        upstream: AgentOutput,
        source: str,
        verdicts: dict[str, AgentOutput],
        failures: dict[str, BranchFailure] | None,
    ) -> None:
        try:
            plan = self.plans[agent]
            out = await self._invoke(plan, item, upstream, (), source, failures)
            if out is None:
                return
            if plan.is_qa:
                verdicts[agent] = out  # joined by _broadcast
            elif plan.strategy is not None:
                await self.dispatch(plan, item, out)
        except FATAL_ERRORS as exc:
            self.end_run(exc)  # no flush as the task ends: see `_child`

    # -- finishing -------------------------------------------------------------------

    def finish_item(self, item: ItemState) -> None:
        """Settle the item's status and emit `item_finished`.

        An item a run-ending error cut short is left unsettled: it is reported
        `aborted` with the reason `UNFINISHED`, like an item a cancellation cut short.
        """
        if self.fatal is not None and item.status is None:
            return
        if item.status == "waiting":  # parked by a human step: it finishes after the answer
            return
        status = item.status = aggregator.item_status(
            self.aggregation, item.status == "aborted", item.verdicts
        )
        self.hub.publish(
            _ITEM_FINISHED,
            item=item.item.id,
            payload={"status": status, "gates": dict(item.verdicts)},
        )
        item.release()
