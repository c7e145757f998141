"""Run ids: `run-` + 12 random hex characters."""

from __future__ import annotations

import secrets

__all__ = ["new_run_id"]


def new_run_id() -> str:
    return f"run-{secrets.token_hex(6)}"
