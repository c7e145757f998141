"""Whether a run marked `running` still has a live owner: `agentflow runs` / `show`
and the UI call a `running` run whose owner was a process on this machine that no
longer exists `interrupted` (it crashed or was killed)."""

from __future__ import annotations

import os
import socket

from .run_store import RunRecord

__all__ = ["owner_is_gone", "shown_status"]


def owner_is_gone(owner: str) -> bool:
    """True when `owner` (`host:pid`) is a process of this host that no longer exists.

    An owner on another host, or one whose liveness cannot be checked, is not gone."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def shown_status(record: RunRecord) -> str:
    """The run's status; `interrupted` for a `running` run whose local owner is dead."""
    if record.status == "running" and owner_is_gone(record.owner):
        return "interrupted"
    return record.status
