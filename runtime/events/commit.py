"""The `EventCommitter` protocol: where the hub commits events before publishing them.

The run store (`agentflow.runtime.store`) implements it; the hub knows only this
protocol, so `events/` does not depend on the store. Commit, then publish: with a
committer, the hub hands each flushed burst of lines to `submit` and delivers them
to the sinks (the JSONL file, the UI, webhooks) only when `done(None)` says they
are committed; `done(error)` means they never will be, and the hub then publishes
nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = ["EventCommitter"]


class EventCommitter(Protocol):
    """Commits a run's events in order; acknowledges each burst on the trio loop."""

    where: str  # names the store in messages, e.g. "run store .agentflow/agentflow.db"

    def submit(
        self,
        first_seq: int,
        lines: Sequence[str],
        kinds: Sequence[str],
        last_hash: str,
        done: Callable[[BaseException | None], None],
    ) -> None:
        """Queue events `first_seq`, `first_seq + 1`, ... (their exact lines and kinds,
        the kinds as `str`, possibly `EventKind`; `last_hash` is the SHA-256 of the last
        line) without blocking; call `done` on the trio loop, in submission order, once
        they are committed (None) or have failed. The hub has at most one burst in flight
        at a time: what it publishes meanwhile is the next burst."""
        ...
