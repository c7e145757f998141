"""WebhookSink against a real HTTP server on 127.0.0.1 (hypercorn + quart-trio)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.sinks.memory import MemorySink
from agentflow.runtime.sinks.webhook import WebhookDeliveryError, WebhookSink, redacted_url


@dataclass
class Receiver:
    base: str = ""
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_next: int = 0  # answer 503 to this many requests first
    slow_started: int = 0  # POSTs /slow has received
    slow_done: int = 0  # POSTs /slow has answered (only once `release` is set)
    release: trio.Event = field(default_factory=trio.Event)

    @property
    def seqs(self) -> list[int]:
        return [event["seq"] for batch in self.batches for event in batch]


def _app(receiver: Receiver) -> QuartTrio:
    from quart import request

    app = QuartTrio("hook")

    @app.post("/hook")
    async def hook() -> tuple[str, int]:
        if receiver.fail_next > 0:
            receiver.fail_next -= 1
            return "overloaded", 503
        receiver.batches.append(json.loads(await request.get_data()))
        receiver.headers.append({k.lower(): v for k, v in request.headers.items()})
        return "", 204

    @app.post("/slow")
    async def slow() -> tuple[str, int]:
        receiver.slow_started += 1
        await receiver.release.wait()  # a server that does not answer until told to
        receiver.slow_done += 1
        return "", 204

    @app.post("/reject")
    async def reject() -> tuple[str, int]:
        return "no", 401

    return app


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> AsyncIterator[Receiver]:
    recv = Receiver()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    shutdown = trio.Event()
    binds = await nursery.start(
        lambda task_status: serve(
            _app(recv), config, shutdown_trigger=shutdown.wait, task_status=task_status
        )
    )
    recv.base = binds[0].replace("0.0.0.0", "127.0.0.1")
    yield recv
    recv.release.set()
    shutdown.set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_webhook_posts_batches_of_events(receiver: Receiver) -> None:
    sink = WebhookSink(f"{receiver.base}/hook", headers={"x-token": "t0k"})
    hub = EventHub(run_id="run-1", sinks=[sink])
    async with hub.running():
        for i in range(250):
            hub.emit(EventKind.WARNING, payload={"i": i})
    assert receiver.seqs == list(range(250))
    assert max(len(b) for b in receiver.batches) == 100
    assert len(receiver.batches) <= 5
    assert receiver.headers[0]["x-token"] == "t0k"
    assert receiver.headers[0]["content-type"] == "application/json"


async def test_webhook_retries_transient_errors(receiver: Receiver) -> None:
    receiver.fail_next = 2
    sink = WebhookSink(f"{receiver.base}/hook", retries=3, backoff_s=0.01)
    audit = MemorySink()
    hub = EventHub(run_id="run-1", sinks=[audit, sink])
    async with hub.running():
        hub.emit(EventKind.WARNING)
    assert receiver.seqs == [0]
    assert audit.of_kind(EventKind.SINK_ERROR) == []


async def test_webhook_down_is_reported_not_fatal() -> None:
    sink = WebhookSink(f"http://127.0.0.1:{_free_port()}/hook", retries=1, backoff_s=0.01)
    audit = MemorySink()
    hub = EventHub(run_id="run-1", sinks=[audit, sink], max_consecutive_failures=2)
    async with hub.running():
        for _ in range(3):
            hub.emit(EventKind.WARNING)
            await trio.sleep(0.05)
        hub.emit(EventKind.RUN_FINISHED)
    errors = audit.of_kind(EventKind.SINK_ERROR)
    assert errors and "ConnectError" in errors[0].payload["error"]
    assert errors[-1].payload["disabled"] is True
    assert audit.events[-1].kind is EventKind.RUN_FINISHED


async def test_webhook_slow_server_never_slows_the_run(receiver: Receiver) -> None:
    # The server answers no POST until the test ends, and the client would wait an hour:
    # emit must never wait for delivery, and the drain must give up after drain_timeout.
    sink = WebhookSink(f"{receiver.base}/slow", timeout=3600)
    hub = EventHub(run_id="run-1", sinks=[sink], drain_timeout=0.2)
    with trio.fail_after(60):  # a safety net: waiting for the POST would hang here
        async with hub.running():
            for _ in range(200):
                hub.emit(EventKind.WARNING)
                await trio.sleep(0)
            assert receiver.slow_done == 0  # all 200 emits returned with no POST answered
            while receiver.slow_started == 0:  # a POST is in flight when the drain begins
                await trio.sleep(0.01)
    assert receiver.slow_done == 0  # the drain gave up on the unanswered POST


async def test_webhook_rejection_fails_fast(receiver: Receiver) -> None:
    sink = WebhookSink(f"{receiver.base}/reject", retries=3, backoff_s=10)
    event = EventHub(run_id="r").emit(EventKind.WARNING)
    with pytest.raises(WebhookDeliveryError, match="HTTP 401, 1 attempts"):
        await sink.emit(event, line=event.model_dump_json())
    await sink.aclose()


_EVENT = PipelineEvent(run_id="r", seq=0, ts=0.0, kind=EventKind.WARNING)
_SECRET_URL = "http://alice:s3cretpass@127.0.0.1:{port}/hook?token=SECRET_TOKEN&x=1"


def _assert_no_secrets(text: str) -> None:
    for secret in ("alice", "s3cretpass", "SECRET_TOKEN", "token=", "x=1"):
        assert secret not in text, (secret, text)


async def test_webhook_errors_never_show_credentials_or_query() -> None:
    port = _free_port()
    sink = WebhookSink(_SECRET_URL.format(port=port), retries=0)
    audit = MemorySink()
    hub = EventHub(run_id="run-1", sinks=[audit, sink])
    async with hub.running():
        hub.emit(EventKind.WARNING)
    errors = audit.of_kind(EventKind.SINK_ERROR)
    assert errors
    message = errors[0].payload["error"]
    assert f"http://127.0.0.1:{port}/hook " in message
    _assert_no_secrets(message)


async def test_webhook_rejection_message_is_redacted(receiver: Receiver) -> None:
    url = (
        receiver.base.replace("http://", "http://alice:s3cretpass@") + "/reject?token=SECRET_TOKEN"
    )
    sink = WebhookSink(url, retries=0)
    with pytest.raises(WebhookDeliveryError) as error:
        await sink.emit(_EVENT, line="{}")
    await sink.aclose()
    assert "HTTP 401" in str(error.value) and f"{receiver.base}/reject " in str(error.value)
    _assert_no_secrets(str(error.value))


async def test_webhook_scrubs_the_url_out_of_transport_errors() -> None:
    url = _SECRET_URL.format(port=9)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {url} ({request.url})", request=request)

    sink = WebhookSink(url, retries=0)
    sink._client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    with pytest.raises(WebhookDeliveryError) as error:
        await sink.emit(_EVENT, line="{}")
    await sink.aclose()
    assert "ConnectError: cannot reach http://127.0.0.1:9/hook" in str(error.value)
    _assert_no_secrets(str(error.value))


def test_redacted_url_keeps_only_scheme_host_port_path() -> None:
    assert redacted_url("https://u:p@h.example:8443/a/b?k=v#f") == "https://h.example:8443/a/b"
    assert redacted_url("http://[::1]:8/p?a=1") == "http://[::1]:8/p"
    assert redacted_url("secret-but-not-a-url") == "<invalid webhook URL>"
