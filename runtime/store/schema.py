"""The run store's schema: versioned, forward-only migrations, each run in a transaction.

One DDL text serves SQLite and PostgreSQL (`TEXT`, `BIGINT`, `DOUBLE PRECISION` mean
the same in both). `agentflow_schema` holds the version; `migrate` applies every
migration above it, in order, inside ONE transaction together with the version
update, so a failing migration leaves the store exactly as it was. A store written
by a newer agentflow (a version this code does not know) is refused, never
downgraded.

The tables (DURABLE.md "The store"): `runs` (one row a run: identity, status, the
lease's owner and fencing `epoch`, the chain's last seq/hash, totals, the final
output), `run_inputs` (each run's input, kept out of the row every commit updates),
`events` (each run's exact chained lines: the JSONL export is these lines),
and the memo tables resume will read: `steps` (the full output of every finished
invocation), `model_calls` (run/agent/item/attempt/turn -> request hash, response,
usage, and since v3 the redacted request) and `tool_calls` (the same key plus the
tool call id -> result).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .backends import Connection, Dialect, StoreError

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "SchemaTooNewError", "migrate"]


@dataclass(frozen=True)
class Migration:
    """One schema step: `version` (1, 2, ...) and the statements that reach it."""

    version: int
    description: str
    statements: tuple[str, ...]


class SchemaTooNewError(StoreError):
    """The store was written by a newer agentflow: its schema version is unknown here."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs and their events",
        (
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                pipeline TEXT NOT NULL,
                pipeline_path TEXT,
                source_hash TEXT NOT NULL,
                agentflow_version TEXT NOT NULL,
                model TEXT,
                options TEXT NOT NULL,
                status TEXT NOT NULL,
                owner TEXT NOT NULL,
                epoch BIGINT NOT NULL,
                last_seq BIGINT NOT NULL,
                last_hash TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION,
                final_state TEXT,
                reason TEXT,
                items_passed BIGINT NOT NULL DEFAULT 0,
                items_failed BIGINT NOT NULL DEFAULT 0,
                items_aborted BIGINT NOT NULL DEFAULT 0,
                items_completed BIGINT NOT NULL DEFAULT 0,
                model_calls BIGINT NOT NULL DEFAULT 0,
                input_tokens BIGINT NOT NULL DEFAULT 0,
                output_tokens BIGINT NOT NULL DEFAULT 0,
                cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
                jsonl_path TEXT,
                output TEXT
            )""",
            # The input has a table of its own: every commit updates its run's row (the
            # lease check, last seq/hash), and SQLite rewrites a whole row on update.
            """CREATE TABLE run_inputs (
                run_id TEXT PRIMARY KEY REFERENCES runs (id),
                input TEXT NOT NULL
            )""",
            "CREATE INDEX runs_by_pipeline ON runs (pipeline, started_at)",
            "CREATE INDEX runs_by_started ON runs (started_at)",
            """CREATE TABLE events (
                run_id TEXT NOT NULL REFERENCES runs (id),
                seq BIGINT NOT NULL,
                kind TEXT NOT NULL,
                line TEXT NOT NULL,
                PRIMARY KEY (run_id, seq)
            )""",
        ),
    ),
    Migration(
        2,
        "memo tables for resume: steps, model calls, tool calls",
        (
            """CREATE TABLE steps (
                run_id TEXT NOT NULL REFERENCES runs (id),
                agent TEXT NOT NULL,
                item TEXT NOT NULL,
                attempt BIGINT NOT NULL,
                output TEXT NOT NULL,
                seq BIGINT NOT NULL,
                PRIMARY KEY (run_id, agent, item, attempt)
            )""",
            """CREATE TABLE model_calls (
                run_id TEXT NOT NULL REFERENCES runs (id),
                agent TEXT NOT NULL,
                item TEXT NOT NULL,
                attempt BIGINT NOT NULL,
                turn BIGINT NOT NULL,
                request_hash TEXT NOT NULL,
                response TEXT NOT NULL,
                usage TEXT NOT NULL,
                seq BIGINT NOT NULL,
                PRIMARY KEY (run_id, agent, item, attempt, turn)
            )""",
            """CREATE TABLE tool_calls (
                run_id TEXT NOT NULL REFERENCES runs (id),
                agent TEXT NOT NULL,
                item TEXT NOT NULL,
                attempt BIGINT NOT NULL,
                turn BIGINT NOT NULL,
                call_id TEXT NOT NULL,
                result TEXT NOT NULL,
                seq BIGINT NOT NULL,
                PRIMARY KEY (run_id, agent, item, attempt, turn, call_id)
            )""",
        ),
    ),
    Migration(
        3,
        "model calls keep their (redacted) request, for the UI's drill-down",
        ("ALTER TABLE model_calls ADD COLUMN request TEXT",),
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS agentflow_schema (version BIGINT NOT NULL)"


def migrate(
    connection: Connection, dialect: Dialect, migrations: Sequence[Migration] = MIGRATIONS
) -> tuple[int, int]:
    """Bring the store's schema up to the last of `migrations`, in one transaction.

    Returns (version before, version after).

    Raises:
        SchemaTooNewError: the store's version is above the last migration known here.
        StoreError: a migration failed (nothing of it, nor of later ones, was applied).
    """
    latest = migrations[-1].version if migrations else 0
    cursor = connection.cursor()
    cursor.execute(dialect.begin)
    try:
        if dialect.name == "postgresql":  # two processes opening a new store at once
            cursor.execute("SELECT pg_advisory_xact_lock(7406981)")
        cursor.execute(_VERSION_TABLE)
        cursor.execute("SELECT version FROM agentflow_schema")
        row = cursor.fetchone()
        if row is None:
            cursor.execute(dialect.sql("INSERT INTO agentflow_schema (version) VALUES (?)"), (0,))
            current = 0
        else:
            current = int(row[0])
        if current > latest:
            raise SchemaTooNewError(
                f"the run store has schema version {current}, newer than this agentflow "
                f"knows (up to {latest}): upgrade agentflow, or use another store (--store)"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                try:
                    cursor.execute(statement)
                except Exception as exc:
                    raise StoreError(
                        f"schema migration {migration.version} ({migration.description}) "
                        f"failed: {exc}; the store is unchanged"
                    ) from exc
        if latest > current:
            cursor.execute(dialect.sql("UPDATE agentflow_schema SET version = ?"), (latest,))
        cursor.execute("COMMIT")
    except BaseException:
        dialect.rollback(connection)
        raise
    return current, max(current, latest)
