"""Every branch of a route pipeline walked offline: `agentflow run --model dry-run` with
`--route`, `--fail-first` and `--items`, end to end (compiled YAML, real engine, audit log)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentflow.runtime.cli.main import main

SUPPORT = """
name: support
agents:
  - id: triage
    instructions: Route the ticket.
    dispatch:
      strategy: route
      cases:
        billing: billing_agent
        bug: bug_agent
        question: end
        spam: abort
  - id: billing_agent
    instructions: Answer the billing question.
  - id: bug_agent
    instructions: Triage the bug.
"""

DRAFTING = """
name: drafting
agents:
  - id: writer
    instructions: Write a draft.
    dispatch: {strategy: sequential, target: reviewer}
  - id: reviewer
    instructions: Review the draft.
    retry: {max_attempts: 2, backoff_ms: 0}
    on_fail: {action: feedback_and_retry, target: writer}
    dispatch: {strategy: sequential, target: critic}
  - id: critic
    instructions: Judge the draft.
    output:
      verdict: {enum: [revise, accept]}
      note: str
    dispatch:
      strategy: route
      on: verdict
      cases:
        revise: {target: writer, max_iterations: 2, on_exhausted: ON_EXHAUSTED}
        accept: end
"""

DESK = """
name: desk
agents:
  - id: classify
    instructions: Classify the ticket.
    output:
      category: {enum: [billing, bug, question]}
    dispatch:
      strategy: route
      on: category
      cases: {bug: escalate}
      default: human
  - id: escalate
    instructions: Is it urgent?
    output:
      urgent: bool
    dispatch:
      strategy: route
      on: urgent
      cases: {true: pager, false: end}
  - id: pager
    instructions: Page the on-call engineer.
  - id: human
    instructions: Answer by hand.
"""

MAP_REDUCE = """
name: mapred
agents:
  - id: planner
    instructions: Plan the subjects.
    output:
      subjects: list[str]
    dispatch: {strategy: parallel_fan_out, items: subjects, target: worker, reduce: combine}
  - id: worker
    instructions: Work on one subject.
  - id: combine
    instructions: Combine the answers.
"""


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


class Walk:
    """One dry run's exit code and audit log."""

    def __init__(self, code: int, events: list[dict[str, Any]]) -> None:
        self.code = code
        self.events = events

    def of(self, kind: str, agent: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind and agent in (None, e["agent"])]

    def started(self) -> list[tuple[str, int]]:
        return [(e["agent"], e["attempt"]) for e in self.of("agent_started")]

    def routes(self) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.of("route_chosen")]

    def item_status(self, item: str = "main") -> str:
        (finished,) = [e for e in self.of("item_finished") if e["item"] == item]
        return str(finished["payload"]["status"])


def walk(yaml_text: str, *options: str) -> Walk:
    pipeline = Path("pipeline.yaml")
    pipeline.write_text(yaml_text)
    argv = ["run", str(pipeline), "x", "--model", "dry-run", "--no-ui", "--quiet"]
    code = main([*argv, "--jsonl", "run.jsonl", *options])
    lines = Path("run.jsonl").read_text().splitlines()
    return Walk(code, [json.loads(line) for line in lines])


def test_a_router_takes_its_first_listed_case_unless_told() -> None:
    run = walk(SUPPORT)
    assert run.code == 0
    assert run.started() == [("triage", 1), ("billing_agent", 1)]
    assert run.routes() == [
        {"on": "route", "value": "billing", "case": "billing", "to": "billing_agent"}
    ]


@pytest.mark.parametrize(
    ("case", "after", "status", "code"),
    [
        ("billing", ["billing_agent"], "completed", 0),
        ("bug", ["bug_agent"], "completed", 0),
        ("question", [], "completed", 0),
        ("spam", [], "aborted", 1),
    ],
)
def test_every_case_of_a_router_is_reachable_offline(
    case: str, after: list[str], status: str, code: int
) -> None:
    run = walk(SUPPORT, "--route", f"triage={case}")
    assert run.code == code
    assert [agent for agent, _ in run.started()] == ["triage", *after]
    (chosen,) = run.routes()
    assert (chosen["value"], chosen["case"]) == (case, case)
    assert run.item_status() == status


