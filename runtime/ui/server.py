"""Serve the live UI with Hypercorn in the caller's trio loop.

    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_ui, hub, pipeline, UiConfig(port=0), shutdown=done)

`serve_ui` returns when `shutdown` is set: open WebSockets are closed with
1001 first, so shutdown does not wait for Hypercorn's graceful timeout. No
client can hold up a shutdown or Ctrl-C: socket writes are bounded
(`transport.py`), and a client that stops reading is dropped after
`UiConfig.ws_stall_timeout_s`.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import secrets
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio
from hypercorn.config import Config
from hypercorn.utils import wrap_app

from ..errors import AgentflowError
from ..events.hub import EventHub
from ..pipeline import CompiledPipeline
from ..store import RunStore, StoreLocation
from .answer_endpoint import AnswerBackend
from .app import UiConfig, as_catalog, create_app, one_line_logger
from .catalog import PipelineLoader, RunCatalog
from .source import UiSource
from .transport import serve_connections

__all__ = [
    "PortInUseError",
    "UiConfig",
    "UiSource",
    "create_app",
    "is_loopback",
    "resolve_token",
    "serve_log",
    "serve_source",
    "serve_store",
    "serve_ui",
]

_log = logging.getLogger("agentflow.ui")
_server_log = one_line_logger("agentflow.ui.server")
SEND_BUFFER = 1024 * 1024
MAX_BUFFERED_MESSAGE_BYTES = 64 * 1024


class PortInUseError(AgentflowError):
    """Raised when the UI cannot bind its port because something else listens there."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(
            f"port {port} on {host} is in use, so the UI cannot start. "
            f"Use --port N to pick another port, or --port 0 for any free one "
            "(or --no-ui to run without the UI)."
        )


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(config: UiConfig) -> UiConfig:
    """`config` with a token generated when the host is reachable from other machines."""
    if config.token is None and not is_loopback(config.host):
        return replace(config, token=secrets.token_urlsafe(24))
    return config


