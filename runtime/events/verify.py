"""Audit-log verification: is this JSONL file the untouched, whole record of one run?

`verify_log` checks, line by line:

- each line parses as a `PipelineEvent`, and all carry one `run_id` and one
  `pipeline_hash`;
- `seq` runs 0, 1, 2, ... with no gap (a deleted or reordered line breaks it);
- each `prev_hash` is the SHA-256 of the previous line's exact bytes (without
  the newline), and the first is empty (an edited line breaks the next link);
- given the pipeline's TRANSITIONS table (string states and triggers, e.g. from
  `derive_transitions(spec)`), every `transition` with `noop: false` is a legal
  move and starts from the state the previous transition left (the first from
  `initial`, when given);
- the log ends with `run_finished`, then only `sink_error` events (a sink that
  failed while the run's last events were delivered), then the `log_sealed`
  line the hub writes as it closes the log. The seal's `prev_hash` covers the
  line before it; its `sha256` covers its own bytes (`events.seal_event`): the
  seal is rebuilt from its fields and must match byte for byte. A log without
  it is not a finished run's whole log (a crash, a kill, a cut-off end);
- `run_finished` agrees with the events before it: its `final_state` is where
  the last transition went, its `items` counts are the items' `item_finished`
  statuses (an item without one counts as aborted, or as waiting when a human step
  asked on it or on a child item it fanned out to), its `usage` is at least the
  sum of the `model_response` usages (a handler may charge calls of its own),
  and its `status` is what those events imply (`cancelled` exactly when a
  `run_cancelled` precedes it; `error` after a fatal `agent_failed`; `waiting`
  when items wait for a person; else `incomplete` in a non-terminal state,
  `failed` when an item failed or was aborted, else `succeeded`; terminal states
  only when `terminal` is given).

A resumed run's log is made of segments (`agentflow resume`, docs/resume.md): `...
[run_finished [sink_error*] [log_sealed]] run_resumed ...`; after a segment that
ended `waiting`, `human_answered` events (`agentflow answer`, docs/human.md) may
come before its `run_resumed`. The chain (seq,
`prev_hash`) runs through every segment; a segment may end without
`run_finished` (a crash) or with one (cancelled, error, waiting) and its seal;
`run_resumed` starts the next; only the last segment must end with
`run_finished` and `log_sealed`. Every check that spans the run (items,
transitions, usage, final state, status) runs over the whole log, except that a
`run_cancelled` or fatal `agent_failed` of an earlier segment does not decide the
last `run_finished`'s status. The pipeline hash may change at a `run_resumed`
(`--allow-changed`).

A sub-pipeline's events (payload key `subpipeline`, `engine/subpipeline.py`) are
part of the chain and their model usage counts, but its items are not the run's
items and its transitions move its own state machine: each sub-pipeline
invocation's transitions must continue from the state its previous one left
(keyed by namespace and main item), and are not checked against the parent's
table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..pipeline import derive_transitions
from ..spec import PipelineSpec
from .event import EventKind, PipelineEvent, seal_event

__all__ = ["Problem", "VerifyReport", "verify_log", "verify_run_log"]

_USAGE_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "model_calls",
)
_ITEM_STATUSES = ("passed", "failed", "aborted", "completed")
_SUBPIPELINE = "subpipeline"
"""The payload key of a sub-pipeline's events (`engine.subpipeline.SUBPIPELINE_KEY`)."""


def _without_tag(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != _SUBPIPELINE}