@pytest.mark.parametrize(
    ("told", "iterations"),
    [("accept", 1), ("revise,accept", 2), ("revise,revise,accept", 3)],
)
def test_a_route_sequence_drives_a_bounded_loop_to_a_chosen_iteration_count(
    told: str, iterations: int
) -> None:
    run = walk(DRAFTING.replace("ON_EXHAUSTED", "abort"), "--route", f"critic={told}")
    assert run.code == 0
    assert [attempt for agent, attempt in run.started() if agent == "writer"] == list(
        range(1, iterations + 1)
    )
    assert [(r["case"], r.get("iteration")) for r in run.routes()] == [
        *(("revise", k) for k in range(1, iterations)),
        ("accept", None),
    ]
    assert run.item_status() == "passed"


def test_the_loop_past_max_iterations_reaches_on_exhausted_end() -> None:
    run = walk(DRAFTING.replace("ON_EXHAUSTED", "end"), "--route", "critic=revise")
    assert run.code == 0
    last = run.routes()[-1]
    assert last == {
        "on": "verdict",
        "value": "revise",
        "case": "revise",
        "to": "end",
        "iteration": 3,
        "max_iterations": 2,
        "exhausted": True,
    }
    assert [agent for agent, _ in run.started()].count("critic") == 3
    assert run.item_status() == "passed"


def test_the_loop_past_max_iterations_reaches_on_exhausted_abort() -> None:
    run = walk(DRAFTING.replace("ON_EXHAUSTED", "abort"), "--route", "critic=revise")
    assert run.code == 1
    assert run.routes()[-1]["exhausted"] is True and run.routes()[-1]["to"] == "abort"
    assert run.item_status() == "aborted"
    (aborted,) = run.of("item_aborted", "critic")
    reason = str(aborted["payload"]["reason"])
    assert "'critic'" in reason and "'revise'" in reason and "2" in reason, reason


def test_fail_first_counts_a_qa_agent_in_a_loop_per_item_not_per_iteration() -> None:
    run = walk(
        DRAFTING.replace("ON_EXHAUSTED", "abort"),
        "--fail-first",
        "1",
        "--route",
        "critic=revise,accept",
    )
    assert run.code == 0
    assert [e["payload"]["passed"] for e in run.of("qa_verdict")] == [False, True, True]
    assert run.started() == [
        ("writer", 1),
        ("reviewer", 1),
        ("writer", 2),  # the QA retry
        ("reviewer", 2),
        ("critic", 1),
        ("writer", 3),  # the loop's second iteration
        ("reviewer", 3),
        ("critic", 2),
    ]


def test_fail_first_past_max_attempts_aborts_before_the_router() -> None:
    run = walk(DRAFTING.replace("ON_EXHAUSTED", "abort"), "--fail-first", "2")
    assert run.code == 1
    assert [e["payload"]["passed"] for e in run.of("qa_verdict")] == [False, False]
    assert not run.of("agent_started", "critic")
    assert run.item_status() == "aborted"


def test_enum_and_bool_routers_take_their_first_case() -> None:
    run = walk(DESK)
    assert [agent for agent, _ in run.started()] == ["classify", "escalate", "pager"]
    assert [(r["value"], r["case"]) for r in run.routes()] == [("bug", "bug"), (True, "true")]


def test_a_bool_router_told_false() -> None:
    run = walk(DESK, "--route", "escalate=false")
    assert [agent for agent, _ in run.started()] == ["classify", "escalate"]
    assert run.routes()[-1] == {"on": "urgent", "value": False, "case": "false", "to": "end"}


def test_default_takes_the_routers_default_case() -> None:
    run = walk(DESK, "--route", "classify=default")
    assert [agent for agent, _ in run.started()] == ["classify", "human"]
    assert run.routes() == [
        {"on": "category", "value": "billing", "case": "default", "to": "human"}
    ]


