"""Hostile clients of the UI over plain sockets: a WebSocket that never reads, raw frames.

Real browsers and `trio-websocket` read their sockets for you; these do not, so
they can stall the server's writes (a small receive buffer, then no reads) or
send what no well-behaved client would (invalid UTF-8, odd request targets).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

__all__ = [
    "SMALL_RCVBUF",
    "drain_until_closed",
    "handshake",
    "masked_frame",
    "open_websocket",
    "raw_request",
    "read_close_code",
    "stalled_http_get",
    "stalled_websocket",
]

SMALL_RCVBUF = 4096
"""The receive buffer of a client that stops reading: the kernel fills it at once."""


def handshake(port: int, *, target: str = "/ws", host: str | None = None) -> bytes:
    """A WebSocket opening handshake for `target` on 127.0.0.1:`port`."""
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def stalled_websocket(port: int, *, timeout: float = 30) -> socket.socket:
    """A WebSocket client that completes the handshake, then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    _handshake(sock, port)
    return sock


def open_websocket(port: int, *, timeout: float = 30) -> socket.socket:
    """A WebSocket client socket after a completed handshake."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    _handshake(sock, port)
    return sock


def _handshake(sock: socket.socket, port: int) -> None:
    sock.sendall(handshake(port))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: read nothing beyond the response head
        assert chunk, f"the server closed the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head


def stalled_http_get(port: int, target: str, *, timeout: float = 30) -> socket.socket:
    """An HTTP client that sends `GET target` and never reads the response."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


def drain_until_closed(sock: socket.socket) -> int:
    """Read until the server has closed the connection; returns the bytes read.

    Raises socket.timeout (the socket's own timeout) if the server keeps it open.
    """
    total = 0
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return total
        if not chunk:
            return total
        total += len(chunk)


def masked_frame(payload: bytes, *, opcode: int = 0x1) -> bytes:
    """One final WebSocket frame from a client (clients must mask), any payload bytes."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    key = (mask * (length // 4 + 1))[:length]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return head + mask + body


def raw_request(port: int, request: bytes, *, timeout: float = 30) -> bytes:
    """Send `request` as is and return the response's status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        response = b""
        while b"\r\n" not in response:
            chunk = sock.recv(4096)
            if not chunk:
                break
            response += chunk
    return response.split(b"\r\n", 1)[0]


class _Ended(Exception):
    """The server ended the TCP connection."""


def read_close_code(sock: socket.socket) -> int | None:
    """Read server frames (unmasked) until the server closes; the close frame's code.

    None when the server ended the connection without a close frame (or one
    without a code); the socket's timeout turns a connection left open into
    an error.
    """

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            try:
                chunk = sock.recv(n - len(data))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise _Ended
            data += chunk
        return data

    try:
        return _close_code(exactly)
    except _Ended:
        return None


def _close_code(exactly: Callable[[int], bytes]) -> int | None:
    while True:
        first, second = exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", exactly(8))
        payload = exactly(length)
        if first & 0x0F == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
