"""The run store: every run's events and results, in SQLite or PostgreSQL (docs/store.md)."""

from .backends import StoreError, StoreLocation, StoreNotFoundError, parse_location
from .run_store import (
    LeaseLostError,
    MemoRow,
    ModelCallMemo,
    RunCommitter,
    RunMemo,
    RunNotFoundError,
    RunRecord,
    RunStore,
    default_owner,
    model_call_row,
    step_row,
    tool_call_row,
)
from .schema import LATEST_VERSION, MIGRATIONS, Migration, SchemaTooNewError, migrate
from .writer import WriterStats

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "LeaseLostError",
    "MemoRow",
    "Migration",
    "ModelCallMemo",
    "RunCommitter",
    "RunMemo",
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
    "model_call_row",
    "parse_location",
    "step_row",
    "tool_call_row",
]