def _child_main(item: str) -> str:
    """A sub-pipeline item's main item: `main/team/1.2` -> `main/team/1`."""
    head, _, tail = item.rpartition("/")
    return f"{head}/{tail.split('.', 1)[0]}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the log; `line` is 1-based (0: the file as a whole)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class VerifyReport:
    """The verdict on one audit log; `ok` only for a sound, sealed log."""

    path: str
    events: int = 0
    run_id: str | None = None
    final_state: str | None = None
    status: str | None = None  # run_finished's status, when the log has one
    sealed: bool = False
    transitions_checked: bool = False
    segments: int = 1  # a resumed run's log has one more per `run_resumed`
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.sealed

    def render(self) -> str:
        """The report as the CLI prints it."""
        if self.ok:
            checked = " and transitions" if self.transitions_checked else ""
            return (
                f"{self.path}: OK: {self.events} events of run {self.run_id}, sealed; "
                f"hash chain{checked} verified; run_finished ({self.status}, final state "
                f"{self.final_state}) agrees with the events before it"
            )
        lines = [f"{self.path}: FAILED: {len(self.problems)} problem(s):"]
        lines += [
            f"  {self.path}:{p.line}: {p.message}" if p.line else f"  {p.message}"
            for p in self.problems
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The verdict as JSON data (`agentflow serve`'s /api/config `verification`)."""
        return {
            "ok": self.ok,
            "sealed": self.sealed,
            "events": self.events,
            "problems": [str(problem) for problem in self.problems],
            "summary": self.render().splitlines()[0],
        }


@dataclass
class _RunFacts:
    """What the events before `run_finished` say, to cross-check it."""

    items: list[str] = field(default_factory=lambda: ["main"])
    item_status: dict[str, str] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    cancelled: bool = False
    fatal_line: int | None = None
    state: str | None = None  # where the last transition went
    # Human steps (docs/human.md): items that asked a person, and each item's parent.
    asked: set[str] = field(default_factory=set)
    parents: dict[str, str] = field(default_factory=dict)

    def waiting(self) -> set[str]:
        """Items a human step left waiting (no `item_finished`): those that asked, and the
        fan-out parents above them."""
        found: set[str] = set()
        for item in self.asked:
            while item not in self.item_status and item not in found:
                found.add(item)
                parent = self.parents.get(item)
                if parent is None:
                    break
                item = parent
        return found


class _Checker:
    def __init__(
        self,
        report: VerifyReport,
        transitions: Mapping[tuple[str, str], str] | None,
        initial: str | None,
        terminal: Collection[str] | None,
    ):
        self.report = report
        self.transitions = transitions
        self.terminal = None if terminal is None else frozenset(terminal)
        self.prev_hash = ""
        self.pipeline_hash: str | None = None
        self.expected_seq = 0
        self.state = initial  # the state the previous transition left
        self.facts = _RunFacts(state=initial)
        self.finished_at: int | None = None  # line number of run_finished
        self.finished: dict[str, Any] | None = None  # its payload
        self.sealed_at: int | None = None  # line number of log_sealed
        # (sub-pipeline namespace, its main item) -> the state its last transition left
        self.child_states: dict[tuple[str, str], str] = {}

    def problem(self, line: int, message: str) -> None:
        self.report.problems.append(Problem(line, message))

    def check_line(self, number: int, raw: bytes) -> None:
        digest = hashlib.sha256(raw).hexdigest()
        try:
            event = PipelineEvent.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            self.problem(number, f"not a PipelineEvent ({first['msg']}); the line was damaged")
            self.prev_hash = digest
            return
        self.report.events += 1
        self.check_envelope(number, event)
        self.prev_hash = digest
        kind = event.kind
        if kind is EventKind.RUN_RESUMED:
            self.resume_segment()
        elif kind is EventKind.HUMAN_ANSWERED and self.parked():
            pass  # `agentflow answer` appends it to a waiting run's ended segment
        elif self.sealed_at is not None:
            self.problem(number, f"{kind.value} event after log_sealed: lines were added")
        elif kind is EventKind.LOG_SEALED:
            self.check_seal(number, raw, event)
        elif self.finished_at is not None and kind is not EventKind.SINK_ERROR:
            self.problem(number, f"{kind.value} event after run_finished")
        elif kind is EventKind.RUN_FINISHED:
            self.finished_at, self.finished = number, event.payload
        elif self.finished_at is None:
            self.note(number, event)

    def check_envelope(self, number: int, event: PipelineEvent) -> None:
        if self.report.run_id is None:
            self.report.run_id = event.run_id
        elif event.run_id != self.report.run_id:
            self.problem(
                number,
                f"run_id {event.run_id!r} differs from {self.report.run_id!r}: "
                "two runs are mixed in one log",
            )
        if self.pipeline_hash is None or event.kind is EventKind.RUN_RESUMED:
            self.pipeline_hash = event.pipeline_hash  # a resume may run a changed pipeline
        elif event.pipeline_hash != self.pipeline_hash:
            self.problem(number, "pipeline_hash differs from the first line's")
        if event.seq != self.expected_seq:
            self.problem(
                number,
                f"seq {event.seq} where {self.expected_seq} was expected: "
                "a line was deleted, inserted or moved",
            )
        self.expected_seq = event.seq + 1
        if event.prev_hash != self.prev_hash:
            self.problem(
                number,
                "prev_hash does not match the previous line: the previous line was "
                "edited, or lines were removed or reordered",
            )

    def parked(self) -> bool:
        """Whether the segment so far ended with the run waiting for a person."""
        return self.finished is not None and self.finished.get("status") == "waiting"

    def resume_segment(self) -> None:
        """`run_resumed`: the previous segment's end (if it had one) is not the run's;
        its cancellation or fatal error does not decide the run's status."""
        self.finished_at = self.finished = self.sealed_at = None
        self.facts.cancelled = False
        self.facts.fatal_line = None
        self.report.segments += 1

    def check_seal(self, number: int, raw: bytes, event: PipelineEvent) -> None:
        self.sealed_at = number
        before = number - 1
        counted = event.payload.get("events")
        if counted != before:
            self.problem(
                number, f"log_sealed counts {counted} events before it, but the log holds {before}"
            )
        rebuilt = seal_event(
            event.run_id, event.seq, event.ts, event.pipeline_hash, event.prev_hash, counted
        )
        if rebuilt.model_dump_json().encode() != raw:
            self.problem(
                number,
                "log_sealed does not match its own sha256 and canonical form: the seal was edited",
            )

    def note(self, number: int, event: PipelineEvent) -> None:
        """Record what a run event tells about the run's end."""
        facts, p = self.facts, event.payload
        if _SUBPIPELINE in p:
            self.note_child(number, event)
            return
        match event.kind:
            case EventKind.TRANSITION:
                self.check_transition(number, event)
            case EventKind.ITEM_CREATED:
                facts.items.append(str(event.item))
                if isinstance(p.get("parent"), str):
                    facts.parents[str(event.item)] = p["parent"]
            case EventKind.HUMAN_REQUESTED:
                facts.asked.add(str(event.item))
            case EventKind.ITEM_FINISHED:
                facts.item_status[str(event.item)] = str(p.get("status"))
            case EventKind.RUN_CANCELLED:
                facts.cancelled = True
            case EventKind.AGENT_FAILED if p.get("fatal") is True and facts.fatal_line is None:
                facts.fatal_line = number
            case EventKind.MODEL_RESPONSE:
                usage = p.get("usage")
                if isinstance(usage, dict):
                    for key in (*_USAGE_COUNTS, "cost_usd"):
                        value = usage.get(key)
                        if isinstance(value, int | float) and not isinstance(value, bool):
                            facts.usage[key] = facts.usage.get(key, 0) + value

    def note_child(self, number: int, event: PipelineEvent) -> None:
        """A sub-pipeline's event: its usage and a fatal error count for the run; its
        transitions continue its own machine (one per namespace and main item)."""
        p = event.payload
        if event.kind is EventKind.TRANSITION:
            key = (str(p.get(_SUBPIPELINE)), _child_main(str(event.item)))
            source, target = p.get("from"), p.get("to")
            before = self.child_states.get(key)
            if before is not None and source != before:
                self.problem(
                    number,
                    f"sub-pipeline {key[0]!r} transition from {source!r} but its previous "
                    f"transition left {before!r}",
                )
            if isinstance(target, str):
                self.child_states[key] = target
            return
        if event.kind not in (EventKind.ITEM_CREATED, EventKind.ITEM_FINISHED):
            self.note(number, event.model_copy(update={"payload": _without_tag(p)}))

    def check_transition(self, number: int, event: PipelineEvent) -> None:
        p = event.payload
        source, target, trigger = p.get("from"), p.get("to"), p.get("trigger")
        if not (isinstance(source, str) and isinstance(target, str) and isinstance(trigger, str)):
            self.problem(number, "transition event without string from/to/trigger")
            return
        if self.state is not None and source != self.state:
            self.problem(
                number,
                f"transition from {source!r} but the previous transition left {self.state!r}",
            )
        if self.transitions is not None and not p.get("noop", False):
            allowed = self.transitions.get((source, trigger))
            if allowed is None:
                self.problem(number, f"illegal transition: trigger {trigger!r} from {source!r}")
            elif allowed != target:
                self.problem(
                    number,
                    f"illegal transition: trigger {trigger!r} from {source!r} goes to "
                    f"{allowed!r}, not {target!r}",
                )
        self.state = self.facts.state = target
        self.report.final_state = target

    def check_run_finished(self, number: int, p: Mapping[str, Any]) -> None:
        """`run_finished` against the events before it (see the module docstring)."""
        facts = self.facts
        self.report.status = status = str(p.get("status"))
        claimed_state = p.get("final_state")
        if facts.state is not None and claimed_state != facts.state:
            self.problem(
                number,
                f"run_finished says final state {claimed_state!r}, but the last transition "
                f"went to {facts.state!r}",
            )
        if self.report.final_state is None and isinstance(claimed_state, str):
            self.report.final_state = claimed_state
        counts = dict.fromkeys(_ITEM_STATUSES, 0)
        waiting = facts.waiting()
        for item in facts.items:
            status_of = facts.item_status.get(item, "waiting" if item in waiting else "aborted")
            counts[status_of] = counts.get(status_of, 0) + 1
        if p.get("items") != counts:
            self.problem(
                number,
                f"run_finished counts items {p.get('items')}, but its events show {counts}",
            )
        self.check_usage(number, p.get("usage"))
        bad = counts["failed"] + counts["aborted"]
        self.check_status(number, status, str(p.get("reason") or ""), bad, bool(waiting))

    def check_usage(self, number: int, usage: Any) -> None:
        if not isinstance(usage, Mapping):
            self.problem(number, "run_finished has no usage object")
            return
        for key in (*_USAGE_COUNTS, "cost_usd"):
            recorded = self.facts.usage.get(key, 0)
            claimed = usage.get(key)
            if not isinstance(claimed, int | float) or isinstance(claimed, bool):
                self.problem(number, f"run_finished's usage.{key} is not a number: {claimed!r}")
            elif claimed < recorded - 1e-9 * max(1.0, abs(recorded)):
                self.problem(
                    number,
                    f"run_finished says usage.{key} {claimed}, but its model_response events "
                    f"add up to {recorded}",
                )

    def check_status(
        self, number: int, status: str, reason: str, bad: int, waiting: bool = False
    ) -> None:
        facts = self.facts
        if status == "cancelled" or facts.cancelled:
            if not facts.cancelled:
                self.problem(
                    number,
                    "run_finished says status 'cancelled', but no run_cancelled event precedes it",
                )
            elif status != "cancelled":
                self.problem(
                    number,
                    f"run_finished says status {status!r}, but a run_cancelled event precedes it",
                )
            return
        if facts.fatal_line is not None or status == "error":
            if facts.fatal_line is None and not reason.startswith("internal error"):
                self.problem(
                    number,
                    "run_finished says status 'error', but no fatal agent_failed event precedes it",
                )
            elif status != "error":
                self.problem(
                    number,
                    f"run_finished says status {status!r}, but a fatal agent_failed event "
                    f"(line {facts.fatal_line}) ended the run",
                )
            return
        if waiting:
            expected = "waiting"  # a human step parked the run before it could settle
        elif self.terminal is not None and facts.state is not None:
            if facts.state not in self.terminal:
                expected = "incomplete"
            else:
                expected = "failed" if bad else "succeeded"
        elif status == "incomplete":
            return  # without the pipeline's terminal states, nothing contradicts it
        else:
            expected = "failed" if bad else "succeeded"
        if status != expected:
            self.problem(
                number,
                f"run_finished says status {status!r}, but its events show {expected!r} "
                f"({bad} item(s) failed or aborted, last state {facts.state!r})",
            )

    def finish(self) -> None:
        if self.finished_at is None:
            self.problem(
                0,
                "truncated: no run_finished event ends the log (the run crashed or was "
                "killed, or the end of the log was cut off)",
            )
        elif self.finished is not None:
            self.check_run_finished(self.finished_at, self.finished)
        if self.sealed_at is None:
            self.problem(
                0,
                "not sealed: the log has no log_sealed record, so it is not a finished "
                "run's whole log",
            )
        self.report.sealed = self.sealed_at is not None


def verify_log(
    path: str | Path,
    transitions: Mapping[tuple[str, str], str] | None = None,
    *,
    initial: str | None = None,
    terminal: Collection[str] | None = None,
) -> VerifyReport:
    """Verify an audit log; never raises for a bad log (problems go in the report).

    Args:
        path: the run's JSONL audit log.
        transitions: the pipeline's table {(state, trigger): target}; None skips
            the legality check (hash chain, seq, seal and ending are still checked).
        initial: the pipeline's initial state (the first transition must leave it).
        terminal: the pipeline's terminal states (to check run_finished's status).
    """
    report = VerifyReport(path=str(path), transitions_checked=transitions is not None)
    checker = _Checker(report, transitions, initial, terminal)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        report.problems.append(Problem(0, f"cannot read the log: {exc}"))
        return report
    if not data:
        report.problems.append(Problem(0, "empty log: no events at all"))
        return report
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    else:
        checker.problem(len(lines), "the last line has no newline: it was cut off mid-write")
        lines.pop()  # a fragment: checking it would only repeat the problem
    for number, raw in enumerate(lines, start=1):
        checker.check_line(number, raw)
    checker.finish()
    return report


def verify_run_log(path: str | Path, spec: PipelineSpec) -> VerifyReport:
    """`verify_log` with all the pipeline tells: its transition table, its initial and
    terminal states (`agentflow verify --pipeline`, `agentflow serve`)."""
    return verify_log(
        path,
        {(s, t): target for s, t, target in derive_transitions(spec)},
        initial=spec.state_machine.initial,
        terminal=spec.state_machine.terminal,
    )
