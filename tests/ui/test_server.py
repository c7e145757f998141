"""The UI server over real sockets: WebSocket fan-out, flow control, API, auth, shutdown."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.ui import PortInUseError, RunLogError, UiConfig, UiSource
from agentflow.runtime.ui.server import is_loopback, resolve_token, serve_log, serve_ui

from .helpers import HELLO_WORLD, collect, emit_hello_world, load_pipeline, run_clients, running_ui

HELLO = load_pipeline("hello_world.yaml")
FANOUT = load_pipeline("research_fanout.yaml")


def _emit_many(server_hub: object, n: int, *, size: int = 0) -> None:
    hub = server_hub
    for i in range(n):
        hub.emit(  # type: ignore[attr-defined]
            EventKind.ITEM_CREATED, item=f"item-{i + 1}", payload={"pad": "x" * size}
        )


async def test_clients_get_the_same_events_in_order() -> None:
    async with running_ui(HELLO) as ui:
        results = await run_clients(
            ui.ws_url, 3, len(HELLO_WORLD), on_connected=lambda: emit_hello_world(ui.hub)
        )
    for events in results:
        assert [e["seq"] for e in events] == list(range(len(HELLO_WORLD)))
        assert [e["kind"] for e in events] == [k for k, *_ in HELLO_WORLD]
    assert results[0] == results[1] == results[2]


async def test_late_client_gets_history_then_live_events() -> None:
    async with running_ui(HELLO) as ui:
        _emit_many(ui.hub, 50)
        async with open_websocket_url(ui.ws_url) as ws:
            first = await collect(ws, 50)
            _emit_many(ui.hub, 30)
            rest = await collect_from(ws, 50, 80)
    assert [e["seq"] for e in first + rest] == list(range(80))


async def collect_from(ws: object, start: int, end: int) -> list[dict[str, object]]:
    got: list[dict[str, object]] = []
    while start + len(got) < end:
        message = json.loads(await ws.get_message())  # type: ignore[attr-defined]
        assert message["start"] == start + len(got)
        got.extend(message["events"])
        await ws.send_message(  # type: ignore[attr-defined]
            json.dumps({"type": "ack", "count": start + len(got)})
        )
    return got


async def test_fifty_clients_each_get_every_event() -> None:
    async with running_ui(HELLO) as ui:
        results = await run_clients(ui.ws_url, 50, 60, on_connected=lambda: _emit_many(ui.hub, 60))
    assert all([e["seq"] for e in r] == list(range(60)) for r in results)


async def test_stalled_client_is_sent_resync_and_dropped_without_slowing_others() -> None:
    config = UiConfig(port=0, ws_stall_timeout_s=1.0)
    async with running_ui(HELLO, config) as ui:
        async with open_websocket_url(ui.ws_url) as stalled:
            # 3,000 events of ~2 KB: far more than one window (256 KiB), so only
            # flow control keeps the server from queueing megabytes for this client.
            _emit_many(ui.hub, 3000, size=2000)  # synchronous: a stalled client cannot block it
            async with open_websocket_url(ui.ws_url) as reader:
                with trio.fail_after(10):
                    events = await collect(reader, 3000)
            assert len(events) == 3000
            with trio.fail_after(5):
                await _wait_health(ui.base, "dropped", 1)
            # The stalled client now reads: some event frames, then the resync and a close.
            kinds = []
            with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
                while True:
                    kinds.append(json.loads(await stalled.get_message())["type"])
        reason = closed.value.reason
        assert reason is not None and reason.code == 4000
        assert kinds[-1] == "resync" and set(kinds[:-1]) == {"events"}
        with trio.fail_after(5):
            await _wait_health(ui.base, "clients", 0)


async def _wait_health(base: str, key: str, value: int) -> None:
    async with httpx.AsyncClient() as client:
        while (await client.get(base + "/healthz")).json()[key] != value:
            await trio.sleep(0.05)


async def test_shutdown_closes_websockets_with_1001_at_once() -> None:
    hub_done = trio.Event()
    async with running_ui(HELLO) as ui, open_websocket_url(ui.ws_url) as ws:
        emit_hello_world(ui.hub)
        await collect(ws, len(HELLO_WORLD))
        ui.shutdown.set()
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        reason = closed.value.reason
        # 1001 from the server; waiting out Hypercorn's graceful timeout would give 1006.
        assert reason is not None and reason.code == 1001
        hub_done.set()


async def test_api_config_describes_the_pipeline() -> None:
    async with running_ui(FANOUT) as ui, httpx.AsyncClient() as client:
        ui.hub.emit(EventKind.RUN_STARTED, payload={"model": "replay"})
        await trio.sleep(0.05)
        config = (await client.get(ui.base + "/api/config")).json()
    assert config["pipeline"] == {"name": "research-fanout", "version": "0.1.0"}
    assert config["model"] == {"name": "replay", "offline": True, "label": "OFFLINE REPLAY"}
    agents = {a["id"]: a for a in config["agents"]}
    assert list(agents) == [a.id for a in FANOUT.spec.agents]
    assert agents["worker_agent"]["model"] == "claude-haiku-4-5"
    assert agents["worker_agent"]["per_item"] and not agents["orchestrator_agent"]["per_item"]
    assert agents["style_qa_agent"]["is_qa"] and agents["style_qa_agent"]["is_gate"]
    assert not agents["worker_agent"]["is_qa"]
    assert agents["orchestrator_agent"]["dispatch"]["strategy"] == "parallel_fan_out"
    edges = {(e["source"], e["target"], e["kind"]) for e in config["edges"]}
    assert edges == {
        ("orchestrator_agent", "worker_agent", "dispatch"),
        ("worker_agent", "accuracy_qa_agent", "dispatch"),
        ("worker_agent", "style_qa_agent", "dispatch"),
        ("accuracy_qa_agent", "worker_agent", "feedback"),
    }
    assert config["states"] == [
        "initialised",
        "planning",
        "working",
        "checking",
        "complete",
        "failed",
    ]
    assert config["initial"] == "initialised" and config["terminal"] == ["complete", "failed"]
    assert config["entry"] == "orchestrator_agent"
    assert {"from": "working", "trigger": "aggregation.on_complete", "to": "complete"} in config[
        "transitions"
    ]
    assert not any(t["from"] in ("complete", "failed") for t in config["transitions"])


async def test_api_events_filters_by_item_agent_and_after() -> None:
    async with running_ui(HELLO) as ui, httpx.AsyncClient() as client:
        emit_hello_world(ui.hub)
        ui.hub.emit(EventKind.ITEM_CREATED, item="item-1")
        await trio.sleep(0.05)

        async def get(query: str) -> httpx.Response:
            return await client.get(ui.base + "/api/events" + query)

        everything = (await get("")).json()
        by_item = (await get("?item=item-1")).json()
        by_agent = (await get("?agent=reviewer_agent")).json()
        page = (await get("?after=3&limit=2")).json()
        bad = await get("?after=x")
    assert everything["total"] == len(HELLO_WORLD) + 1 == len(everything["events"])
    assert [e["item"] for e in by_item["events"]] == ["item-1"]
    reviewer_kinds = [k for k, a, *_ in HELLO_WORLD if a == "reviewer_agent"]
    assert [e["kind"] for e in by_agent["events"]] == reviewer_kinds
    assert [e["seq"] for e in page["events"]] == [4, 5] and page["next_after"] == 5
    assert bad.status_code == 400


async def test_token_is_required_on_every_route_and_the_websocket() -> None:
    config = UiConfig(port=0, token="s3cret-token")
    async with running_ui(HELLO, config) as ui, httpx.AsyncClient() as client:
        assert ui.url.endswith("/?token=s3cret-token")
        for path in ("/", "/api/config", "/api/events", "/healthz", "/static/app.js"):
            client.cookies.clear()
            denied = await client.get(ui.base + path)
            assert denied.status_code == 401, path
            assert "token" in denied.text
            assert (await client.get(ui.base + path + "?token=wrong")).status_code == 401
            ok = await client.get(ui.base + path, headers={"Authorization": "Bearer s3cret-token"})
            assert ok.status_code == 200, path
        client.cookies.clear()
        page = await client.get(ui.base + "/?token=s3cret-token")
        assert page.status_code == 200
        # The page's cookie authorises its own static files and API calls.
        assert (await client.get(ui.base + "/api/config")).status_code == 200
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(ui.ws_url):
                pass
        assert rejected.value.status_code == 401
        async with open_websocket_url(ui.ws_url + "?token=s3cret-token") as ws:
            emit_hello_world(ui.hub)
            assert len(await collect(ws, len(HELLO_WORLD))) == len(HELLO_WORLD)


def test_a_token_is_generated_for_a_non_loopback_host() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    public = resolve_token(UiConfig(host="0.0.0.0"))
    assert public.token is not None and len(public.token) >= 24
    assert resolve_token(UiConfig(host="0.0.0.0")).token != public.token
    assert resolve_token(UiConfig(host="127.0.0.1")).token is None
    assert resolve_token(UiConfig(host="0.0.0.0", token="mine")).token == "mine"


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        errors: list[PortInUseError] = []
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_ui, _hub(), HELLO, UiConfig(port=port), trio.Event())
        except* PortInUseError as group:
            errors.extend(group.exceptions)  # type: ignore[arg-type]
    assert len(errors) == 1
    message = str(errors[0])
    assert f"port {port} on 127.0.0.1 is in use" in message
    assert "--port 0" in message


def _hub() -> EventHub:
    return EventHub(run_id="r")


async def test_api_key_in_the_environment_is_never_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "sk-ant-api03-TESTKEY-0123456789abcdef"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    async with running_ui(HELLO) as ui, httpx.AsyncClient() as client:
        # Even an event that (wrongly) carried the key must not leak it.
        ui.hub.emit(EventKind.WARNING, payload={"message": f"header was Bearer {key}"})
        emit_hello_world(ui.hub)
        await trio.sleep(0.05)
        bodies = [
            (await client.get(ui.base + path)).text
            for path in ("/", "/api/config", "/api/events", "/healthz", "/static/app.js")
        ]
        async with open_websocket_url(ui.ws_url) as ws:
            frame = await ws.get_message()
    for body in [*bodies, frame]:
        assert key not in body
    assert "[redacted]" in bodies[2] and "[redacted]" in frame


async def test_serving_a_finished_run_log(tmp_path: Path) -> None:
    hub = EventHub(run_id="logged")
    async with hub.running():
        emit_hello_world(hub)
    log = tmp_path / "run.jsonl"
    log.write_text("".join(line + "\n" for _, line in hub.history or []))
    source = UiSource.from_log(log, HELLO)
    assert source.finished and source.offline and len(source.lines) == len(HELLO_WORLD)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        # As `agentflow serve` calls it: positional arguments through nursery.start.
        url = await nursery.start(serve_log, log, HELLO, UiConfig(port=0), shutdown)
        async with open_websocket_url(url.replace("http", "ws").rstrip("/") + "/ws") as ws:
            events = await collect(ws, len(HELLO_WORLD))
        shutdown.set()
    assert events[-1]["kind"] == "run_finished"

    bad = tmp_path / "bad.jsonl"
    bad.write_text(hub.history[0][1] + "\n{torn\n")  # type: ignore[index]
    with pytest.raises(RunLogError, match=r"bad.jsonl:2: not a JSON event line"):
        UiSource.from_log(bad, HELLO)
    with pytest.raises(RunLogError, match="cannot read run log"):
        UiSource.from_log(tmp_path / "missing.jsonl", HELLO)
