"""Human steps at run time (docs/human.md), as a library runs them: the item parks, the
run ends `waiting`, an answer is validated and committed, and a resume finishes the run.

Model agents answer through the real SDK against the fake Anthropic API; the run store
is SQLite and PostgreSQL (`store_url`, tests/store/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime.cli.compiled_loader import CompiledModule, compile_and_import
from agentflow.runtime.engine.dispatcher import HUMAN_NEEDS_STORE
from agentflow.runtime.engine.human import HumanAnswerError, human_steps, record_answer
from agentflow.runtime.engine.resume import resume_run
from agentflow.runtime.engine.runner import RunOptions, RunResult, run_pipeline
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.store import RunStore, parse_location
from tests.fake_anthropic.server import (
    RecordedRequest,
    Scripted,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)
from tests.store.conftest import pg_server, store_url  # noqa: F401 - fixtures used here

KEY = "sk-ant-api03-HUMAN-FAKE-KEY-never-in-the-log-77c1"
DRAFT = "Our new office opens on Monday."

BROADCAST = """\
name: approve-broadcast
input:
  topic: str
agents:
  - id: writer
    instructions: "Write about {{ input.topic }}."
    dispatch: {strategy: parallel_broadcast, targets: [approver, notifier]}
  - id: approver
    human:
      question: question.md
      assignee: the comms lead
    output: {approved: bool, comment: str}
    dispatch:
      strategy: route
      on: approved
      cases: {true: publisher, false: abort}
  - id: notifier
    instructions: "Tell the team a draft about {{ input.topic }} waits for review."
  - id: publisher
    instructions: "Publish: {{ outputs.writer.text }} ({{ outputs.approver.comment }})"
