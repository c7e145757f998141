"""The run store's two backends: SQLite (stdlib `sqlite3`, WAL) and PostgreSQL (psycopg 3).

Both are driven through the same few DB-API calls with explicit transactions
(`BEGIN IMMEDIATE` / `BEGIN`, `COMMIT`, `ROLLBACK` on an autocommit connection), and
one SQL text whose `?` placeholders become `%s` for psycopg. Every connection is
synchronous: the run's writes go through the store's one writer thread
(`writer.py`), the CLI's reads through a connection of their own.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import AgentflowError

__all__ = [
    "Connection",
    "Dialect",
    "StoreError",
    "StoreLocation",
    "StoreNotFoundError",
    "connect",
    "parse_location",
]


class StoreError(AgentflowError):
    """The run store cannot be opened, read or written."""


class StoreNotFoundError(StoreError):
    """A store that should exist (for `agentflow runs`, `show`, ...) does not."""


class Cursor(Protocol):
    rowcount: int

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, params: Any, /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def cursor(self) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends: the placeholder and the transaction start."""

    name: str  # "sqlite" | "postgresql"
    begin: str
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, text: str) -> str:
        """`text` with its `?` placeholders in this backend's style."""
        if self.name == "sqlite":
            return text
        converted = self._cache.get(text)
        if converted is None:
            converted = self._cache[text] = text.replace("?", "%s")
        return converted

    def rollback(self, connection: Connection) -> None:
        """End a failed transaction; a connection too broken for that is left as is."""
        with contextlib.suppress(Exception):
            connection.cursor().execute("ROLLBACK")


SQLITE = Dialect("sqlite", "BEGIN IMMEDIATE")
POSTGRESQL = Dialect("postgresql", "BEGIN")


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives: a SQLite file path, or a PostgreSQL connection URL."""

    dialect: Dialect
    target: str  # the file path or the URL

    @property
    def shown(self) -> str:
        """For messages: the path, or the URL without its password."""
        if self.dialect is SQLITE:
            return self.target
        scheme, sep, rest = self.target.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if at and ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        return f"{scheme}{sep}{userinfo}{at}{host}"

    def exists(self) -> bool:
        """False only for a SQLite file that is not there (a server is assumed to exist)."""
        return self.dialect is not SQLITE or Path(self.target).exists()


def parse_location(text: str) -> StoreLocation:
    """`postgresql://...` (or `postgres://...`) is PostgreSQL; anything else a SQLite path.

    Raises:
        StoreError: the text is empty.
    """
    if not text.strip():
        raise StoreError("the run store is empty: give a file path or a postgresql:// URL")
    if text.startswith(("postgresql://", "postgres://")):
        return StoreLocation(POSTGRESQL, text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite://") :]
    return StoreLocation(SQLITE, os.fspath(text))


def connect(location: StoreLocation, *, create: bool) -> Connection:
    """A new autocommit connection to the store (the caller begins its transactions).

    Raises:
        StoreNotFoundError: `create` is False and the SQLite file does not exist.
        StoreError: the store cannot be opened (permissions, a server that does not
            answer, psycopg not installed, ...).
    """
    if location.dialect is SQLITE:
        return _connect_sqlite(Path(location.target), create=create)
    return _connect_postgresql(location)


def _connect_sqlite(path: Path, *, create: bool) -> Connection:
    if not create and not path.exists():
        raise StoreNotFoundError(f"no run store at {path}")
    if path.is_dir():
        raise StoreError(f"run store {path}: is a directory, not a SQLite file")
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # a committed group survives a power cut
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"run store {path}: cannot open it: {exc}") from None
    return connection


def _connect_postgresql(location: StoreLocation) -> Connection:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            f"run store {location.shown}: PostgreSQL needs psycopg 3 "
            "(pip install 'agentflow[postgres]')"
        ) from None
    try:
        connection: Connection = psycopg.connect(
            location.target, autocommit=True, connect_timeout=10
        )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"run store {location.shown}: cannot connect: {reason}") from None
    return connection
