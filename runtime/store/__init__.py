"""The run store: every run's events and results, in SQLite or PostgreSQL (docs/store.md)."""

from .backends import StoreError, StoreLocation, StoreNotFoundError, parse_location
from .run_store import (
    LeaseLostError,
    RunCommitter,
    RunNotFoundError,
    RunRecord,
    RunStore,
    default_owner,
)
from .schema import LATEST_VERSION, MIGRATIONS, Migration, SchemaTooNewError, migrate
from .writer import WriterStats

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "LeaseLostError",
    "Migration",
    "RunCommitter",
    "RunNotFoundError",
    "RunRecord",
    "RunStore",
    "SchemaTooNewError",
    "StoreError",
    "StoreLocation",
    "StoreNotFoundError",
    "WriterStats",
    "default_owner",
    "migrate",
    "parse_location",
]
