"""`agentflow run` parks at a human step (exit 3, the answering command printed);
`agentflow answer` refuses what does not fit (exit 2, nothing recorded), records what
does, and resumes the run to its end (docs/human.md). As a user runs them: subprocesses,
the writer's model call through the real SDK against the fake Anthropic API, SQLite and
PostgreSQL stores."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import trio

from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.store import RunStore, parse_location
from tests.fake_anthropic.server import RecordedRequest, Scripted, open_fake_anthropic, text_reply
from tests.store.conftest import pg_server, store_url  # noqa: F401 - fixtures used here

ROOT = Path(__file__).resolve().parents[2]
AGENTFLOW = str(Path(sys.executable).parent / "agentflow")
KEY = "sk-ant-api03-ANSWER-CLI-FAKE-KEY-never-logged-5d2e"
DRAFT = "The new office opens on Monday, with a party at five."


def _copy_approval(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    for name in ("approval_question.md", "approval_publisher.md", "approval_reviser.md"):
        source = ROOT / "pipelines" / "prompts" / name
        (tmp_path / "prompts" / name).write_text(source.read_text())
    pipeline = tmp_path / "approval.yaml"
    pipeline.write_text((ROOT / "pipelines" / "approval.yaml").read_text())
    return pipeline


class Replies:
    """The writer's draft, then the publisher's or reviser's text, by system prompt."""

    def __init__(self) -> None:
        self.agents: list[str] = []

    def __call__(self, request: RecordedRequest) -> Scripted:
        system = str(request.body.get("system"))
        agent = (
            "writer" if "three-sentence" in system
            else "publisher" if "company blog" in system
            else "reviser"
        )  # fmt: skip
        self.agents.append(agent)
        return text_reply(DRAFT if agent == "writer" else f"{agent}: done")


async def agentflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "AGENTFLOW_STORE")
    }
    environ.update(env or {})
    with trio.fail_after(120):  # a safety net: a hang fails instead of blocking the suite
        done = await trio.run_process(
            [AGENTFLOW, *args], cwd=cwd, env=environ,
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def _parked_run(tmp_path: Path, store: str, replies: Replies) -> tuple[str, str]:
    """Run the approval pipeline until it waits; (run id, stdout)."""
    pipeline = _copy_approval(tmp_path)
    async with open_fake_anthropic(replies) as fake:
        env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.base_url}
        code, out, err = await agentflow(
            "run", str(pipeline), "--input", '{"topic": "the new office"}', "--no-ui",
            "--quiet", "--model", "anthropic", "--store", store, cwd=tmp_path, env=env,
        )  # fmt: skip
    assert code == 3, out + err
    run_id = next(x for x in out.splitlines() if x.startswith("run run-")).split()[1].rstrip(":")
    return run_id, out