"""
QUESTION = "Publish this?\n{{ outputs.writer.text }}\n"


def _by_agent(replies: dict[str, list[Scripted]]) -> Any:
    """The fake API answers each agent from its own queue (its system prompt names it)."""

    def answer(request: RecordedRequest) -> Scripted:
        system = str(request.body.get("system"))
        for agent, queue in replies.items():
            if agent in system:
                return queue.pop(0)
        raise AssertionError(f"no scripted reply for {system[:80]!r}")

    return answer


def _module(tmp_path: Path, yaml: str, files: dict[str, str]) -> CompiledModule:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml)
    return compile_and_import(path)


async def _run(
    module: CompiledModule,
    store: RunStore | None,
    base_url: str,
    run_id: str,
    log: Path,
    topic: str = "the office",
) -> RunResult:
    compiled = module.compiled
    hub = EventHub(run_id=run_id, pipeline_hash=compiled.source_sha256)
    if store is not None:
        committer = await store.begin_run(
            run_id=run_id,
            pipeline=compiled.spec.name,
            pipeline_path=compiled.source_path,
            source_hash=compiled.source_sha256,
            input={"topic": topic},
            options={},
            model="anthropic",
            jsonl_path=str(log),
        )
        hub.commit_to(committer)
    from agentflow.runtime.sinks.file import FileSink

    hub.add_sink(FileSink(log))
    model = AnthropicModel(api_key=KEY, base_url=base_url, backoff_base_s=0.01)
    async with model, hub.running():
        return await run_pipeline(
            compiled,
            {"topic": topic},
            handlers=module.default_handlers(),
            model=model,
            hub=hub,
            options=RunOptions(run_id=run_id, backoff_scale=0.0),
        )


def _events(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in store.lines(run_id)]


async def test_the_item_parks_other_work_runs_on_and_the_run_waits(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    module = _module(tmp_path, BROADCAST, {"question.md": QUESTION})
    replies = {"Write about": [text_reply(DRAFT)], "Tell the team": [text_reply("Told.")]}
    store = RunStore(parse_location(store_url))
    try:
        with trio.fail_after(60):  # a safety net: a hang fails instead of blocking the suite
            async with open_fake_anthropic(_by_agent(replies)) as fake:
                result = await _run(module, store, fake.base_url, "run-park", tmp_path / "a.jsonl")
        assert result.status == "waiting", result.reason
        assert result.reason == (
            "1 item(s) wait for a person (first: main: waiting for a person to answer 'approver')"
        )
        assert [(i.id, i.status) for i in result.items] == [("main", "waiting")]
        events = _events(store, "run-park")
        kinds = [e["kind"] for e in events]
        asked = next(e for e in events if e["kind"] == "human_requested")
        assert (asked["agent"], asked["item"], asked["attempt"]) == ("approver", "main", 1)
        assert asked["payload"]["question"] == f"Publish this?\n{DRAFT}\n"
        assert asked["payload"]["assignee"] == "the comms lead"
        schema = asked["payload"]["output_schema"]
        assert set(schema["properties"]) == {"approved", "comment"}
        assert set(schema["required"]) == {"approved", "comment"}
        # the notifier ran beside the waiting approver; nothing finished the item
        assert any(e["kind"] == "agent_completed" and e["agent"] == "notifier" for e in events)
        assert "item_finished" not in kinds
        finished = next(e for e in events if e["kind"] == "run_finished")
        assert finished["payload"]["status"] == "waiting"
        assert finished["payload"]["items"]["waiting"] == 1
        assert store.run("run-park").status == "waiting"
        steps = human_steps(store, "run-park")
        assert [(s.agent, s.item, s.attempt, s.answered_by) for s in steps] == [
            ("approver", "main", 1, None)
        ]
        report = verify_log(tmp_path / "a.jsonl")
        assert report.ok, report.problems
    finally:
        store.close()


async def test_without_a_store_the_human_step_fails_its_item(tmp_path: Path) -> None:
    module = _module(tmp_path, BROADCAST, {"question.md": QUESTION})
    replies = {"Write about": [text_reply(DRAFT)], "Tell the team": [text_reply("Told.")]}
    with trio.fail_after(60):
        async with open_fake_anthropic(_by_agent(replies)) as fake:
            result = await _run(module, None, fake.base_url, "run-nostore", tmp_path / "b.jsonl")
    assert result.status == "failed"
    main = result.items[0]
    assert main.status == "aborted"
    assert main.reason == (
        "agent 'approver' failed: RuntimeError: " + HUMAN_NEEDS_STORE.format(agent="approver")
    )


async def _parked(store: RunStore, tmp_path: Path, run_id: str) -> CompiledModule:
    module = _module(tmp_path, BROADCAST, {"question.md": QUESTION})
    replies = {"Write about": [text_reply(DRAFT)], "Tell the team": [text_reply("Told.")]}
    with trio.fail_after(60):
        async with open_fake_anthropic(_by_agent(replies)) as fake:
            result = await _run(module, store, fake.base_url, run_id, tmp_path / f"{run_id}.jsonl")
    assert result.status == "waiting"
    return module


async def test_an_answer_that_does_not_fit_is_refused_and_nothing_is_recorded(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = RunStore(parse_location(store_url))
    try:
        module = await _parked(store, tmp_path, "run-bad")
        models = module.module.HUMAN_ANSWERS
        before = list(store.lines("run-bad"))
        with pytest.raises(HumanAnswerError) as refused:
            await record_answer(
                store, "run-bad", models, item="main", agent="approver",
                answer={"approved": "perhaps", "extra": 1}, by="alice",
            )  # fmt: skip
        assert str(refused.value) == (
            "the answer does not fit the output of agent 'approver' (ApproverOutput): "
            "approved: Input should be a valid boolean, unable to interpret input (got "
            "'perhaps'); comment: missing (the answer needs this field); extra: not a field "
            "of this answer"
        )
        with pytest.raises(HumanAnswerError, match="no open human step of agent 'notifier'"):
            await record_answer(
                store, "run-bad", models, item="main", agent="notifier", answer={}, by="alice"
            )
        assert list(store.lines("run-bad")) == before
        assert store.memo("run-bad").steps.get(("approver", "main", 1)) is None
    finally:
        store.close()


async def test_an_answer_is_committed_then_the_resume_finishes_the_run(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = RunStore(parse_location(store_url))
    try:
        module = await _parked(store, tmp_path, "run-ok")
        models = module.module.HUMAN_ANSWERS
        answer = {"approved": True, "comment": "ship it"}
        step = await record_answer(
            store, "run-ok", models, item="main", agent="approver", answer=answer, by="alice"
        )
        assert step.answered_by == "alice"
        answered = _events(store, "run-ok")[-1]
        assert answered["kind"] == "human_answered"
        assert answered["payload"] == {"by": "alice", "answer": answer}
        assert store.memo("run-ok").steps[("approver", "main", 1)]["data"] == answer
        assert store.run("run-ok").status == "waiting"  # until it is resumed
        with pytest.raises(HumanAnswerError, match="answered already \\(by alice\\)"):
            await record_answer(
                store, "run-ok", models, item="main", agent="approver", answer=answer, by="bob"
            )
        replies = {"Publish:": [text_reply("Published.")]}
        with trio.fail_after(60):
            async with open_fake_anthropic(_by_agent(replies)) as fake:
                model = AnthropicModel(api_key=KEY, base_url=fake.base_url, backoff_base_s=0.01)
                async with model:
                    result = await resume_run(
                        module.compiled, store, "run-ok",
                        handlers=module.default_handlers(), model=model,
                        options=RunOptions(backoff_scale=0.0),
                    )  # fmt: skip
            # the resume asked the model only for what had not run: the publisher
            assert len(fake.requests) == 1
        assert result.status == "succeeded", result.reason
        assert result.items[0].output == "Published."
        assert store.run("run-ok").status == "succeeded"
        assert human_steps(store, "run-ok") == []
        exported = tmp_path / "exported.jsonl"
        exported.write_text("".join(line + "\n" for line in store.lines("run-ok")))
        report = verify_log(exported)
        assert report.ok, report.problems
    finally:
        store.close()


QA_AFTER_HUMAN = """\
name: approve-checked
input:
  topic: str
