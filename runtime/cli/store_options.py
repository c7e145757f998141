"""Where `agentflow` keeps runs: the store (`--store`, `AGENTFLOW_STORE`, `--no-store`)
and each run's own JSONL log.

The default store is `.agentflow/agentflow.db` (SQLite) under the current
directory, and a run's log `.agentflow/runs/<run id>.jsonl`: a new file for every
run, so two runs never share a log and no run ever empties another's.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import CannotStartError
from ..store import RunStore, StoreError, StoreLocation, parse_location

__all__ = [
    "DEFAULT_STORE",
    "RUNS_DIR",
    "default_log_path",
    "open_store_for_reading",
    "store_location",
]

DEFAULT_STORE = Path(".agentflow") / "agentflow.db"
RUNS_DIR = Path(".agentflow") / "runs"
STORE_ENV = "AGENTFLOW_STORE"


class StoreUsageError(CannotStartError):
    """The store named on the command line cannot be used (exit 2)."""


def default_log_path(run_id: str) -> Path:
    """`.agentflow/runs/<run id>.jsonl` under the current directory."""
    return RUNS_DIR / f"{run_id}.jsonl"


def store_location(args: argparse.Namespace) -> StoreLocation | None:
    """The store the command uses: `--store`, else $AGENTFLOW_STORE, else the default;
    None with `--no-store`.

    Raises:
        StoreUsageError: the store given is empty.
    """
    if getattr(args, "no_store", False):
        return None
    given = getattr(args, "store", None)
    source = "--store"
    if given is None:
        given, source = os.environ.get(STORE_ENV), STORE_ENV
    if given is None:
        return parse_location(str(DEFAULT_STORE))
    try:
        return parse_location(given)
    except StoreError as exc:
        raise StoreUsageError(f"{source}: {exc}") from None


def open_store_for_reading(args: argparse.Namespace) -> RunStore:
    """The store the history commands read (never created by them).

    Raises:
        StoreUsageError: there is no store there, or it cannot be opened.
    """
    location = store_location(args)
    if location is None:
        raise StoreUsageError("--no-store: this command reads the run store")
    if not location.exists():
        raise StoreUsageError(
            f"no run store at {location.shown}: `agentflow run` records runs there when it "
            f"runs in this directory; pass --store PATH|postgresql://... (or set {STORE_ENV})"
        )
    try:
        return RunStore(location, create=False)
    except StoreError as exc:
        raise StoreUsageError(str(exc)) from None
