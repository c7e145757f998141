"""Fixtures: the same store tests run against SQLite and a throwaway PostgreSQL.

`store_url` is parametrised: a SQLite file in the test's tmp_path, and a fresh
database on a PostgreSQL server started once per session (`pg_server.py`). The
PostgreSQL case is skipped, with the reason, only when no PostgreSQL binary exists
(install Debian's `postgresql`; `.ci/run` does).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from .pg_server import PgServer, find_pg_bin, start_pg_server

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    pg_bin = find_pg_bin()
    if pg_bin is None:
        pytest.skip(
            "no PostgreSQL binary (initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH): "
            "apt-get install postgresql to run the PostgreSQL store tests"
        )
    server = start_pg_server(pg_bin)
    try:
        yield server
    finally:
        server.stop()


def new_pg_database(server: PgServer) -> str:
    """CREATE DATABASE a fresh one on the server; its URL."""
    import psycopg

    name = f"agentflow_test_{next(_databases)}"
    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.database_url(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store: a SQLite path, or a postgresql:// URL of a new database."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "agentflow.db")
    server = request.getfixturevalue("pg_server")
    return new_pg_database(server)