agents:
  - id: writer
    instructions: "Write about {{ input.topic }}."
    dispatch: {strategy: sequential, target: approver}
  - id: approver
    kind: human
    instructions: "Publish this? {{ outputs.writer.text }}"
    output: {approved: bool, comment: str}
    dispatch: {strategy: sequential, target: checker}
  - id: checker
    instructions: "Check the reviewer's comment: {{ upstream }}"
    on_fail: {action: feedback_and_retry, target: approver}
"""
REJECT = {"passed": False, "issues": [{"message": "say why it is approved"}]}
ACCEPT = {"passed": True, "issues": []}


async def _resume(module: CompiledModule, store: RunStore, run_id: str, replies: Any) -> RunResult:
    with trio.fail_after(60):
        async with open_fake_anthropic(replies) as fake:
            model = AnthropicModel(api_key=KEY, base_url=fake.base_url, backoff_base_s=0.01)
            async with model:
                return await resume_run(
                    module.compiled, store, run_id, handlers=module.default_handlers(),
                    model=model, options=RunOptions(backoff_scale=0.0),
                )  # fmt: skip


async def test_a_qa_rejection_asks_the_person_again(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    module = _module(tmp_path, QA_AFTER_HUMAN, {})
    models = module.module.HUMAN_ANSWERS
    store = RunStore(parse_location(store_url))
    try:
        with trio.fail_after(60):
            async with open_fake_anthropic(_by_agent({"Write about": [text_reply(DRAFT)]})) as f:
                first = await _run(module, store, f.base_url, "run-qa", tmp_path / "qa.jsonl")
        assert first.status == "waiting"
        await record_answer(
            store, "run-qa", models, item="main", agent="approver",
            answer={"approved": True, "comment": "fine"}, by="alice",
        )  # fmt: skip
        checker = {"Check the reviewer": [tool_reply("submit_verdict", REJECT)]}
        second = await _resume(module, store, "run-qa", _by_agent(checker))
        # the checker rejected the answer: its retry is the approver's attempt 2, asked anew
        assert second.status == "waiting", second.reason
        asked = [e for e in _events(store, "run-qa") if e["kind"] == "human_requested"]
        assert [e["attempt"] for e in asked] == [1, 2]
        assert "feedback" not in asked[0]["payload"]
        assert asked[1]["payload"]["feedback"] == [
            {"severity": "blocking", "message": "say why it is approved", "location": None,
             "suggestion": None}
        ]  # fmt: skip
        assert [(s.agent, s.attempt) for s in human_steps(store, "run-qa")] == [("approver", 2)]
        await record_answer(
            store, "run-qa", models, item="main", agent="approver",
            answer={"approved": True, "comment": "clear and correct"}, by="alice",
        )  # fmt: skip
        checker = {"Check the reviewer": [tool_reply("submit_verdict", ACCEPT)]}
        third = await _resume(module, store, "run-qa", _by_agent(checker))
        assert third.status == "succeeded", third.reason
        assert third.items[0].attempts == {"writer": 1, "approver": 2, "checker": 2}
        exported = tmp_path / "qa-exported.jsonl"
        exported.write_text("".join(line + "\n" for line in store.lines("run-qa")))
        report = verify_log(exported)
        assert report.ok, report.problems
    finally:
        store.close()
