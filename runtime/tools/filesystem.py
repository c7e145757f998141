"""`FilesystemTool`: read, write and list files, confined to one root directory.

The model chooses the paths, so every path is hostile until proven otherwise:

1. Lexical checks on the string: non-empty text without NUL bytes or
   backslashes, not absolute (`/x`, `C:x`), at most 4096 characters, no
   component over 255 bytes, and no `..` component, also after Unicode NFKC
   normalisation (so fullwidth dots U+FF0E are refused too). `.` and empty components are dropped.
2. Symlinks: the real path of the parent directory (every existing ancestor
   resolved) must lie under the real root. Reads resolve the target too and
   open it with `O_NOFOLLOW`; writes never follow a final symlink (refused) and
   open with `O_NOFOLLOW | O_CREAT`. A symlink inside the root that points
   inside the root is fine.

Anything that would leave the root raises `PathEscapeError`; other refusals
(too big, not text, missing file) raise `ToolError`. Both go back to the model.
Every OS error (a full disk, permissions, the root being a file) becomes a
`ToolError` that names the path as the model gave it, never the absolute path.
Only regular files are read or written: FIFOs and devices are refused after a
`stat`, and opened with `O_NONBLOCK` so a swapped-in FIFO cannot block.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from ..errors import PathEscapeError, ToolError

__all__ = ["FilesystemTool"]

_MAX_PATH = 4096
_MAX_COMPONENT = 255
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def split_relative(path: object) -> list[str]:
    """The components of a safe relative path (empty list: the root itself).

    Raises:
        PathEscapeError: absolute paths, `..` components, NUL bytes, backslashes.
        ToolError: not a string, too long.
    """
    if not isinstance(path, str):
        raise ToolError(f"'path' must be a string relative to the workspace, got {path!r}")
    if "\x00" in path:
        raise PathEscapeError("path contains a NUL byte; use a plain relative path like 'notes.md'")
    if len(path) > _MAX_PATH:
        raise ToolError(f"path is {len(path)} characters long; the limit is {_MAX_PATH}")
    if "\\" in path:
        raise PathEscapeError(
            f"path {path!r} contains a backslash; use '/' to separate directories"
        )
    if path.startswith("/") or (len(path) >= 2 and path[1] == ":"):
        raise PathEscapeError(
            f"path {path!r} is absolute; give a path relative to the workspace, like 'draft.md'"
        )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == ".." or unicodedata.normalize("NFKC", part) in ("..", "."):
            raise PathEscapeError(
                f"path {path!r} goes up with '..'; paths must stay inside the workspace"
            )
        if len(part.encode()) > _MAX_COMPONENT:
            raise ToolError(f"a name in {path!r} is longer than {_MAX_COMPONENT} bytes")
    return parts


class FilesystemTool:
    """Reads, writes and lists text files under `root` (created on first write)."""

    description = (
        "Read, write or list text files in the run's workspace directory. Paths are "
        "relative to the workspace (e.g. 'draft.md', 'notes/a.txt')."
    )
    input_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "op": {"type": "string", "enum": ["read", "write", "list"]},
            "path": {"type": "string", "description": "a path relative to the workspace"},
            "content": {"type": "string", "description": "the text to write (op=write)"},
        },
        "required": ["op", "path"],
        "additionalProperties": False,
    }

    def __init__(
        self, root: str | Path, *, id: str = "filesystem", max_read_bytes: int = 1_000_000
    ) -> None:
        self.id = id
        self.root = Path(root).absolute()
        self.max_read_bytes = max_read_bytes

    async def execute(self, input: Mapping[str, Any]) -> Any:
        """Run one operation; see `input_schema`.

        Raises:
            PathEscapeError: the path would leave the root.
            ToolError: a bad request (unknown op, missing file, too big, not text).
        """
        op, path = input.get("op"), input.get("path", "")
        if op == "read":
            return await trio.to_thread.run_sync(self.read, path)
        if op == "write":
            content = input.get("content")
            if not isinstance(content, str):
                raise ToolError("op 'write' needs a 'content' string with the text to write")
            return await trio.to_thread.run_sync(self.write, path, content)
        if op == "list":
            return await trio.to_thread.run_sync(self.listdir, path)
        raise ToolError(f"unknown op {op!r}; use 'read', 'write' or 'list'")

    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _resolve_parent(self, parts: list[str], original: object) -> tuple[str, str]:
        """(real root, real parent dir) for a path; the parent must stay under the root."""
        real_root = self._real_root()
        parent = os.path.realpath(os.path.join(real_root, *parts[:-1]))
        if not _is_within(parent, real_root):
            raise PathEscapeError(
                f"path {original!r} leads outside the workspace through a symbolic link"
            )
        return real_root, parent

    def _resolve_existing(self, path: object) -> tuple[str, list[str]]:
        """The real path of an existing target under the root (for read and list)."""
        parts = split_relative(path)
        real_root = self._real_root()
        target = os.path.realpath(os.path.join(real_root, *parts))
        if not _is_within(target, real_root):
            raise PathEscapeError(
                f"path {path!r} leads outside the workspace through a symbolic link"
            )
        return target, parts

    def read(self, path: object) -> str:
        """The text of a file under the root."""
        with _os_errors("read", path):
            return self._read(path)

    def _read(self, path: object) -> str:
        target, parts = self._resolve_existing(path)
        if not parts:
            raise ToolError("cannot read the workspace itself; give a file path, or use 'list'")
        try:
            info = os.stat(target)
        except FileNotFoundError:
            raise ToolError(f"no file {path!r} in the workspace; try op list") from None
        _require_regular(info, path)
        # O_NONBLOCK: a FIFO swapped in after the stat must not block the open.
        fd = os.open(target, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            _require_regular(os.fstat(handle.fileno()), path)
            data = handle.read(self.max_read_bytes + 1)
        if len(data) > self.max_read_bytes:
            raise ToolError(f"{path!r} is larger than the {self.max_read_bytes}-byte read limit")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path!r} is not UTF-8 text") from None

    def write(self, path: object, content: str) -> dict[str, Any]:
        """Create or replace a text file under the root; creates parent directories."""
        with _os_errors("write", path):
            return self._write(path, content)

    def _write(self, path: object, content: str) -> dict[str, Any]:
        parts = split_relative(path)
        if not parts:
            raise ToolError("cannot write the workspace itself; give a file path like 'draft.md'")
        if self.root.exists() and not self.root.is_dir():
            raise ToolError(_ROOT_NOT_DIR)
        self.root.mkdir(parents=True, exist_ok=True)
        real_root, parent = self._resolve_parent(parts, path)
        os.makedirs(parent, exist_ok=True)
        # Re-check after creating: a parent swapped for a link would be caught here.
        if not _is_within(os.path.realpath(parent), real_root):
            raise PathEscapeError(f"path {path!r} leads outside the workspace")
        target = os.path.join(parent, parts[-1])
        if os.path.islink(target):
            raise PathEscapeError(
                f"{path!r} is a symbolic link; the tool does not write through links"
            )
        if os.path.lexists(target):
            _require_regular(os.lstat(target), path)
        flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK
        data = content.encode("utf-8")
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as handle:
            _require_regular(os.fstat(handle.fileno()), path)  # nothing written to a FIFO
            handle.truncate(0)
            handle.write(data)
        return {"path": "/".join(parts), "bytes": len(data)}

    def listdir(self, path: object = "") -> dict[str, Any]:
        """The entries of a directory under the root (directories end with '/')."""
        with _os_errors("list", path):
            return self._listdir(path)

    def _listdir(self, path: object) -> dict[str, Any]:
        target, parts = self._resolve_existing(path or ".")
        if not parts and not os.path.lexists(target):
            return {"path": ".", "entries": []}  # the root appears on first write
        if not parts and not os.path.isdir(target):
            raise ToolError(_ROOT_NOT_DIR)
        if not os.path.isdir(target):
            raise ToolError(f"{path!r} is not a directory in the workspace")
        with os.scandir(target) as scan:
            entries = sorted(
                entry.name + ("/" if entry.is_dir(follow_symlinks=False) else "") for entry in scan
            )
        return {"path": "/".join(parts) or ".", "entries": entries}


_ROOT_NOT_DIR = (
    "the workspace root is not a directory (a file is in its place); "
    "ask the operator to fix the tool's root"
)


def _require_regular(info: os.stat_result, path: object) -> None:
    """Refuse directories, FIFOs, sockets and devices: only regular files are read or written."""
    if stat.S_ISDIR(info.st_mode):
        raise ToolError(f"{path!r} is a directory; use op list")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{path!r} is not a regular file (a FIFO, socket or device)")


@contextmanager
def _os_errors(op: str, path: object) -> Iterator[None]:
    """Turn any OS error into a `ToolError` naming `path` as given (never the absolute path)."""
    try:
        yield
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ToolError(f"cannot {op} {path!r} in the workspace: {why}") from None
