"""The UI refuses foreign Host names (DNS rebinding) and cross-origin WebSockets."""

from __future__ import annotations

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from agentflow.runtime.ui import UiConfig
from agentflow.runtime.ui.app import is_own_authority

from .helpers import HELLO_WORLD, collect, emit_hello_world, load_pipeline, running_ui

HELLO = load_pipeline("hello_world.yaml")


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def test_foreign_host_header_is_refused_with_403() -> None:
    async with running_ui(HELLO) as ui, httpx.AsyncClient() as client:
        port = _port(ui.base)
        for path in ("/", "/api/events", "/api/config", "/healthz"):
            denied = await client.get(ui.base + path, headers={"Host": f"attacker.example:{port}"})
            assert denied.status_code == 403, path
            assert "attacker.example" in denied.text and "DNS rebinding" in denied.text
        wrong_port = await client.get(ui.base + "/healthz", headers={"Host": "127.0.0.1:1"})
        assert wrong_port.status_code == 403
        for name in ("127.0.0.1", "localhost", "LOCALHOST", "[::1]"):
            ok = await client.get(ui.base + "/healthz", headers={"Host": f"{name}:{port}"})
            assert ok.status_code == 200, name


async def test_websocket_from_a_foreign_origin_is_rejected() -> None:
    async with running_ui(HELLO) as ui:
        port = _port(ui.base)
        for origin in ("http://evil.example", f"http://evil.example:{port}", "null"):
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(
                    ui.ws_url, extra_headers=[(b"Origin", origin.encode())]
                ):
                    pass
            assert rejected.value.status_code == 403, origin
        own = f"http://localhost:{port}".encode()
        async with open_websocket_url(ui.ws_url, extra_headers=[(b"Origin", own)]) as ws:
            emit_hello_world(ui.hub)
            assert len(await collect(ws, len(HELLO_WORLD))) == len(HELLO_WORLD)


async def _handshake_status(port: int, host: str) -> bytes:
    """The status line of a raw WebSocket handshake sent with `Host: host`."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        return (await stream.receive_some(4096)).split(b"\r\n", 1)[0]


async def test_websocket_with_a_rebound_host_is_rejected() -> None:
    async with running_ui(HELLO) as ui:
        port = _port(ui.base)
        assert (await _handshake_status(port, f"evil.example:{port}")).startswith(b"HTTP/1.1 403")
        assert b" 101 " in await _handshake_status(port, f"127.0.0.1:{port}")


def test_own_authority_parsing() -> None:
    config = UiConfig(host="10.0.0.5", port=4000, token="t")
    for good in ("127.0.0.1:4000", "localhost:4000", "[::1]:4000", "10.0.0.5:4000"):
        assert is_own_authority(good, config), good
    for bad in ("127.0.0.1:4001", "127.0.0.1", "[::1]", "::1", "evil:4000", "", "10.0.0.6:4000"):
        assert not is_own_authority(bad, config), bad
    assert is_own_authority("localhost", UiConfig(port=80))
    assert is_own_authority("[::1]", UiConfig(port=80))
    assert is_own_authority("[::1]:4000", UiConfig(host="::1", port=4000))
