"""Replaying a run's committed events on resume: the filter and the hub that applies it.

A resume re-executes the run (`engine/resume.py`). What it already did was
committed; the events it re-produces must not be logged twice. Each committed
event's identity `(kind, agent, item, attempt)` is counted (a multiset: the n-th
occurrence of an identity is the n-th event with it); while the run replays,
publishing an event whose identity is still counted consumes one count and
publishes nothing. Any other event is live. Run-level kinds never match:
`run_started` is never published again (the log has it), the others
(`run_resumed`, `run_cancelled`, `run_finished`, `log_sealed`, `sink_error`,
`budget_exceeded`) are always live, and so are an invocation's `rate_limited` and
`invocation_resubmitted` (what this process's model client and executor did).

Where a turn or tool call of an invocation goes live (no memo, or the request
changed), that invocation's remaining model and tool identities are dropped
(`go_live`): what the live call produces is logged, beside what the interrupted
one left.

The filter also keeps what resuming the state machines needs: each run's (and
each sub-pipeline invocation's) last committed `transition`, its committed
`transition_deferred` requests, and whether it settled; and the usage of every
committed `model_response` (the run's budget continues from it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..events.event import EventKind, PipelineEvent, new_event
from ..events.hub import EventHub
from ..store import RunMemo
from ..usage import Usage
from .plan import Deferred, trigger_member

__all__ = ["RUN_LEVEL_KINDS", "ReplayFilter", "ReplayHub", "ReplayStats"]

RUN_LEVEL_KINDS = frozenset(
    {
        EventKind.RUN_STARTED,
        EventKind.RUN_RESUMED,
        EventKind.RUN_CANCELLED,
        EventKind.RUN_FINISHED,
        EventKind.LOG_SEALED,
        EventKind.SINK_ERROR,
        EventKind.BUDGET_EXCEEDED,
        EventKind.HUMAN_ANSWERED,
    }
)
"""Kinds a resume never consumes (`human_answered` is written by `agentflow answer`)."""

_PROCESS_FACTS = frozenset({EventKind.RATE_LIMITED, EventKind.INVOCATION_RESUBMITTED})
"""An invocation's kinds that tell what this process did (a rate-limit wait, a resubmission
to a new Ray actor): never consumed, so the resumed process's own are logged (a dead
process's with the same identity would otherwise swallow them)."""
_NEVER_CONSUMED = RUN_LEVEL_KINDS | _PROCESS_FACTS

_LIVE_KINDS = (
    EventKind.MODEL_REQUEST,
    EventKind.MODEL_TEXT,
    EventKind.MODEL_RESPONSE,
    EventKind.MODEL_ERROR,
    EventKind.TOOL_CALL,
    EventKind.TOOL_RESULT,
)
_SUBPIPELINE = "subpipeline"  # the payload key of a sub-pipeline's events (subpipeline.py)
_USAGE_FIELDS = frozenset(Usage.model_fields)

Identity = tuple[str, str | None, str | None, int | None]


@dataclass
class ReplayStats:
    """What a resume replayed and what it ran (the CLI prints them)."""

    events_committed: int = 0  # events the log held when the resume started
    events_consumed: int = 0  # re-produced events that were not logged again
    steps_served: int = 0  # invocations answered from `steps`
    turns_served: int = 0  # model turns answered from `model_calls`
    tools_served: int = 0  # tool results answered from `tool_calls`
    live_invocations: int = 0  # invocations run for real (no recorded output)
    live_turns: int = 0  # model turns sent to the model (no record, or a changed request)
    request_mismatches: int = 0  # recorded turns not served: the request changed


@dataclass
class _Machine:
    """One state machine's committed moves: last `to`, deferred requests, settled."""

    last: str | None = None
    deferred: list[tuple[str | None, str, str]] = field(default_factory=list)


