"""The Quart-Trio app of the live UI: the page, its static files, the API and `/ws`.

WebSocket protocol (`/ws`, JSON text frames):

- server -> client: `{"type": "events", "start": i, "events": [...]}` batches
  in seq order, starting at 0 (a late client gets the history first, then live
  events); `{"type": "resync", "reason": ...}` just before the server drops a
  client that stopped reading (the page reconnects and rebuilds from event 0).
- client -> server: `{"type": "ack", "count": n}` once it has handled the
  first n events (n a non-negative integer). Anything else is a protocol
  error: the client is closed with 1008 (1003 for a binary frame; a message
  over `MAX_CLIENT_MESSAGE_BYTES` is not parsed). Hypercorn itself refuses
  larger messages (1009, see server.py) and invalid UTF-8. Nothing a client
  sends is logged.

Flow control: a client may have at most `UiConfig.ws_window_bytes` of
unacknowledged events in flight. That is its bounded queue: the events
themselves live once, in the source, shared by every client. A client whose
window stays full for `ws_stall_timeout_s` is sent `resync` and closed with
code 4000. The window is kept well below the kernel's socket buffers, so a
send to a stalled client rarely blocks; when one does (an event larger than
the buffers), it is given up after `ws_stall_timeout_s` and the client is
dropped the same way. A stalled client never slows the run or the others.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from html import escape
from importlib import resources
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote

import trio
from quart import Response, abort, has_websocket_context, request, websocket
from quart_trio import QuartTrio

from .answer_endpoint import AnswerBackend, install_answer_endpoint
from .catalog import RunCatalog, UnknownRunError
from .graph import pipeline_graph, unknown_pipeline_graph
from .source import Redactor, UiSource

__all__ = [
    "MAX_CLIENT_MESSAGE_BYTES",
    "STATIC_FILES",
    "UiConfig",
    "UiStats",
    "create_app",
    "is_own_authority",
    "one_line_logger",
    "own_names",
    "parse_ack",
]

STATIC_FILES = frozenset({"index.html", "app.js", "style.css", "cytoscape.min.js", "VENDORED.md"})
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}
_COOKIE = "agentflow_ui_token"
_COALESCE_BELOW = 100  # events: a smaller backlog waits ws_coalesce_s for more
CLOSE_LAGGING = 4000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_UNSUPPORTED_DATA = 1003
MAX_CLIENT_MESSAGE_BYTES = 4096
"""The longest WebSocket message a client may send (an ack is about 30 bytes)."""

_log = logging.getLogger("agentflow.ui")


@dataclass
class UiConfig:
    """Where the UI listens and how it treats clients.

    `token`: required from every request when set (always set for a
    non-loopback host: `serve_ui` generates one). `ws_window_bytes`: the most
    unacknowledged event bytes one WebSocket client may have in flight;
    `ws_batch_bytes`: the largest single frame; `ws_stall_timeout_s`: how long
    a full window may wait for an ack, or one write to a client may wait on
    its socket, before the client is dropped (for HTTP: the connection reset);
    `ws_coalesce_s`: how long a sender waits after new events arrive so that a
    burst goes out as one frame rather than one frame per event.
    """

    host: str = "127.0.0.1"
    port: int = 4000
    token: str | None = None
    ws_window_bytes: int = 256 * 1024
    ws_batch_bytes: int = 64 * 1024
    ws_stall_timeout_s: float = 10.0
    ws_coalesce_s: float = 0.02


@dataclass
class UiStats:
    """Counters for tests and `/healthz`."""

    clients: int = 0  # Invariant: WebSocket clients currently connected.
    connected_total: int = 0
    dropped: int = 0  # clients closed because they stopped reading
    rejected: int = 0  # clients closed for sending something other than an ack


class _OneLine(logging.Filter):
    """Reduces a record to one line: its message and the error's type and text, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {describe_error(record.exc_info[1])}"
        record.msg, record.args = _printable(message), None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def one_line_logger(name: str) -> logging.Logger:
    """The logger `name`, whose records are one line each (for Hypercorn's error log)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _OneLine) for f in logger.filters):
        logger.addFilter(_OneLine())
    return logger


def describe_error(error: BaseException) -> str:
    """`Type: message` of `error` (of each leaf of an exception group), on one line."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(leaf) for leaf in error.exceptions)
    text = str(error)
    text = text if len(text) <= 200 else text[:200] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _printable(text: str) -> str:
    """`text` on one line, control characters escaped (a client's bytes may be in it)."""
    text = " ".join(text.split())
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class _UiApp(QuartTrio):
    """The UI's app: an unhandled error is one log line, never a traceback on the terminal."""

    def log_exception(
        self,
        exception_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        error = exception_info[1]
        _log.error(
            "agentflow UI: error serving a request: %s",
            _printable(describe_error(error)) if error is not None else "unknown",
        )


def _static_text(name: str) -> str:
    return resources.files("agentflow.runtime.ui").joinpath("static", name).read_text("utf-8")


def create_app(
    source: UiSource | RunCatalog,
    config: UiConfig | None = None,
    *,
    closing: trio.Event | None = None,
    answers: AnswerBackend | None = None,
) -> QuartTrio:
    """Build the UI app over one run (`source`) or every run of a `RunCatalog`.

    Args:
        source: the run to serve, or the catalog of runs (with a store: every
            run recorded there). With one run, `/` is that run's page; with a
            store, `/` is the runs list and `/runs/<id>` each run's page.
        config: listening and client policy; `config.token`, when set, is
            required from every route and the WebSocket.
        closing: when set, every open WebSocket is closed with 1001 (going
            away), so a server shutdown is instant.
        answers: records answers to human steps (`POST /api/runs/<run>/answer`,
            `answer_endpoint.py`); None: the endpoint replies 404.
    """
    config = config or UiConfig()
    closing = closing if closing is not None else trio.Event()
    catalog = as_catalog(source)
    app = _UiApp(__name__, static_folder=None)
    stats = UiStats()
    app.config["AGENTFLOW_UI_STATS"] = stats
    app.config["AGENTFLOW_UI_CATALOG"] = catalog
    _install_origin_guard(app, config)
    _install_auth(app, config.token)
    install_answer_endpoint(app, functools.partial(is_own_origin, config=config), answers)
    redact = Redactor()

    def page(view: str, run_id: str | None) -> Response:
        if run_id is None:
            api, ws_path = "/api/", "/ws"
        else:
            quoted = quote(run_id, safe="")
            api, ws_path = f"/api/runs/{quoted}/", f"/api/runs/{quoted}/ws"
        text = _static_text("index.html").replace(
            "<body>",
            f'<body data-view="{view}" data-run="{escape(run_id or "")}" '
            f'data-api="{escape(api)}" data-ws="{escape(ws_path)}" '
            f'data-store="{str(catalog.has_store).lower()}">',
            1,
        )
        response = Response(redact(text), mimetype="text/html")
        response.headers["Cache-Control"] = "no-cache"
        if config.token is not None:
            response.set_cookie(_COOKIE, config.token, httponly=True, samesite="Strict")
        return response

    async def run_source(run_id: str | None) -> UiSource:
        if run_id is None:
            primary = catalog.primary_source()
            if primary is None:
                abort(404, "no run is served at this address: see /api/runs")
            return primary
        try:
            return await catalog.source(run_id)
        except UnknownRunError as error:
            abort(Response(f"404 Not Found: {error}\n", status=404, content_type="text/plain"))

    @app.get("/")
    async def index() -> Response:
        if not catalog.has_store and catalog.primary is not None:
            return page("run", None)
        return page("runs", None)

    @app.get("/runs/<run_id>")
    async def run_page(run_id: str) -> Response:
        await run_source(run_id)
        return page("run", run_id)

    @app.get("/static/<name>")
    async def static_file(name: str) -> Response:
        if name not in STATIC_FILES:
            abort(404)
        return _static_response(name)

    @app.get("/api/runs")
    async def api_runs() -> Response:
        runs = await catalog.runs()
        body = {"runs": runs, "primary": catalog.primary, "store": catalog.has_store}
        return _json_response(redact(json.dumps(body)))

    async def config_of(run_id: str | None) -> Response:
        source = await run_source(run_id)
        if source.pipeline is not None:
            graph = pipeline_graph(source.pipeline, model_name=source.model_name)
        else:
            graph = unknown_pipeline_graph(_pipeline_name(source), model_name=source.model_name)
        graph["run"] = _run_status(source)
        graph["verification"] = source.verification  # `agentflow serve`: the log's verdict
        return _json_response(source.redact(json.dumps(graph)))

    async def events_of(run_id: str | None) -> Response:
        source = await run_source(run_id)
        args = request.args
        try:
            after = int(args.get("after", "-1"))
            limit = max(1, min(int(args.get("limit", "1000")), 10_000))
        except ValueError:
            abort(400, "after and limit must be integers")
        indexes = source.select(
            item=args.get("item") or None,
            agent=args.get("agent") or None,
            kind=args.get("kind") or None,
            after=after,
            limit=limit,
        )
        body = ",".join(source.lines[i] for i in indexes)
        last = indexes[-1] if indexes else after
        return _json_response(
            f'{{"total":{len(source.lines)},"next_after":{last},"events":[{body}]}}'
        )

    async def status_of(run_id: str | None) -> Response:
        source = await run_source(run_id)
        return _json_response(json.dumps(_run_status(source)))

    async def call_of(run_id: str | None) -> Response:
        source = await run_source(run_id)
        args = request.args
        try:
            attempt = int(args.get("attempt", "1"))
            turn = int(args.get("turn", "1"))
        except ValueError:
            abort(400, "attempt and turn must be integers")
        agent, item = args.get("agent", ""), args.get("item", "main")
        if not agent or source.run_id is None:
            abort(400, "agent is required")
        found = await catalog.model_call(source.run_id, agent, item, attempt, turn)
        return _json_response(source.redact(json.dumps(found, default=str)))

    @app.get("/api/call")
    async def api_call() -> Response:
        return await call_of(None)

    @app.get("/api/runs/<run_id>/call")
    async def api_run_call(run_id: str) -> Response:
        return await call_of(run_id)

    @app.get("/api/config")
    async def api_config() -> Response:
        return await config_of(None)

    @app.get("/api/events")
    async def api_events() -> Response:
        return await events_of(None)

    @app.get("/api/status")
    async def api_status() -> Response:
        return await status_of(None)

    @app.get("/api/runs/<run_id>/config")
    async def api_run_config(run_id: str) -> Response:
        return await config_of(run_id)

    @app.get("/api/runs/<run_id>/events")
    async def api_run_events(run_id: str) -> Response:
        return await events_of(run_id)

    @app.get("/api/runs/<run_id>/status")
    async def api_run_status(run_id: str) -> Response:
        return await status_of(run_id)

    @app.get("/healthz")
    async def healthz() -> Response:
        primary = catalog.primary_source()
        return _json_response(
            json.dumps(
                {
                    "status": "ok",
                    "events": len(primary.lines) if primary is not None else 0,
                    "finished": primary.finished if primary is not None else False,
                    "clients": stats.clients,
                    "dropped": stats.dropped,
                    "rejected": stats.rejected,
                }
            )
        )

    async def stream(run_id: str | None) -> None:
        source = await run_source(run_id)
        await websocket.accept()
        client = _WsClient(cast(Any, websocket)._get_current_object(), source, config, stats)
        stats.clients += 1
        stats.connected_total += 1
        try:
            await client.serve(closing)
        finally:
            stats.clients -= 1

    @app.websocket("/ws")
    async def ws() -> None:
        await stream(None)

    @app.websocket("/api/runs/<run_id>/ws")
    async def run_ws(run_id: str) -> None:
        await stream(run_id)

    return app


def as_catalog(source: UiSource | RunCatalog) -> RunCatalog:
    """`source` as a catalog: one run (its id from the events, else `run`) is its primary."""
    if isinstance(source, RunCatalog):
        return source
    catalog = RunCatalog()
    catalog.add(source.run_id or _first_run_id(source) or "run", source, primary=True)
    return catalog


def _first_run_id(source: UiSource) -> str | None:
    if not source.lines:
        return None
    try:
        value = json.loads(source.lines[0]).get("run_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _pipeline_name(source: UiSource) -> str:
    return str(getattr(source, "pipeline_name", "") or "")


def _run_status(source: UiSource) -> dict[str, Any]:
    """What the page needs to say which run it shows and in what state."""
    return {
        "id": source.run_id,
        "events": len(source.lines),
        "finished": source.finished,
        "state": source.run_state,
        "status": source.final_status,
        "store_status": getattr(source, "store_status", None),
    }


def _static_response(name: str) -> Response:
    """A static file, gzip-compressed when the client accepts it, with an ETag:
    a request carrying the same ETag in If-None-Match gets a 304 and no body."""
    body, gzipped, etag = _static_asset(name)
    suffix = name[name.rfind(".") :]
    if etag in _if_none_match(request.headers.get("If-None-Match", "")):
        response = Response("", status=304)
    elif "gzip" in request.headers.get("Accept-Encoding", "").lower():
        response = Response(gzipped, content_type=_CONTENT_TYPES[suffix])
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(body, content_type=_CONTENT_TYPES[suffix])
    response.headers["ETag"] = etag
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = "no-cache"  # revalidate: the 304 costs no body
    return response


def _if_none_match(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


@functools.cache
def _static_asset(name: str) -> tuple[bytes, bytes, str]:
    """(body, gzip of it, strong ETag) of a static file, computed once per process."""
    body = _static_text(name).encode("utf-8")
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return body, gzip.compress(body, mtime=0), etag


def _json_response(body: str) -> Response:
    return Response(body, content_type="application/json")


def _install_auth(app: QuartTrio, token: str | None) -> None:
    """Require `token` (query `?token=`, `Authorization: Bearer`, or the page's cookie).

    The scheme name is case-insensitive (RFC 7235: `bearer`, `BEARER` too).
    """
    if token is None:
        return

    def presented() -> str:
        ctx = websocket if _in_websocket() else request
        scheme, _, credentials = ctx.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip()
        return ctx.args.get("token") or ctx.cookies.get(_COOKIE) or ""

    async def check() -> None:
        if not secrets.compare_digest(presented().encode(), token.encode()):
            abort(
                Response(
                    "401 Unauthorized: this agentflow UI needs its token. Open the URL "
                    "`agentflow run` printed (it ends in ?token=...), or send "
                    "`Authorization: Bearer <token>`.\n",
                    status=401,
                    content_type="text/plain",
                )
            )

    app.before_request(check)
    app.before_websocket(check)


_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def own_names(config: UiConfig) -> frozenset[str]:
    """The host names the UI answers to: the loopback names and the configured host."""
    host = config.host.lower()
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return frozenset({*_LOOPBACK_NAMES, host} - _WILDCARD_HOSTS)


def is_own_authority(authority: str, config: UiConfig) -> bool:
    """True when `authority` (`name[:port]`, as in a Host header) names this UI.

    A missing port means 80, as in HTTP. `config.port` 0 (an app not yet
    bound, e.g. under Quart's test client) accepts any port.
    """
    authority = authority.strip().lower()
    name, sep, port = authority.rpartition(":")
    if not sep or name.endswith(":") or (authority.startswith("[") and not name.endswith("]")):
        name, port = authority, "80"  # no port (a bare IPv6 literal has colons too)
    if name not in own_names(config):
        return False
    return config.port == 0 or port == str(config.port)


def is_own_origin(origin: str, host: str, *, config: UiConfig) -> bool:
    """True when a browser's `Origin` header names this UI (`host`: the request's Host;
    on a wildcard bind, which always has a token, the Origin must match it)."""
    scheme, _, authority = origin.lower().partition("://")
    if not authority or scheme != "http" or "/" in authority:
        return False
    if config.host.lower() in _WILDCARD_HOSTS and config.token is not None:
        return authority == host.lower()
    return is_own_authority(authority, config)


def _forbidden(what: str, value: str, config: UiConfig) -> Response:
    port = config.port or "PORT"
    return Response(
        f"403 Forbidden: {what} {value!r} is not this agentflow UI's own address, so the "
        "request was refused (a guard against other web pages and DNS rebinding reading "
        f"the run). Open the UI at http://127.0.0.1:{port}/ (or localhost, or the --host "
        "it was started with).\n",
        status=403,
        content_type="text/plain",
    )


def _bad_target(target: str) -> Response:
    return Response(
        f"400 Bad Request: request target {_printable(target)[:200]!r} is not a path; "
        "this agentflow UI only serves paths such as /api/config.\n",
        status=400,
        content_type="text/plain",
    )


def _install_origin_guard(app: QuartTrio, config: UiConfig) -> None:
    """Refuse requests for foreign Host names and WebSocket handshakes from foreign pages.

    Without a token, any page the user visits could otherwise open `/ws` and
    read every prompt and output, or rebind its own name to 127.0.0.1. On a
    wildcard bind (0.0.0.0, ::) the UI's names are unknown, but a token is
    always required there, so only a same-origin check is made.

    The request target is checked too: a path, or an absolute URL
    (`GET http://name:port/path`, which by RFC 9112 overrides `Host`) whose
    authority passes the same check as `Host`; anything else (`*`, a bare
    authority) is a 400.
    """
    wildcard = config.host.lower() in _WILDCARD_HOSTS and config.token is not None

    def is_own(authority: str, host: str) -> bool:
        if wildcard:
            return authority.lower() == host.lower()
        return is_own_authority(authority, config)

    def check_host(headers: Any, scope: Any) -> str:
        host = str(headers.get("Host", ""))
        if not wildcard and not is_own_authority(host, config):
            abort(_forbidden("Host", host, config))
        target = bytes(scope.get("raw_path") or b"/").decode("latin-1")
        if not target.startswith("/"):
            scheme, sep, rest = target.partition("://")
            authority = rest.split("/", 1)[0]
            if not (sep and scheme.lower() in ("http", "ws") and authority):
                abort(_bad_target(target))
            if not is_own(authority, host):
                abort(_forbidden("request target", target, config))
        return host

    async def check_request() -> None:
        check_host(request.headers, request.scope)

    async def check_websocket() -> None:
        host = check_host(websocket.headers, websocket.scope)
        origin = websocket.headers.get("Origin")
        if origin is None:  # not a browser: browsers always send Origin on WebSockets
            return
        scheme, _, authority = origin.lower().partition("://")
        same = is_own(authority, host)
        if not (authority and scheme == "http" and "/" not in authority and same):
            abort(_forbidden("Origin", origin, config))

    app.before_request(check_request)
    app.before_websocket(check_websocket)


def _in_websocket() -> bool:
    return has_websocket_context()


def parse_ack(message: str | bytes) -> int | None:
    """The count of an ack (`{"type": "ack", "count": n}`, n >= 0), or None for anything else.

    Never raises: `1e999`, deep nesting, non-JSON, bytes and wrong types are all None.
    """
    if not isinstance(message, str) or len(message) > MAX_CLIENT_MESSAGE_BYTES:
        return None
    try:
        value = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or value.get("type") != "ack":
        return None
    count = value.get("count")
    if type(count) is not int or count < 0:  # not bool, not float (1e999 is inf)
        return None
    return count


class _WsClient:
    """One WebSocket client: a cursor into the source, flow-controlled by acks."""

    def __init__(self, ws: Any, source: UiSource, config: UiConfig, stats: UiStats) -> None:
        self.ws = ws
        self.source = source
        self.config = config
        self.stats = stats
        # Invariant: events [0, sent) have been sent, in order.
        self.sent = 0
        # Invariant: (events sent after this frame, frame bytes) of unacknowledged frames.
        self.inflight: deque[tuple[int, int]] = deque()
        self.inflight_bytes = 0
        self.acked = trio.Event()
        # Every frame names its run: a page never mixes another run's events into its own.
        self.run = json.dumps(source.run_id)

    async def serve(self, closing: trio.Event) -> None:
        """Stream events until the client leaves, stalls, misbehaves, or `closing` is set."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_acks, nursery)
            nursery.start_soon(self._send_events, nursery)
            await closing.wait()
            nursery.cancel_scope.cancel()
        if closing.is_set():
            with trio.move_on_after(1):
                await self.ws.close(CLOSE_GOING_AWAY)

    async def _read_acks(self, nursery: trio.Nursery) -> None:
        while True:
            message = await self.ws.receive()
            count = parse_ack(message)
            if count is None:
                await self._reject(nursery, binary=not isinstance(message, str))
                return
            while self.inflight and self.inflight[0][0] <= count:
                self.inflight_bytes -= self.inflight.popleft()[1]
            self.acked.set()
            self.acked = trio.Event()

    async def _send_events(self, nursery: trio.Nursery) -> None:
        lines = self.source.lines
        stall_timeout = self.config.ws_stall_timeout_s
        while True:
            await self.source.wait_beyond(self.sent)
            if len(lines) - self.sent < _COALESCE_BELOW:
                await trio.sleep(self.config.ws_coalesce_s)
            if self.inflight_bytes + self.config.ws_batch_bytes > self.config.ws_window_bytes:
                with trio.move_on_after(stall_timeout) as scope:
                    await self.acked.wait()
                if scope.cancelled_caught:
                    await self._drop(nursery)
                    return
                continue
            budget = self.config.ws_batch_bytes
            start, end, size = self.sent, self.sent, 0
            while end < len(lines) and (end == start or size + len(lines[end]) < budget):
                size += len(lines[end]) + 1
                end += 1
            frame = (
                f'{{"type":"events","run":{self.run},"start":{start},'
                f'"events":[{",".join(lines[start:end])}]}}'
            )
            # One event can be larger than the socket buffers; a client that
            # does not take it within the stall timeout is dropped (a frame cut
            # short aborts the connection: see transport.py).
            with trio.move_on_after(stall_timeout) as sending:
                await self.ws.send(frame)
            if sending.cancelled_caught:
                await self._drop(nursery)
                return
            self.sent = end
            self.inflight.append((end, len(frame)))
            self.inflight_bytes += len(frame)

    async def _reject(self, nursery: trio.Nursery, *, binary: bool) -> None:
        """Close a client that sent something other than an ack; end this connection."""
        self.stats.rejected += 1
        code = CLOSE_UNSUPPORTED_DATA if binary else CLOSE_POLICY_VIOLATION
        with trio.move_on_after(1):
            await self.ws.close(code, 'expected {"type": "ack", "count": N}')
        nursery.cancel_scope.cancel()

    async def _drop(self, nursery: trio.Nursery) -> None:
        """Tell a stalled client to resync, close it, and end this connection."""
        self.stats.dropped += 1
        with trio.move_on_after(1):
            await self.ws.send(
                json.dumps({"type": "resync", "reason": "client fell behind; reconnect"})
            )
            await self.ws.close(CLOSE_LAGGING)
        nursery.cancel_scope.cancel()
