"""verify_log: a good log passes; edits, deletions, reordering, truncation and bad moves fail."""

from __future__ import annotations

from pathlib import Path

from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.pipeline import derive_transitions
from agentflow.runtime.spec import (
    AgentSpec,
    PipelineSpec,
    StateMachineSpec,
    StateSpec,
    TransitionsSpec,
)
from agentflow.runtime.usage import Usage

SPEC = PipelineSpec(
    name="t",
    state_machine=StateMachineSpec(
        initial="initialised",
        terminal=("complete", "failed"),
        states=tuple(StateSpec(id=s) for s in ("initialised", "running", "complete", "failed")),
    ),
    agents=(
        AgentSpec(
            id="writer",
            prompt="w.md",
            transitions=TransitionsSpec(on_start="running", on_complete="complete"),
        ),
    ),
)
TABLE = {(s, t): target for s, t, target in derive_transitions(SPEC)}


def _good_lines(*, extra_moves: list[tuple[str, str, str]] | None = None) -> list[str]:
    hub = EventHub(run_id="run-1", pipeline_hash="h")
    hub.emit(EventKind.RUN_STARTED, payload={"pipeline": "t"})
    moves = [("initialised", "running", "writer.on_start"), *(extra_moves or [])]
    moves.append(("running", "complete", "writer.on_complete"))
    for source, target, trigger in moves:
        hub.emit(EventKind.AGENT_STARTED, agent="writer", item="main", attempt=1)
        hub.emit(
            EventKind.TRANSITION,
            payload={"from": source, "to": target, "trigger": trigger, "noop": source == target},
        )
    hub.emit(EventKind.ITEM_FINISHED, item="main", payload={"status": "completed"})
    usage = Usage().model_dump()
    counts = {"passed": 0, "failed": 0, "aborted": 0, "completed": 1}
    hub.emit(
        EventKind.RUN_FINISHED,
        payload={"status": "succeeded", "final_state": "complete", "usage": usage, "items": counts},
    )
    hub.seal()  # what closing the hub does
    assert hub.history is not None
    return [line for _, line in hub.history]


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "run.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _messages(path: Path) -> list[str]:
    return [f"{p.line}: {p.message}" for p in verify_log(path, TABLE).problems]


def test_good_log_verifies(tmp_path: Path) -> None:
    noop = [("running", "running", "writer.on_start")]
    path = _write(tmp_path, _good_lines(extra_moves=noop))
    report = verify_log(path, TABLE)
    assert report.ok, report.render()
    assert report.events == 10
    assert report.final_state == "complete"
    assert "OK: 10 events of run run-1, sealed" in report.render()


def test_edited_line_breaks_the_chain(tmp_path: Path) -> None:
    lines = _good_lines()
    lines[1] = lines[1].replace('"writer"', '"writer2"')
    assert '"writer2"' in lines[1]
    problems = _messages(_write(tmp_path, lines))
    assert len(problems) == 1
    assert problems[0].startswith("3: prev_hash does not match")


def test_deleted_line(tmp_path: Path) -> None:
    lines = _good_lines()
    del lines[3]
    problems = _messages(_write(tmp_path, lines))
    assert any(p.startswith("4: seq 4 where 3 was expected") for p in problems)
    assert any(p.startswith("4: prev_hash does not match") for p in problems)


def test_reordered_pair(tmp_path: Path) -> None:
    lines = _good_lines()
    lines[1], lines[2] = lines[2], lines[1]
    problems = _messages(_write(tmp_path, lines))
    assert any(p.startswith("2: seq 2 where 1 was expected") for p in problems)
    assert any("prev_hash" in p for p in problems)


def test_truncated_log(tmp_path: Path) -> None:
    lines = _good_lines()[:-2]
    assert _messages(_write(tmp_path, lines)) == [
        "0: truncated: no run_finished event ends the log (the run crashed or was killed, "
        "or the end of the log was cut off)",
        "0: not sealed: the log has no log_sealed record, so it is not a finished run's whole log",
    ]


def test_line_cut_mid_write(tmp_path: Path) -> None:
    lines = _good_lines()
    path = tmp_path / "run.jsonl"
    path.write_text("".join(line + "\n" for line in lines) + lines[0][:20])
    problems = _messages(path)
    # The fragment is named once; the whole lines before it still verify.
    assert problems == ["9: the last line has no newline: it was cut off mid-write"]


def test_illegal_transition_and_wrong_source(tmp_path: Path) -> None:
    # complete is terminal: no way out of it; and the move claims to start from 'running'.
    bad = [
        ("running", "complete", "writer.on_complete"),
        ("complete", "running", "writer.on_start"),
    ]
    problems = _messages(_write(tmp_path, _good_lines(extra_moves=bad)))
    assert "7: illegal transition: trigger 'writer.on_start' from 'complete'" in problems
    report = verify_log(
        _write(tmp_path, _good_lines(extra_moves=[("failed", "running", "writer.on_start")])), TABLE
    )
    messages = [p.message for p in report.problems]
    assert "transition from 'failed' but the previous transition left 'running'" in messages
    assert "illegal transition: trigger 'writer.on_start' from 'failed'" in messages


def test_target_must_match_the_table(tmp_path: Path) -> None:
    wrong = [("running", "failed", "writer.on_start")]
    problems = _messages(_write(tmp_path, _good_lines(extra_moves=wrong)))
    assert any("goes to 'running', not 'failed'" in p for p in problems)


def test_two_runs_mixed(tmp_path: Path) -> None:
    other = EventHub(run_id="run-2").emit(EventKind.WARNING).model_dump_json()
    lines = _good_lines()
    problems = _messages(_write(tmp_path, [*lines[:-1], other, lines[-1]]))
    assert any("two runs are mixed" in p for p in problems)


def test_without_table_and_missing_file(tmp_path: Path) -> None:
    assert verify_log(_write(tmp_path, _good_lines())).ok
    report = verify_log(tmp_path / "nope.jsonl")
    assert not report.ok and "cannot read the log" in report.render()
    (tmp_path / "empty.jsonl").write_text("")
    assert "empty log" in verify_log(tmp_path / "empty.jsonl").render()
