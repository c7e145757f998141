"""Audit-log verification: is this JSONL file the untouched record of one whole run?

`verify_log` checks, line by line:

- each line parses as a `PipelineEvent`, and all carry one `run_id`;
- `seq` runs 0, 1, 2, ... with no gap (a deleted or reordered line breaks it);
- each `prev_hash` is the SHA-256 of the previous line's exact bytes (without
  the newline), and the first is empty (an edited line breaks the next link);
- given the pipeline's TRANSITIONS table (string states and triggers, e.g. from
  `derive_transitions(spec)`), every `transition` with `noop: false` is a legal
  move and starts from the state the previous transition left;
- the log ends with `run_finished` (else "truncated: no run_finished"). Only
  `sink_error` events may follow it: the hub reports a sink that failed while
  the run's last events were delivered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .events import EventKind, PipelineEvent

__all__ = ["Problem", "VerifyReport", "verify_log"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the log; `line` is 1-based (0: the file as a whole)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class VerifyReport:
    """The verdict on one audit log."""

    path: str
    events: int = 0
    run_id: str | None = None
    final_state: str | None = None
    transitions_checked: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        """The report as the CLI prints it."""
        if self.ok:
            checked = " and transitions" if self.transitions_checked else ""
            return (
                f"{self.path}: OK: {self.events} events of run {self.run_id}, "
                f"hash chain{checked} verified, final state {self.final_state}"
            )
        lines = [f"{self.path}: {len(self.problems)} problem(s):"]
        lines += [
            f"  {self.path}:{p.line}: {p.message}" if p.line else f"  {p.message}"
            for p in self.problems
        ]
        return "\n".join(lines)


class _Checker:
    def __init__(self, report: VerifyReport, transitions: Mapping[tuple[str, str], str] | None):
        self.report = report
        self.transitions = transitions
        self.prev_hash = ""
        self.expected_seq = 0
        self.state: str | None = None  # the state the previous transition left
        self.finished_at: int | None = None  # line number of run_finished

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
        if self.report.run_id is None:
            self.report.run_id = event.run_id
        elif event.run_id != self.report.run_id:
            self.problem(
                number,
                f"run_id {event.run_id!r} differs from {self.report.run_id!r}: "
                "two runs are mixed in one log",
            )
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
        self.prev_hash = digest
        if self.finished_at is not None and event.kind is not EventKind.SINK_ERROR:
            self.problem(number, f"{event.kind.value} event after run_finished")
        if event.kind is EventKind.RUN_FINISHED:
            self.finished_at = number
        if event.kind is EventKind.TRANSITION:
            self.check_transition(number, event)

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
        self.state = target
        self.report.final_state = target


def verify_log(
    path: str | Path, transitions: Mapping[tuple[str, str], str] | None = None
) -> VerifyReport:
    """Verify an audit log; never raises for a bad log (problems go in the report).

    Args:
        path: the run's JSONL audit log.
        transitions: the pipeline's table {(state, trigger): target}; None skips
            the legality check (hash chain, seq and ending are still checked).
    """
    report = VerifyReport(path=str(path), transitions_checked=transitions is not None)
    checker = _Checker(report, transitions)
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
    if checker.finished_at is None:
        report.problems.append(Problem(0, "truncated: no run_finished event ends the log"))
    return report