async def test_a_human_step_parks_the_run_and_exit_3_names_the_answer_command(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    replies = Replies()
    run_id, out = await _parked_run(tmp_path, store_url, replies)
    assert f"run {run_id}: WAITING in state 'running'" in out
    assert "waiting for a person: agent approver on item main (assignee: the comms lead)" in out
    assert (
        f"  answer it: agentflow answer {run_id} --item main --agent approver @answer.json "
        f"--store {store_url}"
    ) in out
    assert "output:" not in out  # no final output before the person answered
    assert replies.agents == ["writer"]
    code, shown, _ = await agentflow("show", run_id, "--store", store_url, cwd=tmp_path)
    assert code == 0
    assert f"run {run_id}: WAITING" in shown
    assert "  main: waiting" in shown
    assert "waiting for a person: agent approver on item main, assignee the comms lead" in shown
    assert f"Approve this announcement about the new office for publication?\\n\\n{DRAFT}" in shown
    code, listed, _ = await agentflow(
        "runs", "--status", "waiting", "--json", "--store", store_url, cwd=tmp_path
    )
    assert code == 0
    row = json.loads(listed)
    assert row["id"] == run_id and row["status"] == "waiting"
    assert row["waiting_for"] == [
        {"agent": "approver", "item": "main", "assignee": "the comms lead", "answered_by": None}
    ]
    log = tmp_path / ".agentflow" / "runs" / f"{run_id}.jsonl"
    report = verify_log(log)
    assert report.ok, report.problems


async def test_an_answer_that_does_not_fit_exits_2_and_records_nothing(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    run_id, _ = await _parked_run(tmp_path, store_url, Replies())
    with RunStore(parse_location(store_url)) as store:
        before = list(store.lines(run_id))
    (tmp_path / "answer.json").write_text('{"approved": "sure", "coment": "typo"}')
    code, out, err = await agentflow(
        "answer", run_id, "--item", "main", "--agent", "approver", "@answer.json",
        "--store", store_url, cwd=tmp_path,
    )  # fmt: skip
    assert code == 2, out + err
    assert err == (
        "agentflow: error: the answer does not fit the output of agent 'approver' "
        "(ApproverOutput): approved: Input should be a valid boolean, unable to interpret "
        "input (got 'sure'); comment: missing (the answer needs this field); coment: not a "
        "field of this answer\n"
    )
    code, _, err = await agentflow(
        "answer", run_id, "--item", "main", "--agent", "approver", '{"approved": true,',
        "--store", store_url, cwd=tmp_path,
    )  # fmt: skip
    assert code == 2
    assert err.startswith("agentflow: error: the answer:1:19: not JSON: Expecting")
    code, _, err = await agentflow(
        "answer", run_id, "--item", "item-9", "--agent", "approver", '{"approved": true}',
        "--store", store_url, cwd=tmp_path,
    )  # fmt: skip
    assert code == 2
    assert "has no open human step of agent 'approver' on item 'item-9'" in err
    assert "(open: --item main --agent approver)" in err
    with RunStore(parse_location(store_url)) as store:
        assert list(store.lines(run_id)) == before
        assert ("approver", "main", 1) not in store.memo(run_id).steps


async def test_an_answer_is_recorded_with_no_resume_and_the_log_still_verifies(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    run_id, _ = await _parked_run(tmp_path, store_url, Replies())
    code, out, err = await agentflow(
        "answer", run_id, "--item", "main", "--agent", "approver",
        '{"approved": true, "comment": "ship it"}', "--by", "alice", "--no-resume",
        "--store", store_url, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, out + err
    assert out == (
        f"answer recorded: run {run_id}, agent approver on item main (attempt 1), by alice\n"
        f"resume it with: agentflow resume {run_id}\n"
    )
    with RunStore(parse_location(store_url)) as store:
        last = json.loads(list(store.lines(run_id))[-1])
        assert store.run(run_id).status == "waiting"
    assert last["kind"] == "human_answered"
    assert last["payload"] == {"by": "alice", "answer": {"approved": True, "comment": "ship it"}}
    exported = tmp_path / "exported.jsonl"
    code, text, _ = await agentflow("export", run_id, "--store", store_url, cwd=tmp_path)
    exported.write_text(text)
    report = verify_log(exported)
    assert report.ok, report.problems
    code, _, err = await agentflow(
        "answer", run_id, "--item", "main", "--agent", "approver", '{"approved": false, '
        '"comment": "no"}', "--store", store_url, cwd=tmp_path,
    )  # fmt: skip
    assert code == 2
    assert "is answered already (by alice); resume the run" in err


async def test_answer_resumes_the_run_to_its_end(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    replies = Replies()
    async with open_fake_anthropic(replies) as fake:
        env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.base_url}
        run_id, _ = await _parked_run(tmp_path, store_url, replies)
        code, out, err = await agentflow(
            "answer", run_id, "--item", "main", "--agent", "approver",
            '{"approved": false, "comment": "mention the party"}', "--no-ui", "--quiet",
            "--store", store_url, cwd=tmp_path, env=env,
        )  # fmt: skip
    assert code == 0, out + err
    assert f"run {run_id}: SUCCEEDED" in out
    assert replies.agents == ["writer", "reviser"]  # the writer is not asked again
    with RunStore(parse_location(store_url)) as store:
        record = store.run(run_id)
        lines = list(store.lines(run_id))
    assert record.status == "succeeded"
    assert record.output == "reviser: done"
    exported = tmp_path / "exported.jsonl"
    exported.write_text("".join(line + "\n" for line in lines))
    report = verify_log(exported)
    assert report.ok, report.problems


FAN_OUT = """\
name: approve-each
input:
  topic: str
agents:
  - id: planner
    instructions: "List the sections of a note about {{ input.topic }}."
    output: {sections: list[str]}
    dispatch: {strategy: parallel_fan_out, target: approver, items: sections, reduce: editor}
  - id: approver
    kind: human
    instructions: "Keep the section {{ item }}?"
    output: {keep: bool}
  - id: editor
    instructions: "Join the kept sections: {{ children }}"
"""


async def test_a_dry_run_parks_each_child_then_the_answers_finish_the_fan_out(
    tmp_path: Path,
) -> None:
    (tmp_path / "fan.yaml").write_text(FAN_OUT)
    code, out, err = await agentflow(
        "run", "fan.yaml", "--input", '{"topic": "x"}', "--model", "dry-run", "--items", "2",
        "--no-ui", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert code == 3, out + err
    run_id = next(x for x in out.splitlines() if x.startswith("run run-")).split()[1].rstrip(":")
    assert "(3 waiting;" in out  # the two children that ask, and main above them
    assert "reason: 2 item(s) wait for a person (first: item-1:" in out
    for child in ("item-1", "item-2"):
        assert f"answer it: agentflow answer {run_id} --item {child} --agent approver" in out
    report = verify_log(tmp_path / ".agentflow" / "runs" / f"{run_id}.jsonl")
    assert report.ok, report.problems
    code, out, err = await agentflow(
        "answer", run_id, "--item", "item-1", "--agent", "approver", '{"keep": true}',
        "--no-ui", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert code == 3, out + err  # resumed, and waits again: item-2 is still open
    assert "reason: 1 item(s) wait for a person (first: item-2:" in out
    code, out, err = await agentflow(
        "answer", run_id, "--item", "item-2", "--agent", "approver", '{"keep": false}',
        "--no-ui", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, out + err
    assert f"run {run_id}: SUCCEEDED" in out
    with RunStore(parse_location(str(tmp_path / ".agentflow" / "agentflow.db"))) as store:
        events = [json.loads(line) for line in store.lines(run_id)]
    assert [e["agent"] for e in events if e["kind"] == "agent_completed"][-1] == "editor"
    report = verify_log(tmp_path / ".agentflow" / "runs" / f"{run_id}.jsonl")
    assert report.ok, report.problems
