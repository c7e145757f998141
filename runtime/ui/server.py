"""Serve the live UI with Hypercorn in the caller's trio loop.

    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_ui, hub, pipeline, UiConfig(port=0), shutdown=done)

`serve_ui` returns when `shutdown` is set: open WebSockets are closed with
1001 first, so shutdown does not wait for Hypercorn's graceful timeout.
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

import trio
from hypercorn.config import Config
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from ..errors import AgentflowError
from ..hub import EventHub
from ..pipeline import CompiledPipeline
from .app import UiConfig, create_app
from .source import UiSource

__all__ = [
    "PortInUseError",
    "UiConfig",
    "UiSource",
    "create_app",
    "is_loopback",
    "resolve_token",
    "serve_log",
    "serve_source",
    "serve_ui",
]

_log = logging.getLogger("agentflow.ui")
SEND_BUFFER = 1024 * 1024


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
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the UI of a live run until `shutdown` is set.

    Start it with `url = await nursery.start(serve_ui, hub, pipeline, config,
    shutdown)`: `url` is the bound address (a real port when `config.port` is
    0), with `?token=...` appended when a token is required. `shutdown` may be
    passed by keyword too (through functools.partial).

    Raises:
        PortInUseError: `config.port` is taken on `config.host`.
    """
    source = UiSource.from_hub(hub, pipeline, model_name=model_name)
    await serve_source(source, config, shutdown, task_status=task_status)


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
    source: UiSource,
    config: UiConfig,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the UI over any source (a live hub, or a run log for `agentflow serve`).

    Raises:
        PortInUseError: `config.port` is taken on `config.host`.
    """
    config = resolve_token(config)
    hyper = _hypercorn_config(config)
    sockets = _bind(hyper, config)
    # The app checks Host/Origin against the bound port (port 0 picks one).
    config = replace(config, port=sockets.insecure_sockets[0].getsockname()[1])
    app = create_app(source, config, closing=shutdown)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(source.run)
        async with trio.open_nursery() as server:
            binds: list[str] = await server.start(_worker, app, hyper, sockets, shutdown)
            url = _public_url(binds[0], config)
            _log.info("agentflow UI on %s", url)
            task_status.started(url)
        # Hypercorn has stopped (WebSockets were closed with 1001 on `shutdown`).
        nursery.cancel_scope.cancel()


async def _worker(
    app: Any,
    hyper: Config,
    sockets: Any,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await worker_serve(
        wrap_app(app, hyper.wsgi_max_body_size, None),
        hyper,
        sockets=sockets,
        shutdown_trigger=shutdown.wait,
        task_status=task_status,
    )


def _hypercorn_config(config: UiConfig) -> Config:
    hyper = Config()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hyper.bind = [f"{host}:{config.port}"]
    hyper.accesslog = None
    hyper.errorlog = _log
    hyper.graceful_timeout = 1.0
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
        # that stopped reading completes instead of blocking (Hypercorn shields
        # sends from cancellation), so the stall timer can drop that client.
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, max(SEND_BUFFER, 4 * config.ws_window_bytes)
        )
        sock.listen(hyper.backlog)
    return sockets


def _public_url(bind: str, config: UiConfig) -> str:
    url = bind + "/"
    if config.token is not None:
        url += f"?token={config.token}"
    return url
