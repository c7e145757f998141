"""A Ray run with a run store: each model turn a worker makes is committed by the
orchestrator (its `model_calls` row) before the worker goes on, as in-process; a run
interrupted mid fan-out resumes on Ray with no committed turn asked for again."""

from __future__ import annotations

import functools
import re
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime import RunOptions, RunResult, run_pipeline
from agentflow.runtime.engine.resume import resume_run
from agentflow.runtime.engine.run_result import with_audit_outcome
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.executors.ray_executor import RayExecutor
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.pipeline import CompiledPipeline
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.store import RunStore
from tests.fake_anthropic.server import HangReply, RecordedRequest, open_fake_anthropic, text_reply

from .support import KEY, anthropic_at, load

SAFETY = 120  # seconds: turns a hang into a failure, never a timing assertion


def _topic(request: RecordedRequest) -> str:
    text = request.body["messages"][0]["content"][0]["text"]
    found = re.search(r"topic \d+", text)
    return found.group() if found else "?"


def _executor(pipeline: CompiledPipeline, base_url: str) -> RayExecutor:
    return RayExecutor(
        pipeline,
        functools.partial(load, "fanout"),
        model_factory=functools.partial(anthropic_at, base_url),
        invocations_per_actor=8,
    )


async def _start(
    store: RunStore, pipeline: CompiledPipeline, handlers: object, run_id: str, log: Path,
    executor: RayExecutor, model: Any, scope: trio.CancelScope,
) -> RunResult | None:  # fmt: skip
    committer = await store.begin_run(
        run_id=run_id, pipeline=pipeline.spec.name, source_hash=pipeline.source_sha256,
        input=5, options={}, jsonl_path=str(log),
    )  # fmt: skip
    hub = EventHub(
        run_id=run_id, pipeline_hash=pipeline.source_sha256, sinks=[FileSink(log)],
        committer=committer,
    )  # fmt: skip
    result: RunResult | None = None
    with scope:
        async with hub.running():
            result = await run_pipeline(
                pipeline, 5, handlers=handlers, hub=hub, model=model,
                options=RunOptions(backoff_scale=0, run_id=run_id, executor=executor,
                                   max_concurrency=1),
            )  # fmt: skip
    return None if result is None else with_audit_outcome(result, hub)


async def test_remote_turns_are_committed_as_model_call_rows(
    ray_cluster: Path, tmp_path: Path
) -> None:
    pipeline, handlers = load("fanout")
    run_id = "run-00000000ray1"
    async with open_fake_anthropic(
        lambda r: text_reply(f"essay on {_topic(r)}"), expected_key=KEY
    ) as fake:
        with RunStore.open(str(tmp_path / "s.db")) as store:
            executor = _executor(pipeline, fake.base_url)
            with trio.fail_after(SAFETY):
                async with (
                    AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
                    executor,
                ):
                    result = await _start(
                        store, pipeline, handlers, run_id, tmp_path / "r.jsonl",
                        executor, model, trio.CancelScope(),
                    )  # fmt: skip
            memo = store.memo(run_id)
    assert result is not None and result.ok, result
    assert sorted(memo.model_calls) == [("writer", f"item-{k}", 1, 1) for k in range(1, 6)]
    row = memo.model_calls[("writer", "item-3", 1, 1)]
    assert row.response["text"] == "essay on topic 3"
    assert "topic 3" in row.request["messages"][0]["content"][0]["text"]
    assert ("writer", "item-3", 1) in memo.steps


async def test_an_interrupted_ray_run_resumes_with_no_committed_turn_asked_again(
    ray_cluster: Path, tmp_path: Path
) -> None:
    pipeline, handlers = load("fanout")
    run_id = "run-00000000ray2"
    log = tmp_path / "r.jsonl"
    scope = trio.CancelScope()
    asked: Counter[str] = Counter()

    def answer(request: RecordedRequest) -> Any:
        topic = _topic(request)
        asked[topic] += 1
        if topic == "topic 4" and asked[topic] == 1:  # the first run stops here
            scope.cancel()
            return HangReply()
        return text_reply(f"essay on {topic}")

    async with open_fake_anthropic(answer, expected_key=KEY) as fake:
        with RunStore.open(str(tmp_path / "s.db")) as store:
            with trio.fail_after(SAFETY):
                async with AnthropicModel(api_key=KEY, base_url=fake.base_url) as model:
                    executor = _executor(pipeline, fake.base_url)
                    async with executor:
                        first = await _start(
                            store, pipeline, handlers, run_id, log, executor, model, scope
                        )
                    assert first is None  # interrupted
                    executor = _executor(pipeline, fake.base_url)
                    async with executor:
                        resumed = await resume_run(
                            pipeline, store, run_id, handlers=handlers, model=model,
                            options=RunOptions(backoff_scale=0, audit_log=log,
                                               executor=executor, max_concurrency=1),
                        )  # fmt: skip
    assert resumed.ok, resumed
    # topics 1-3 were committed before the interruption: never asked again; topic 4's
    # first request never got an answer (the crash window), so it is asked once more
    assert asked == Counter({"topic 1": 1, "topic 2": 1, "topic 3": 1, "topic 4": 2, "topic 5": 1})
    assert [item.output for item in resumed.items[1:]] == [
        f"essay on topic {k}" for k in range(1, 6)
    ]
    assert verify_log(log).ok
