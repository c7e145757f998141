"""The UI under hostile clients: stalled readers, crafted messages, odd request targets.

Each test drives a real server over real sockets; the crafted-message test
drives the real `agentflow run` in a subprocess and reads its terminal output.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio
from trio_websocket import open_websocket_url

from agentflow.runtime.events.event import EventKind
from agentflow.runtime.ui import UiConfig
from agentflow.runtime.ui.app import parse_ack
from agentflow.runtime.ui.graph import pipeline_graph

from .cli_process import start_cli
from .helpers import HELLO_WORLD, collect, emit_hello_world, load_pipeline, running_ui
from .raw_client import (
    drain_until_closed,
    handshake,
    masked_frame,
    open_websocket,
    raw_request,
    read_close_code,
    stalled_websocket,
)

HELLO = load_pipeline("hello_world.yaml")
PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
HUGE_EVENT_BYTES = 8 * 1024 * 1024  # one event larger than any socket buffer here


async def _health(base: str) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        return (await client.get(base + "/healthz")).json()  # type: ignore[no-any-return]


async def _wait_health(base: str, key: str, value: int) -> None:
    while (await _health(base))[key] != value:
        await trio.sleep(0.05)


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


# -- a client that stops reading ------------------------------------------------


async def test_a_client_that_never_reads_a_huge_event_is_dropped_and_its_socket_closed() -> None:
    config = UiConfig(port=0, ws_stall_timeout_s=1.0)
    async with running_ui(HELLO, config) as ui:
        port = _port(ui.base)
        stalled = await trio.to_thread.run_sync(stalled_websocket, port)
        try:
            # One event bigger than the socket buffers: the server's write to the
            # stalled client cannot complete, whatever its flow-control window.
            ui.hub.emit(EventKind.WARNING, payload={"message": "x" * HUGE_EVENT_BYTES})
            emit_hello_world(ui.hub)
            with trio.fail_after(30):  # a safety timeout: the stall timeout is 1 s
                await _wait_health(ui.base, "dropped", 1)
                await _wait_health(ui.base, "clients", 0)
            # Dropped means closed: after what was buffered, the socket ends.
            await trio.to_thread.run_sync(drain_until_closed, stalled)
            # Another client still gets every event, the huge one included.
            async with open_websocket_url(
                ui.ws_url, max_message_size=2 * HUGE_EVENT_BYTES
            ) as reader:
                with trio.fail_after(30):
                    events = await collect(reader, 1 + len(HELLO_WORLD))
            assert len(events[0]["payload"]["message"]) == HUGE_EVENT_BYTES
        finally:
            stalled.close()


# -- crafted messages -------------------------------------------------------------

CRAFTED_TEXT = {
    "1e999": ("1e999", 1008),
    "ack with 1e999": ('{"type": "ack", "count": 1e999}', 1008),
    "deep nesting, 100k": ("[" * 100_000 + "]" * 100_000, 1009),
    "deep nesting, under the size cap": ("[" * 2000 + "]" * 2000, 1008),
    "deep nesting in an object": (
        '{"type": "ack", "count": ' + "[" * 1500 + "]" * 1500 + "}",
        1008,
    ),
    "huge message": ("x" * (1 << 20), 1009),
    "not JSON": ("hello", 1008),
    "count as a string": ('{"type": "ack", "count": "7"}', 1008),
    "negative count": ('{"type": "ack", "count": -1}', 1008),
    "boolean count": ('{"type": "ack", "count": true}', 1008),
    "NaN count": ('{"type": "ack", "count": NaN}', 1008),
    "fractional count": ('{"type": "ack", "count": 1.5}', 1008),
    "a list": ("[]", 1008),
    "null": ("null", 1008),
    "unknown type": ('{"type": "subscribe"}', 1008),
}


def _close_code_after(port: int, payload: bytes, opcode: int = 0x1) -> int | None:
    """The code the server closes a WebSocket with after one crafted frame from it.

    A raw socket, so any bytes can be sent (invalid UTF-8 too), and the client
    need not wait for Hypercorn to end the TCP connection after a close.
    """
    with open_websocket(port) as sock:
        sock.sendall(masked_frame(payload, opcode=opcode))
        return read_close_code(sock)


async def test_crafted_messages_are_refused_quietly_by_the_real_cli(tmp_path: Path) -> None:
    cli = start_cli(
        "run",
        str(PIPELINES / "hello_world.yaml"),
        "--port",
        "0",
        "--jsonl",
        "run.jsonl",
        cwd=tmp_path,
    )
    try:
        cli.wait_for_output("ctrl+c to exit")
        before = cli.output()
        ws_url = cli.base.replace("http://", "ws://") + "/ws"
        async with open_websocket_url(ws_url) as bystander:
            crafted = {name: (text.encode(), 0x1) for name, (text, _) in CRAFTED_TEXT.items()}
            crafted["binary frame"] = (b"\x00\xff{}", 0x2)
            crafted["invalid UTF-8"] = (b'{"type": "ack", "count": \xff\xfe}', 0x1)
            codes = {
                name: await trio.to_thread.run_sync(_close_code_after, cli.port, *frame)
                for name, frame in crafted.items()
            }
            # A well-behaved client is served all along.
            with trio.fail_after(30):
                events = await collect(bystander, len(json.loads(cli.get("/api/events"))["events"]))
        http = {
            query: raw_request(
                cli.port, f"GET {query} HTTP/1.1\r\nHost: 127.0.0.1:{cli.port}\r\n\r\n".encode()
            )
            for query in (
                "/api/events?after=1e999",
                "/api/events?limit=1e999",
                "/api/events?after=%ff%fe",
                "/api/events?item=%ff%fe&agent=%00",
                "/api/events?after=99999999999999999999999999999999",
                "/static/..%2f..%2fapp.py",
            )
        }
        odd_headers = raw_request(
            cli.port,
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Cookie: agentflow_ui_token=\xff\r\n\r\n" % cli.port,
        )
        health = json.loads(cli.get("/healthz"))
        during = cli.output()
        code = cli.interrupt()
    finally:
        cli.kill()
    expected = {name: close for name, (_, close) in CRAFTED_TEXT.items()}
    expected |= {"binary frame": 1003}
    # wsproto fails the connection: a 1007 close frame, or the TCP connection ended at once.
    assert codes.pop("invalid UTF-8") in (1007, None)
    assert codes == expected
    assert events[-1]["kind"] in ("run_finished", "log_sealed")
    # The app's own refusals (1008, 1003); Hypercorn refuses the 1009s and invalid UTF-8.
    assert health["rejected"] == 1 + sum(code == 1008 for _, code in CRAFTED_TEXT.values())
    assert http == {
        "/api/events?after=1e999": b"HTTP/1.1 400 ",
        "/api/events?limit=1e999": b"HTTP/1.1 400 ",
        "/api/events?after=%ff%fe": b"HTTP/1.1 400 ",
        "/api/events?item=%ff%fe&agent=%00": b"HTTP/1.1 200 ",
        "/api/events?after=99999999999999999999999999999999": b"HTTP/1.1 200 ",
        "/static/..%2f..%2fapp.py": b"HTTP/1.1 404 ",
    }
    assert odd_headers == b"HTTP/1.1 200 "
    assert code == 0  # the run succeeded; Ctrl-C only closed the UI
    # Nothing the clients sent reached the terminal: not a line, let alone a traceback.
    assert during == before
    assert "Traceback" not in "".join(cli.output())


def test_parse_ack_accepts_only_a_non_negative_integer_count() -> None:
    assert parse_ack('{"type": "ack", "count": 12}') == 12
    assert parse_ack('{"count": 0, "type": "ack"}') == 0
    for text, _ in CRAFTED_TEXT.values():
        assert parse_ack(text) is None, text[:40]
    assert parse_ack(b'{"type": "ack", "count": 1}') is None


# -- authorization and the request target ----------------------------------------------


async def test_the_bearer_scheme_is_case_insensitive() -> None:
    config = UiConfig(port=0, token="s3cret-token")
    async with running_ui(HELLO, config) as ui, httpx.AsyncClient() as client:
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            for header in (f"{scheme} s3cret-token", f"{scheme}   s3cret-token"):
                ok = await client.get(ui.base + "/api/config", headers={"Authorization": header})
                assert ok.status_code == 200, header
        for wrong in ("bearer wrong", "Basic s3cret-token", "s3cret-token", "bearer"):
            denied = await client.get(ui.base + "/api/config", headers={"Authorization": wrong})
            assert denied.status_code == 401, wrong
        auth = [(b"Authorization", b"bearer s3cret-token")]
        async with open_websocket_url(ui.ws_url, extra_headers=auth) as ws:
            emit_hello_world(ui.hub)
            assert len(await collect(ws, len(HELLO_WORLD))) == len(HELLO_WORLD)


async def test_the_request_target_is_checked_like_the_host_header() -> None:
    async with running_ui(HELLO) as ui:
        port = _port(ui.base)
        own = f"127.0.0.1:{port}"

        def status(target: str, *, host: str = own, websocket: bool = False) -> bytes:
            if websocket:
                return raw_request(port, handshake(port, target=target, host=host))
            return raw_request(port, f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())

        def check() -> dict[str, bytes]:
            return {
                "foreign absolute URL": status(f"http://evil.example:{port}/healthz"),
                "foreign absolute URL, no port": status("http://evil.example/api/events"),
                "foreign absolute URL, own name in userinfo": status(
                    f"http://127.0.0.1:{port}@evil.example/healthz"
                ),
                "foreign absolute URL, WebSocket": status(
                    f"http://evil.example:{port}/ws", websocket=True
                ),
                "own absolute URL": status(f"http://{own}/healthz"),
                "own absolute URL, WebSocket": status(f"ws://localhost:{port}/ws", websocket=True),
                "asterisk": status("*"),
                "authority form": status(f"127.0.0.1:{port}"),
                "other scheme": status(f"ftp://{own}/healthz"),
                "path": status("/healthz"),
            }

        got = await trio.to_thread.run_sync(check)
    assert got == {
        "foreign absolute URL": b"HTTP/1.1 403 ",
        "foreign absolute URL, no port": b"HTTP/1.1 403 ",
        "foreign absolute URL, own name in userinfo": b"HTTP/1.1 403 ",
        "foreign absolute URL, WebSocket": b"HTTP/1.1 403 ",
        "own absolute URL": b"HTTP/1.1 200 ",
        "own absolute URL, WebSocket": b"HTTP/1.1 101 ",
        "asterisk": b"HTTP/1.1 400 ",
        "authority form": b"HTTP/1.1 400 ",
        "other scheme": b"HTTP/1.1 400 ",
        "path": b"HTTP/1.1 200 ",
    }


# -- what the UI says about the model ---------------------------------------------


async def test_a_dry_run_is_labelled_dry_run_not_live() -> None:
    async with running_ui(HELLO) as ui, httpx.AsyncClient() as client:
        ui.hub.emit(EventKind.RUN_STARTED, payload={"model": "dry-run"})
        with trio.fail_after(30):
            while (await _health(ui.base))["events"] < 1:
                await trio.sleep(0.02)
        config = (await client.get(ui.base + "/api/config")).json()
    assert config["model"] == {"name": "dry-run", "offline": True, "label": "DRY RUN"}


def test_model_labels() -> None:
    def model(name: str) -> dict[str, object]:
        return pipeline_graph(HELLO, model_name=name)["model"]  # type: ignore[no-any-return]

    assert model("replay") == {"name": "replay", "offline": True, "label": "OFFLINE REPLAY"}
    assert model("dry-run") == {"name": "dry-run", "offline": True, "label": "DRY RUN"}
    assert model("anthropic") == {"name": "anthropic", "offline": False, "label": "LIVE: anthropic"}
    assert model("") == {"name": "", "offline": False, "label": ""}
