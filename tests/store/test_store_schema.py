"""The store's schema: versioned, forward-only migrations, each run in one transaction
(SQLite and PostgreSQL alike)."""

from __future__ import annotations

import pytest

from agentflow.runtime.store import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    RunStore,
    SchemaTooNewError,
    StoreError,
    migrate,
    parse_location,
)
from agentflow.runtime.store.backends import connect


def _version(url: str) -> int:
    location = parse_location(url)
    connection = connect(location, create=False)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT version FROM agentflow_schema")
        return int(cursor.fetchone()[0])
    finally:
        connection.close()


def _tables(url: str) -> set[str]:
    location = parse_location(url)
    connection = connect(location, create=False)
    try:
        cursor = connection.cursor()
        if location.dialect.name == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()


def test_a_new_store_is_created_at_the_latest_version(store_url: str) -> None:
    RunStore.open(store_url).close()
    assert _version(store_url) == LATEST_VERSION == 3
    assert {"runs", "events", "steps", "model_calls", "tool_calls"} <= _tables(store_url)
    RunStore.open(store_url).close()  # opening again changes nothing
    assert _version(store_url) == LATEST_VERSION


def test_an_older_store_is_migrated_forward_keeping_its_runs(store_url: str) -> None:
    location = parse_location(store_url)
    connection = connect(location, create=True)
    try:
        assert migrate(connection, location.dialect, MIGRATIONS[:1]) == (0, 1)
        cursor = connection.cursor()
        cursor.execute(
            location.dialect.sql(
                "INSERT INTO runs (id, pipeline, source_hash, agentflow_version, "
                "options, status, owner, epoch, last_seq, last_hash, started_at, updated_at) "
                "VALUES (?, 'p', 'h', '0.0', '{}', 'succeeded', 'o', 1, -1, '', 1, 1)"
            ),
            ("run-old",),
        )
    finally:
        connection.close()
    assert "steps" not in _tables(store_url)
    with RunStore.open(store_url) as store:
        old = store.run("run-old")
        assert (old.status, old.input) == ("succeeded", None)
    assert _version(store_url) == 3 and "steps" in _tables(store_url)


def test_a_failing_migration_leaves_the_store_as_it_was(store_url: str) -> None:
    RunStore.open(store_url).close()
    broken = Migration(
        4, "half good", ("CREATE TABLE half_done (x BIGINT)", "CREATE TABLE runs (x BIGINT)")
    )
    location = parse_location(store_url)
    connection = connect(location, create=False)
    try:
        with pytest.raises(StoreError, match=r"schema migration 4 \(half good\) failed"):
            migrate(connection, location.dialect, (*MIGRATIONS, broken))
    finally:
        connection.close()
    assert _version(store_url) == 3
    assert "half_done" not in _tables(store_url)  # the whole migration rolled back


def test_a_store_from_a_newer_agentflow_is_refused(store_url: str) -> None:
    location = parse_location(store_url)
    connection = connect(location, create=True)
    try:
        newer = Migration(LATEST_VERSION + 1, "from the future", ("CREATE TABLE future (x TEXT)",))
        migrate(connection, location.dialect, (*MIGRATIONS, newer))
    finally:
        connection.close()
    with pytest.raises(SchemaTooNewError, match="schema version 4, newer than this agentflow"):
        RunStore.open(store_url)
