"""Helpers for the UI tests: pipelines, a recorded hello-world event sequence, WS clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import strictyaml
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.pipeline import CompiledPipeline, compile_spec
from agentflow.runtime.spec import PipelineSpec
from agentflow.runtime.ui import UiConfig, serve_ui

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def load_pipeline(name: str) -> CompiledPipeline:
    """A pipeline from pipelines/ without the compiler (the spec mirrors the YAML)."""
    data = strictyaml.load((PIPELINES / name).read_text()).data
    return compile_spec(PipelineSpec.model_validate(data), {})


def emit_hello_world(hub: EventHub, start: int = 0, end: int | None = None) -> None:
    """Emit the recorded hello-world run (or the slice [start:end] of it) through `hub`."""
    for kind, agent, attempt, payload in HELLO_WORLD[start:end]:
        hub.emit(
            EventKind(kind),
            agent=agent,
            item="main" if agent or kind == "item_finished" else None,
            attempt=attempt,
            payload=payload,
        )


def hello_index(kind: str, nth: int = 1) -> int:
    """The index in HELLO_WORLD of the nth event of `kind`."""
    found = [i for i, (k, *_) in enumerate(HELLO_WORLD) if k == kind]
    return found[nth - 1]


_USAGE = {"input_tokens": 120, "output_tokens": 80, "cost_usd": 0.0016}
HELLO_WORLD: list[tuple[str, str | None, int | None, dict[str, Any]]] = [
    ("run_started", None, None, {"pipeline": "hello-world", "model": "replay", "input": "trio"}),
    ("agent_started", "writer_agent", 1, {}),
    (
        "transition",
        "writer_agent",
        1,
        {"from": "initialised", "to": "running", "trigger": "writer_agent.on_start", "noop": False},
    ),
    ("model_request", "writer_agent", 1, {"model": "claude-sonnet-4-6", "turn": 1}),
    ("model_text", "writer_agent", 1, {"turn": 1, "text": "Trio is a library "}),
    ("model_text", "writer_agent", 1, {"turn": 1, "text": "for async concurrency."}),
    ("model_response", "writer_agent", 1, {"turn": 1, "usage": _USAGE}),
    ("agent_completed", "writer_agent", 1, {"text": "Trio is a library for async concurrency."}),
    (
        "transition",
        "writer_agent",
        1,
        {
            "from": "running",
            "to": "reviewing",
            "trigger": "writer_agent.on_complete",
            "noop": False,
        },
    ),
    ("agent_started", "reviewer_agent", 1, {}),
    ("model_response", "reviewer_agent", 1, {"turn": 1, "usage": _USAGE}),
    (
        "qa_verdict",
        "reviewer_agent",
        1,
        {"passed": False, "issues": [{"severity": "blocking", "message": "Too short."}]},
    ),
    (
        "transition",
        "reviewer_agent",
        1,
        {"from": "reviewing", "to": "running", "trigger": "reviewer_agent.on_fail", "noop": False},
    ),
    (
        "retry_scheduled",
        "reviewer_agent",
        1,
        {"qa": "reviewer_agent", "target": "writer_agent", "next_attempt": 2, "delay_ms": 150},
    ),
    ("agent_started", "writer_agent", 2, {}),
    (
        "transition",
        "writer_agent",
        2,
        {"from": "running", "to": "running", "trigger": "writer_agent.on_start", "noop": True},
    ),
    ("model_text", "writer_agent", 2, {"turn": 1, "text": "Trio runs tasks in nurseries."}),
    ("model_response", "writer_agent", 2, {"turn": 1, "usage": _USAGE}),
    ("agent_completed", "writer_agent", 2, {"text": "Trio runs tasks in nurseries."}),
    (
        "transition",
        "writer_agent",
        2,
        {
            "from": "running",
            "to": "reviewing",
            "trigger": "writer_agent.on_complete",
            "noop": False,
        },
    ),
    ("agent_started", "reviewer_agent", 2, {}),
    ("model_response", "reviewer_agent", 2, {"turn": 1, "usage": _USAGE}),
    ("qa_verdict", "reviewer_agent", 2, {"passed": True, "issues": []}),
    (
        "transition_deferred",
        "reviewer_agent",
        2,
        {"to": "complete", "trigger": "reviewer_agent.on_pass"},
    ),
    ("item_finished", None, None, {"status": "passed"}),
    ("aggregation", None, None, {"strategy": "all_pass", "passed": 1, "decision": "complete"}),
    (
        "transition",
        None,
        None,
        {
            "from": "reviewing",
            "to": "complete",
            "trigger": "aggregation.on_complete",
            "noop": False,
        },
    ),
    ("run_finished", None, None, {"status": "succeeded", "final_state": "complete"}),
]


@dataclass
class UiServer:
    """A running UI: its URL, hub, and the event that shuts it down."""

    url: str
    hub: EventHub
    shutdown: trio.Event
    done: trio.Event = field(default_factory=trio.Event)

    @property
    def base(self) -> str:
        return self.url.split("?")[0].rstrip("/")

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/ws"


@asynccontextmanager
async def running_ui(
    pipeline: CompiledPipeline, config: UiConfig | None = None, *, run_id: str = "run-ui-test"
) -> AsyncIterator[UiServer]:
    """A hub (running) and the UI serving it on 127.0.0.1 at a free port."""
    hub = EventHub(run_id=run_id)
    shutdown = trio.Event()
    config = config or UiConfig(port=0)
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_ui, hub, pipeline, config, shutdown=shutdown))
        server = UiServer(url, hub, shutdown)
        try:
            yield server
        finally:
            shutdown.set()


async def collect(ws: WebSocketConnection, count: int, *, ack: bool = True) -> list[dict[str, Any]]:
    """Read event frames (acking each) until `count` events arrived."""
    events: list[dict[str, Any]] = []
    while len(events) < count:
        message = json.loads(await ws.get_message())
        assert message["type"] == "events", message
        assert message["start"] == len(events)
        events.extend(message["events"])
        if ack:
            await ws.send_message(json.dumps({"type": "ack", "count": len(events)}))
    return events


async def run_clients(
    url: str, n: int, count: int, on_connected: Callable[[], None] | None = None
) -> list[list[dict[str, Any]]]:
    """Connect `n` clients, then read `count` events on each; returns what each got."""
    results: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    connected = 0

    async def client(i: int) -> None:
        nonlocal connected
        async with open_websocket_url(url) as ws:
            connected += 1
            if connected == n and on_connected is not None:
                on_connected()
            results[i] = await collect(ws, count)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(client, i)
    return results


__all__ = [
    "HELLO_WORLD",
    "ConnectionClosed",
    "UiServer",
    "collect",
    "emit_hello_world",
    "hello_index",
    "load_pipeline",
    "run_clients",
    "running_ui",
]