async def serve_ui(
    hub: EventHub,
    pipeline: CompiledPipeline,
    config: UiConfig,
    shutdown: trio.Event,
    *,
    model_name: str | None = None,
    store: RunStore | StoreLocation | None = None,
    run_id: str | None = None,
    loader: PipelineLoader | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the UI of a live run until `shutdown` is set.

    Start it with `url = await nursery.start(serve_ui, hub, pipeline, config,
    shutdown)`: `url` is the bound address (a real port when `config.port` is
    0), with `?token=...` appended when a token is required. `shutdown` may be
    passed by keyword too (through functools.partial).

    With a `store` (open, or its location: opened for reading when a page first
    needs it), the UI serves every run recorded there too: `/` is the runs list,
    and `url` is this run's own page, `/runs/<run_id>`; `loader` reads another run's
    pipeline YAML for its graph (`load_for_inspection`; None: drawn from its events).

    Raises:
        PortInUseError: `config.port` is taken on `config.host`.
    """
    source = UiSource.from_hub(hub, pipeline, model_name=model_name)
    if isinstance(store, StoreLocation):
        catalog = RunCatalog(store_location=store, loader=loader)
    else:
        catalog = RunCatalog(store, loader=loader)
    catalog.add(run_id or hub.run_id or "run", source, primary=True)
    await serve_source(catalog, config, shutdown, task_status=task_status)


async def serve_store(
    store: RunStore,
    config: UiConfig,
    shutdown: trio.Event,
    *,
    answers: AnswerBackend | None = None,
    loader: PipelineLoader | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every run of `store` (`agentflow serve`): `/` is the runs list; with
    `answers`, a page may answer a waiting run's human step (`answer_endpoint.py`).
    `loader` reads a run's pipeline YAML for its graph (the CLI gives
    `load_for_inspection`; None: each run is drawn from its events).

    Raises:
        PortInUseError: `config.port` is taken on `config.host`.
    """
    await serve_source(
        RunCatalog(store, loader=loader),
        config,
        shutdown,
        answers=answers,
        task_status=task_status,
    )


async def serve_log(
    log: UiSource | str | Path,
    pipeline: CompiledPipeline,
    config: UiConfig,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a finished run (`agentflow serve RUN.jsonl`) until `shutdown` is set.

    `log` is the run's JSONL audit log, or a `UiSource.from_log` already read.

    Raises:
        RunLogError: the log cannot be read as events.
        PortInUseError: `config.port` is taken on `config.host`.
    """
    source = log if isinstance(log, UiSource) else UiSource.from_log(log, pipeline)
    await serve_source(source, config, shutdown, task_status=task_status)


async def serve_source(
    source: UiSource | RunCatalog,
    config: UiConfig,
    shutdown: trio.Event,
    *,
    answers: AnswerBackend | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the UI over any source (a live hub, or a run log for `agentflow serve`), or
    over a catalog of runs (`answers`: see `create_app`).

    Raises:
        PortInUseError: `config.port` is taken on `config.host`.
    """
    config = resolve_token(config)
    hyper = _hypercorn_config(config)
    sockets = _bind(hyper, config)
    # The app checks Host/Origin against the bound port (port 0 picks one).
    config = replace(config, port=sockets.insecure_sockets[0].getsockname()[1])
    catalog = as_catalog(source)
    app = create_app(catalog, config, closing=shutdown, answers=answers)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(catalog.run)
            async with trio.open_nursery() as server:
                binds: list[str] = await server.start(
                    _worker, app, hyper, sockets, shutdown, config.ws_stall_timeout_s
                )
                url = _public_url(binds[0], config, catalog)
                _log.info("agentflow UI on %s", url)
                task_status.started(url)
            # Hypercorn has stopped (WebSockets were closed with 1001 on `shutdown`).
            nursery.cancel_scope.cancel()
    finally:
        catalog.close()  # a store the UI opened for reading: stop its writer thread


async def _worker(
    app: Any,
    hyper: Config,
    sockets: Any,
    shutdown: trio.Event,
    stall_timeout_s: float,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_connections(
        wrap_app(app, hyper.wsgi_max_body_size, None),
        hyper,
        sockets,
        shutdown,
        stall_timeout_s=stall_timeout_s,
        task_status=task_status,
    )


def _hypercorn_config(config: UiConfig) -> Config:
    hyper = Config()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hyper.bind = [f"{host}:{config.port}"]
    hyper.accesslog = None
    hyper.errorlog = _server_log  # one line per error, never a traceback on the terminal
    hyper.graceful_timeout = 1.0
    # A client only ever sends acks (about 30 bytes; the app closes anything over
    # MAX_CLIENT_MESSAGE_BYTES with 1008). Hypercorn closes a message over this
    # with 1009 before buffering more, so no client can make the UI hold megabytes.
    hyper.websocket_max_message_size = MAX_BUFFERED_MESSAGE_BYTES
    return hyper


def _bind(hyper: Config, config: UiConfig) -> Any:
    """Create and listen on the sockets ourselves, so a taken port is a clear error."""
    try:
        sockets = hyper.create_sockets()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(config.host, config.port) from error
        raise
    for sock in sockets.insecure_sockets:
        # Accepted sockets inherit this: a send buffer larger than a client's
        # WebSocket window (UiConfig.ws_window_bytes) means a send to a client
        # that stopped reading usually completes instead of blocking. When it
        # cannot (an event larger than the buffer), the bounded writes of
        # transport.py drop the client after the stall timeout.
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, max(SEND_BUFFER, 4 * config.ws_window_bytes)
        )
        sock.listen(hyper.backlog)
    return sockets


def _public_url(bind: str, config: UiConfig, catalog: RunCatalog) -> str:
    """The page to open: the run's own page when a store lists other runs at `/`."""
    url = bind + "/"
    if catalog.has_store and catalog.primary is not None:
        url += "runs/" + quote(catalog.primary, safe="")
    if config.token is not None:
        url += f"?token={config.token}"
    return url
