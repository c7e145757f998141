"""One live run per audit log: `agentflow run` holds an exclusive lock on its log.

Two runs of one pipeline share the default log path (`<name>-run.jsonl`); if
both wrote it, each would empty and interleave the other's events. The log file
itself is locked with `flock(LOCK_EX | LOCK_NB)` for as long as the run owns it,
so a second run is refused at once, before it touches the file. The lock is
advisory (it binds agentflow runs, not other programs) and dies with the
process, so a killed run leaves no stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import AgentflowError

__all__ = ["LogInUseError", "LogLock"]


class LogInUseError(AgentflowError):
    """Raised when another live run holds the audit log's lock."""


class LogLock:
    """The exclusive lock on one audit log, held from `acquire()` until `release()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def acquire(self) -> None:
        """Open (creating it if missing, never truncating) and lock the log.

        Raises:
            LogInUseError: another process holds the lock.
            OSError: the log cannot be opened (a directory, no permission, ...).
        """
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder is not None else ""
            raise LogInUseError(
                f"{self.path} is in use by another run{who}; use --jsonl PATH"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def truncate(self) -> None:
        """Empty the locked log: one run per audit log."""
        os.ftruncate(self._fd, 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1


def _lock_holder(fd: int) -> int | None:
    """The pid holding a flock on `fd`'s file, from /proc/locks (Linux); None if unknown."""
    stat = os.fstat(fd)
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF"
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
                    return int(fields[4]) if fields[4].isdigit() else None
    except OSError:
        return None
    return None