@pytest.mark.parametrize("count", [0, 4])
def test_a_typed_fan_out_gets_items_children_and_its_reduce_runs_once(count: int) -> None:
    run = walk(MAP_REDUCE, "--items", str(count))
    assert run.code == 0
    created = [e["payload"]["payload"] for e in run.of("item_created")]
    assert created == [f"[dry-run] subjects {k} of {count}" for k in range(1, count + 1)]
    assert len(run.of("agent_started", "worker")) == count
    assert [e["item"] for e in run.of("agent_started", "combine")] == ["main"]


def refused(capsys: pytest.CaptureFixture[str], yaml_text: str, *options: str) -> str:
    Path("pipeline.yaml").write_text(yaml_text)
    argv = ["run", "pipeline.yaml", "x", "--model", "dry-run", "--no-ui", "--jsonl", "run.jsonl"]
    code = main([*argv, *options])
    captured = capsys.readouterr()
    assert code == 2 and not Path("run.jsonl").exists(), captured
    return captured.err.splitlines()[-1]


def test_an_unknown_case_is_refused_before_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, SUPPORT, "--route", "triage=bug,bilings") == (
        "agentflow: error: --route triage=bug,bilings: router 'triage' has no case 'bilings' "
        "(did you mean 'billing'?); its cases: billing, bug, question, spam"
    )


def test_an_unknown_router_is_refused_before_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, DESK, "--route", "clasify=bug") == (
        "agentflow: error: --route clasify=bug: 'clasify' is not an agent of pipeline 'desk' "
        "(did you mean 'classify'?); its routers: classify, escalate"
    )


def test_default_without_a_default_case_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(capsys, SUPPORT, "--route", "triage=default") == (
        "agentflow: error: --route triage=default: router 'triage' has no case 'default'; "
        "its cases: billing, bug, question, spam"
    )


TEAM = """
name: team
agents:
  - id: worker
    instructions: Work on it.
    dispatch: {strategy: sequential, target: judge}
  - id: judge
    instructions: Is it done?
    dispatch:
      strategy: route
      cases:
        again: {target: worker, max_iterations: 2, on_exhausted: end}
        stop: end
"""

PARENT = """
name: parent
agents:
  - id: team
    pipeline: team.yaml
    dispatch: {strategy: sequential, target: wrap_up}
  - id: wrap_up
    instructions: Wrap up.
"""


@pytest.mark.parametrize(("told", "workers"), [("stop", 1), ("again,stop", 2), ("again", 3)])
def test_a_router_inside_a_sub_pipeline_is_told_by_its_namespaced_id(
    told: str, workers: int
) -> None:
    Path("team.yaml").write_text(TEAM)
    run = walk(PARENT, "--route", f"team.judge={told}")
    assert run.code == 0
    ran = [agent for agent, _ in run.started()]
    assert ran.count("team.worker") == workers and ran[-1] == "wrap_up"
    assert run.routes()[-1]["case"] == told.split(",")[-1]


def test_an_unknown_sub_pipeline_router_is_refused_before_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("team.yaml").write_text(TEAM)
    assert refused(capsys, PARENT, "--route", "team.jduge=stop") == (
        "agentflow: error: --route team.jduge=stop: 'team.jduge' is not an agent of pipeline "
        "'parent' (did you mean 'team.judge'?); its routers: team.judge"
    )
    assert refused(capsys, PARENT, "--route", "team.judge=stpo") == (
        "agentflow: error: --route team.judge=stpo: router 'team.judge' has no case 'stpo' "
        "(did you mean 'stop'?); its cases: again, stop"
    )


BOSS = """
name: boss
agents:
  - id: boss
    instructions: Who works next?
    dispatch:
      strategy: route
      cases:
        more: {target: team, max_iterations: 2, on_exhausted: end}
        done: end
  - id: team
    pipeline: team.yaml
    dispatch: {strategy: sequential, target: boss}
"""


def test_each_run_of_a_sub_pipeline_starts_its_route_sequence_again() -> None:
    Path("team.yaml").write_text(TEAM)
    run = walk(BOSS, "--route", "team.judge=again,stop")
    assert run.code == 0
    judges = [(e["item"], e["payload"]["case"]) for e in run.of("route_chosen", "team.judge")]
    assert [case for _, case in judges] == ["again", "stop", "again", "stop"]
    assert len({item for item, _ in judges}) == 2  # one child item per run of the team
