"""Hypercorn's trio server, with socket writes that a client cannot hang.

Hypercorn shields every socket write from cancellation, because a frame cut
in half would corrupt the stream. So a client that stops reading blocks a write
forever, and with it the server's shutdown and Ctrl-C. Here a write:

- that makes no progress for `stall_timeout_s` aborts the connection (the
  socket is reset and closed): the client stopped reading;
- that is cancelled (shutdown, Ctrl-C, the app giving up on a client) stops at
  once. If part of the data had gone out, the connection is aborted, since
  the stream cannot be resumed mid-frame; if none had, it is left intact.

`serve_connections` is Hypercorn's `worker_serve` for plain (non-TLS) sockets
with that connection class; nothing else of Hypercorn's behaviour changes.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config, Sockets
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import repr_socket_addr

__all__ = ["BoundedWriteConnection", "serve_connections"]

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class BoundedWriteConnection(TCPServer):
    """One client connection whose writes never wait on the client for long."""

    def __init__(self, stall_timeout_s: float, *args: Any) -> None:
        super().__init__(*args)
        self.stall_timeout_s = stall_timeout_s

    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            try:
                await self._write(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())

    async def _write(self, data: bytes) -> None:
        """Send all of `data`, each step bounded by the stall timeout (see the module doc).

        Raises:
            trio.BrokenResourceError: the client stalled or went away (the
                connection is aborted).
            trio.ClosedResourceError: the connection was already closed.
        """
        sock = self.stream.socket
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                # A trio socket send that is cancelled has sent nothing.
                with trio.move_on_after(self.stall_timeout_s) as stalled:
                    written += await sock.send(view[written:])
                if stalled.cancelled_caught:
                    self.abort()
                    raise trio.BrokenResourceError("the client stopped reading")
        except trio.Cancelled:
            if written:
                self.abort()
            raise
        except OSError as error:
            self.abort()
            raise trio.BrokenResourceError(str(error)) from error

    def abort(self) -> None:
        """Reset and close the connection now, whatever is still unsent."""
        sock = self.stream.socket
        if sock.fileno() == -1:
            return
        with contextlib.suppress(OSError):  # already reset by the peer: just close
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        sock.close()  # tasks waiting on this socket get ClosedResourceError


async def serve_connections(
    app: AppWrapper,
    config: Config,
    sockets: Sockets,
    shutdown: trio.Event,
    *,
    stall_timeout_s: float,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on the listening `sockets` until `shutdown` is set.

    `task_status.started` gets the bound URLs. On shutdown, connections still
    open get `config.graceful_timeout` to finish, then are cancelled.
    """
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as connections:
            listeners = [
                trio.SocketListener(trio.socket.from_stdlib_socket(sock))
                for sock in sockets.insecure_sockets
            ]
            connection = partial(
                BoundedWriteConnection,
                stall_timeout_s,
                app,
                config,
                context,
                ConnectionState(lifespan_state.copy()),
            )
            task_status.started(
                [
                    f"http://{repr_socket_addr(sock.family, sock.getsockname())}"
                    for sock in sockets.insecure_sockets
                ]
            )
            try:
                async with trio.open_nursery() as accepting:
                    serve = partial(trio.serve_listeners, handler_nursery=connections)
                    accepting.start_soon(serve, connection, listeners)
                    await shutdown.wait()
                    accepting.cancel_scope.cancel()
            finally:
                await context.terminated.set()
                connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
