"""What a Ray run reserves on the cluster: `max_model_calls` (`--ray-model-calls`)
bounds the model calls in flight through the `agentflow_model_calls` resource its
actors hold, and an agent's `resources:` are held by its own actors."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import trio

from agentflow.runtime import RunOptions, RunResult, run_pipeline
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.executors.ray_executor import RayExecutor
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.sinks.memory import MemorySink
from tests.fake_anthropic.server import open_fake_anthropic, text_reply

from .support import KEY, anthropic_at, load

pytestmark = pytest.mark.usefixtures("ray_cluster")


async def _run(max_model_calls: int | None) -> tuple[RunResult, list[PipelineEvent]]:
    # each answer trickles (0.05 s between stream events), so writers overlap
    async with open_fake_anthropic(
        lambda request: text_reply("an essay", delay_s=0.05), expected_key=KEY
    ) as fake:
        pipeline, handlers = load("resources")
        executor = RayExecutor(
            pipeline, functools.partial(load, "resources"),
            model_factory=functools.partial(anthropic_at, fake.base_url),
            invocations_per_actor=8, max_model_calls=max_model_calls,
        )  # fmt: skip
        sink = MemorySink()
        with trio.fail_after(120):
            async with AnthropicModel(api_key=KEY, base_url=fake.base_url) as model, executor:
                result = await run_pipeline(
                    pipeline, 6, handlers=handlers, model=model, sinks=[sink],
                    options=RunOptions(backoff_scale=0, executor=executor),
                )  # fmt: skip
    return result, sink.events


def _most_in_flight(events: list[PipelineEvent]) -> int:
    """The most model calls between their request and response, in the log's order."""
    in_flight = most = 0
    for event in events:
        if event.kind is EventKind.MODEL_REQUEST:
            in_flight += 1
            most = max(most, in_flight)
        elif event.kind is EventKind.MODEL_RESPONSE:
            in_flight -= 1
    return most


async def test_max_model_calls_bounds_the_calls_in_flight_with_the_cluster_resource() -> None:
    unbounded, unbounded_events = await _run(None)
    bounded, bounded_events = await _run(2)
    assert unbounded.ok and bounded.ok
    assert _most_in_flight(unbounded_events) > 2  # the fan-out alone lets more run
    assert _most_in_flight(bounded_events) <= 2
    seen: dict[str, Any] = json.loads(bounded.items[0].output)
    # the cluster has 4 units: the model pool's one actor holds 2 while the run lasts
    assert seen["model_calls"] == 2.0
    unbounded_seen = json.loads(unbounded.items[0].output)
    assert unbounded_seen["model_calls"] == 4.0


async def test_an_agents_resources_are_held_by_its_actor_while_it_runs() -> None:
    result, _ = await _run(None)
    seen = json.loads(result.items[0].output)
    assert seen["CPU"] == 1.0  # the cluster's 2 CPUs less the probe's num_cpus: 1
