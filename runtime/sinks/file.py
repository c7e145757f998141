"""`FileSink`: the JSONL audit log, one event a line, never a torn line.

Each line (or batch of whole lines) goes to the file in a single `os.write` on a
descriptor opened with `O_APPEND`, with no user-space buffer in between: once
`write` returns, the bytes are in the kernel, so a killed process (even SIGKILL)
leaves only whole lines behind. `fsync=True` also survives a power cut, at the
cost of a disk flush per batch.

Writes are synchronous on purpose. Measured on this machine (2 cores, ext4):
`os.write` of a 300-byte line costs ~0.6 us, `trio.to_thread.run_sync` of the
same write ~170 us. A write to the page cache is treated as fast, so the sink
is `inline`: the hub calls `write_lines` itself (`EventHub.flush`), with no pump
task or wakeup in between. `emit` writes an event at once; the engine's
`publish` holds a synchronous burst of events and flushes it in one write
before each of its awaits, so whenever the run waits its events are in the
kernel, and a SIGKILL can tear only the last write. The trade-off: a log on a
stalled disk (NFS, a device being retried) would stall the run with it, and
`fsync=True` makes every flush wait for the disk. The async `emit` /
`emit_batch` / `emit_lines` remain for callers that drive the sink themselves.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

from ..events.event import PipelineEvent

__all__ = ["FileSink"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_new_file_numbers = itertools.count(1)  # this process's new files (`FileSink(replace=True)`)


class FileSink:
    """Appends events as JSON lines to `path` (created if missing, never truncated), or
    with `replace=True` writes a new file that takes `path`'s place (`install`).

    The audit log: the hub never drops its events (`audit = True`).
    """

    audit = True
    inline = True  # the hub calls write_lines synchronously (see above)
    max_batch = 256

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        name: str = "file",
        replace: bool = False,
    ) -> None:
        """Open `path` for appending (created if missing, with its directory).

        `replace=True`: write a new file instead, created empty beside `path` under a
        hidden name, which `install()` renames over `path` (a run's log: see `install`).
        """
        self.path = path if isinstance(path, Path) else Path(path)  # Path(Path) re-parses
        self.name = name
        self.fsync = fsync
        # Invariant: None, or the new file's own name until `install()` renames it to `path`.
        self._pending: Path | None = None
        if replace:
            fd = self._open_new()
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _CLOEXEC
            try:  # the directory usually exists: skip mkdir's failing syscall and exception
                fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, flags, 0o644)
        # Invariant: an open descriptor until aclose(), then -1.
        self._fd = fd
        # Invariant: whole lines this sink has put in the file (a failed write counts the
        # whole lines that landed before the error; the hub reports them on a full disk).
        self.lines_written = 0

    def _open_new(self) -> int:
        """Create the new, empty file beside `path` (`O_EXCL`: never an existing one)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _CLOEXEC
        for _ in range(100):
            number = next(_new_file_numbers)
            pending = self.path.with_name(f".{self.path.name}.{os.getpid()}-{number}.new")
            try:
                fd = os.open(pending, flags, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(pending, flags, 0o644)
            except FileExistsError:  # left by a killed process whose pid was reused
                continue
            self._pending = pending
            return fd
        raise FileExistsError(f"cannot create a new audit log beside {self.path}")

    def install(self) -> None:
        """Rename the new file of a `replace=True` sink over `path` (once; else nothing).

        The run calls this as it starts: until then `path` is untouched, so a run that
        cannot start changes no existing file; from then on `path` names this run's log.
        Renaming costs about as much as unlinking; truncating the previous log in place
        cost ~150 us on ext4, which starts writing back the dropped data (issue 12).

        Raises:
            OSError: the rename failed (e.g. `path` is a directory); the new file is
                removed.
        """
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        try:
            os.rename(pending, self.path)
        except OSError:
            self._discard(pending)
            raise

    def _discard(self, pending: Path) -> None:
        """Close and remove a new file that never took `path`'s place."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pending)

    def _write(self, data: bytes, lines: int) -> None:
        """Write all of `data` (`lines` whole lines); on an error, count what landed."""
        if self._fd < 0:
            raise RuntimeError(f"FileSink({self.path}) is closed; create a new sink to write again")
        view = memoryview(data)
        try:
            while view:  # a short write happens only on a full disk or a signal
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            self.lines_written += data.count(b"\n", 0, len(data) - len(view))
            raise
        self.lines_written += lines

    def write_lines(self, lines: Sequence[str]) -> None:
        """Append whole lines with one write: the hub's inline path (`EventHub.flush`)."""
        data = ("\n".join(lines) + "\n").encode()
        if self._fd >= 0 and not self.fsync:
            written = os.write(self._fd, data)  # raises before anything of it lands
            if written == len(data):
                self.lines_written += len(lines)
                return
            # A short write: only on a full disk or a signal. `_write` writes the rest (and
            # counts the whole lines that land if it fails).
            landed = data.count(b"\n", 0, written)
            self.lines_written += landed
            self._write(data[written:], len(lines) - landed)
            return
        self._write(data, len(lines))

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        self._write(line.encode() + b"\n", 1)

    async def emit_batch(self, batch: Sequence[tuple[PipelineEvent, str]]) -> None:
        self._write("".join(line + "\n" for _, line in batch).encode(), len(batch))

    async def emit_lines(self, lines: Sequence[str]) -> None:
        """Append whole lines with one write; the hub calls this instead of `emit_batch`,
        so it never has to build `PipelineEvent` objects for the audit log alone."""
        self._write(("\n".join(lines) + "\n").encode(), len(lines))

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent); the hub's synchronous close (`close_inline`).

        A `replace=True` sink closed before `install()` removes its new file (the run
        never started: `path` keeps what it had).
        """
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._discard(pending)
            return
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            if self.fsync:
                os.fsync(fd)
            os.close(fd)