class ReplayFilter:
    """The committed events' identities and state; see the module docstring."""

    def __init__(self, events: Iterable[Mapping[str, Any]], memo: RunMemo) -> None:
        self.memo = memo
        self.stats = ReplayStats()
        pending: dict[Identity, int] = {}
        # (namespace, main item) -> committed settling transitions (attempt None)
        settled: dict[tuple[str | None, str | None], int] = {}
        # namespace -> [(item, kind, agent, payload)] of its transition events, in order
        moves: dict[str | None, list[tuple[str | None, str, str | None, Mapping[str, Any]]]] = {}
        usage = Usage()
        count = 0
        for event in events:
            count += 1
            kind = event.get("kind")
            if kind is None or kind in _NEVER_CONSUMED:
                continue
            agent, item, attempt = event.get("agent"), event.get("item"), event.get("attempt")
            key = (kind, agent, item, attempt)
            pending[key] = pending.get(key, 0) + 1
            payload = event.get("payload") or {}
            if kind == EventKind.MODEL_RESPONSE:
                raw = payload.get("usage") or {}
                usage = usage + Usage(**{k: v for k, v in raw.items() if k in _USAGE_FIELDS})
            elif kind == EventKind.TRANSITION or kind == EventKind.TRANSITION_DEFERRED:
                namespace = payload.get(_SUBPIPELINE)
                moves.setdefault(namespace, []).append((item, kind, agent, payload))
                if kind == EventKind.TRANSITION and attempt is None:
                    where = (namespace, item if namespace is not None else None)
                    settled[where] = settled.get(where, 0) + 1
        self._pending = pending
        self._settled = settled
        self._moves = moves
        self.usage = usage
        self.stats.events_committed = count

    @classmethod
    def from_lines(cls, lines: Iterable[str], memo: RunMemo) -> ReplayFilter:
        return cls((json.loads(line) for line in lines), memo)

    def consume(self, kind: str, agent: str | None, item: str | None, attempt: int | None) -> bool:
        """True (and one count less) if this identity was committed and not yet re-produced."""
        pending = self._pending
        key = (kind, agent, item, attempt)
        left = pending.get(key)
        if not left:
            return False
        if left == 1:
            del pending[key]
        else:
            pending[key] = left - 1
        self.stats.events_consumed += 1
        return True

    def go_live(self, agent: str, item: str, attempt: int, *, mismatch: bool = False) -> None:
        """This invocation's turns or tools run for real from here: stop consuming its
        model and tool events (see the module docstring)."""
        pending = self._pending
        dropped = False
        for kind in _LIVE_KINDS:
            dropped = pending.pop((kind, agent, item, attempt), None) is not None or dropped
        self.stats.live_turns += 1
        if mismatch:
            self.stats.request_mismatches += 1

    def settled(self, namespace: str | None, item: str | None) -> bool:
        """Whether this machine's settling move was committed (consumed once)."""
        where = (namespace, item if namespace is not None else None)
        left = self._settled.get(where)
        if not left:
            return False
        self._settled[where] = left - 1
        return True

    def restore(
        self,
        namespace: str | None,
        main_item: str | None,
        prefix: str,
        machine: Any,
        deferred: list[Deferred],
        pipeline: Any,
    ) -> None:
        """Move `machine` to its last committed state and put back its committed deferred
        terminal requests (in order), for the root run (`namespace` None) or one
        sub-pipeline invocation (its agent namespace and main item)."""
        states = {member.value: member for member in pipeline.state_type}
        for item, kind, agent, payload in self._moves.get(namespace, ()):
            if namespace is not None and not _within(item, main_item):
                continue
            target = states.get(payload.get("to"))
            if target is None:
                continue
            if kind == EventKind.TRANSITION:
                machine.state = target
                continue
            name = str(payload.get("trigger") or "")
            trigger = trigger_member(pipeline, name)
            if trigger is None or agent is None:
                continue
            own = agent[len(prefix) :] if prefix and agent.startswith(prefix) else agent
            deferred.append(Deferred(name.rsplit(".", 1)[-1], trigger, name, own, target))


def _within(item: str | None, main_item: str | None) -> bool:
    """Whether `item` is a sub-pipeline invocation's main item or one of its children."""
    if item is None or main_item is None:
        return item == main_item
    return item == main_item or item.startswith(main_item + ".")


class ReplayHub(EventHub):
    """An `EventHub` that publishes only what a resumed run has not logged yet."""

    def __init__(self, *, replay: ReplayFilter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replay = replay

    def publish(
        self,
        kind: EventKind,
        *,
        agent: str | None = None,
        item: str | None = None,
        attempt: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        if kind is EventKind.RUN_STARTED or self.replay.consume(kind, agent, item, attempt):
            return
        super().publish(kind, agent=agent, item=item, attempt=attempt, payload=payload)

    def emit(
        self,
        kind: EventKind,
        *,
        agent: str | None = None,
        item: str | None = None,
        attempt: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> PipelineEvent:
        if kind is EventKind.RUN_STARTED or self.replay.consume(kind, agent, item, attempt):
            return new_event(
                {
                    "run_id": self.run_id, "seq": -1, "ts": 0.0, "kind": kind,
                    "agent": agent, "item": item, "attempt": attempt,
                    "payload": payload if payload is not None else {},
                    "pipeline_hash": self.pipeline_hash, "prev_hash": "",
                }
            )  # fmt: skip  # replayed: not logged again (seq -1)
        return super().emit(kind, agent=agent, item=item, attempt=attempt, payload=payload)
