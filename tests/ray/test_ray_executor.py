"""The Ray executor against the local executor: the same RunResult and the same events
(up to order and timestamps), invocations really in Ray actors, model turns over real
HTTP (the fake Anthropic API) from the actors, the orchestrator's budget, and a worker
SIGKILLed mid-invocation re-submitted by us with every item exactly once."""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agentflow.runtime import RunOptions, RunResult, run_pipeline
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.cli.executor_options import model_for_actor
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.executors.local import LocalExecutor
from agentflow.runtime.executors.ray_executor import RayExecutor
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.sinks.memory import MemorySink
from tests.fake_anthropic.server import RecordedRequest, open_fake_anthropic, text_reply

from .support import KEY, anthropic_at, event_multiset, load

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _essay(request: RecordedRequest) -> Any:
    """The fake's answer: names the work item, so each child's output is its own."""
    user = request.body["messages"][0]["content"][0]["text"]
    topic = re.search(r"topic \d+", user)
    return text_reply(f"essay on {topic.group() if topic else '?'}")


async def _run(
    name: str,
    run_input: object,
    *,
    executor: str,
    base_url: str | None = None,
    **options: Any,
) -> tuple[RunResult, list[PipelineEvent], RayExecutor | None]:
    pipeline, handlers = load(name)
    sink = MemorySink()
    model = AnthropicModel(api_key=KEY, base_url=base_url) if base_url else None
    ray_executor = None
    if executor == "ray":
        factory = functools.partial(anthropic_at, base_url) if base_url else None
        ray_executor = RayExecutor(
            pipeline, functools.partial(load, name), model_factory=factory, invocations_per_actor=8
        )
    # the pipelines say `defaults.executor: ray`: the local run says where to run instead
    run_options = RunOptions(
        backoff_scale=0, seed=7, executor=ray_executor or LocalExecutor(), **options
    )
    if ray_executor is not None:
        async with ray_executor:
            result = await _with_model(pipeline, run_input, handlers, model, sink, run_options)
    else:
        result = await _with_model(pipeline, run_input, handlers, model, sink, run_options)
    return result, sink.events, ray_executor


async def _with_model(
    pipeline: Any, run_input: object, handlers: object, model: Any, sink: MemorySink, options: Any
) -> RunResult:
    if model is None:
        return await run_pipeline(
            pipeline, run_input, handlers=handlers, sinks=[sink], options=options
        )
    async with model:
        return await run_pipeline(
            pipeline, run_input, handlers=handlers, model=model, sinks=[sink], options=options
        )


def _comparable(result: RunResult) -> dict[str, Any]:
    """The result but its run id and event count (streamed text is cut into batches
    by time: `support.event_multiset`)."""
    return result.model_dump(exclude={"run_id", "events"})


async def test_a_fan_out_gives_the_same_result_and_events_on_both_executors() -> None:
    async with open_fake_anthropic(_essay, expected_key=KEY) as fake:
        local, local_events, _ = await _run("fanout", 5, executor="local", base_url=fake.base_url)
        remote, remote_events, _ = await _run("fanout", 5, executor="ray", base_url=fake.base_url)
        assert len(fake.requests) == 10  # five writers, each run
    assert local.status == "succeeded" and local.ok
    assert _comparable(remote) == _comparable(local)
    assert "item-3: essay on topic 3" in remote.items[0].output
    assert event_multiset(remote_events) == event_multiset(local_events)
    assert remote.events == len(remote_events) - 1  # all but the seal
    assert remote.usage.model_calls == 5


async def test_ray_agents_run_in_actor_processes_and_local_ones_here() -> None:
    result, events, _ = await _run("placement", 3, executor="ray")
    pids = {
        e.agent: int(e.payload["text"].split()[1])
        for e in events
        if e.kind is EventKind.AGENT_COMPLETED and e.agent in ("here", "there")
    }
    assert result.ok
    assert pids["here"] == os.getpid()
    assert pids["there"] != os.getpid()


async def test_the_orchestrator_charges_and_enforces_the_budget() -> None:
    """Each remote model turn is charged on the run's budget as its `model_response`
    arrives: the run ends as a local one does (a run-ending budget cancels the run)."""
    async with open_fake_anthropic(_essay, expected_key=KEY) as fake:
        local, _, _ = await _run(
            "fanout", 5, executor="local", base_url=fake.base_url, max_total_tokens=30
        )
        remote, events, _ = await _run(
            "fanout", 5, executor="ray", base_url=fake.base_url, max_total_tokens=30
        )
    assert (remote.status, remote.reason) == (local.status, local.reason)
    assert remote.reason is not None and remote.reason.startswith(
        "budget exceeded: max_total_tokens=30"
    )
    assert [e.kind for e in events].count(EventKind.BUDGET_EXCEEDED) == 1
    responses = [e for e in events if e.kind is EventKind.MODEL_RESPONSE]
    assert remote.usage.model_calls == len(responses) < 5


async def test_a_killed_worker_is_resubmitted_and_every_item_runs_once(
    ray_cluster: Path,
) -> None:
    ray_cluster.unlink(missing_ok=True)  # die_once kills its worker once per marker
    result, events, executor = await _run("killed", 4, executor="ray")
    assert ray_cluster.exists()
    assert result.ok, result.reason
    # item 2's worker died; so did any other invocation in flight on the same actor
    resubmitted = [e for e in events if e.kind is EventKind.INVOCATION_RESUBMITTED]
    assert executor is not None and executor.resubmitted == len(resubmitted) >= 1
    assert ("worker", "item-2", 1) in {
        (e.agent, e.item, e.payload["resubmission"]) for e in resubmitted
    }
    assert all(e.payload["resubmission"] == 1 for e in resubmitted)
    finished = Counter(e.item for e in events if e.kind is EventKind.ITEM_FINISHED)
    assert finished == Counter({"main": 1, **{f"item-{k}": 1 for k in range(1, 5)}})
    completed = Counter(
        e.item for e in events if e.kind is EventKind.AGENT_COMPLETED and e.agent == "worker"
    )
    assert completed == Counter({f"item-{k}": 1 for k in range(1, 5)})
    assert [o.output for o in result.items[1:]] == [f"done topic {k}" for k in range(1, 5)]


HELLO = Path(__file__).resolve().parents[2] / "pipelines" / "hello_world.yaml"
REPLAY = {"model": "replay", "cassette": str(HELLO.with_suffix(".cassette.jsonl"))}


def load_hello() -> tuple[Any, object]:
    module = compile_and_import(HELLO)
    return module.compiled, module.default_handlers()


async def test_hello_world_gives_the_same_result_and_events_on_both_executors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's pipeline (a QA loop, a tool, replayed turns) with every agent on Ray."""
    monkeypatch.chdir(tmp_path)
    runs: dict[str, tuple[RunResult, list[PipelineEvent]]] = {}
    for name in ("local", "ray"):
        pipeline, handlers = load_hello()
        sink = MemorySink()
        if name == "ray":
            executor: Any = RayExecutor(
                pipeline, load_hello, model_factory=functools.partial(model_for_actor, REPLAY),
                default="ray",
            )  # fmt: skip
        else:
            executor = LocalExecutor()
        async with executor if name == "ray" else contextlib.nullcontext():
            result = await run_pipeline(
                pipeline, "ownership", handlers=handlers, sinks=[sink],
                model=model_for_actor(REPLAY, pipeline),
                options=RunOptions(backoff_scale=0, seed=7, executor=executor),
            )  # fmt: skip
        runs[name] = (result, sink.events)
    (local, local_events), (remote, remote_events) = runs["local"], runs["ray"]
    assert local.ok and local.items[0].attempts == {"writer_agent": 2, "reviewer_agent": 2}
    assert _comparable(remote) == _comparable(local)
    assert event_multiset(remote_events) == event_multiset(local_events)
    assert any(e.kind is EventKind.TOOL_RESULT for e in remote_events)
