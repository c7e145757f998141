"""`FilesystemTool`: read, write and list files, confined to one root directory.

The model chooses the paths, so every path is hostile until proven otherwise,
and so is the tree: another process may swap a directory for a symlink while
the tool works. Hence:

1. Lexical checks on the string: non-empty text without NUL bytes, lone
   surrogates or backslashes, not absolute (`/x`, `C:x`), at most 4096
   characters, no component over 255 bytes, and no `..` component, also after
   Unicode NFKC normalisation (so fullwidth dots U+FF0E are refused too). `.`
   and empty components are dropped.
2. No name is ever resolved by the kernel from a path string. The walk starts
   at a file descriptor of the root and opens one component at a time with
   `openat(dir_fd, name, O_NOFOLLOW)`: a directory with `O_DIRECTORY`, the
   final file with `O_NOFOLLOW` (plus `O_CREAT` for writes). A symlink met on
   the way is read (`readlinkat`) and its target walked the same way, from the
   directory that holds it; `..` in a target steps back to the directory
   descriptor held before, and stepping above the root, or an absolute
   target, is an escape. So a symlink inside the root that points inside the
   root still works, and swapping any component for a symlink mid-walk can
   only make the walk fail, never leave the root. Writes never go through a
   symlink as the final component (refused), even one pointing inside.
3. Only regular files with one link are read or written: FIFOs, devices and
   directories are refused after an `fstat` of the opened descriptor, and
   so is a file with more than one hard link (a hard link in the root could
   name a file outside it). Opens use `O_NONBLOCK`, so a FIFO cannot block.

Anything that would leave the root raises `PathEscapeError`; other refusals
(too big, not text, missing file) raise `ToolError`. Both go back to the model.
Every OS error (a full disk, permissions, the root being a file) becomes a
`ToolError` that names the path as the model gave it, never the absolute path.
The root itself is the operator's choice and is opened as configured.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import trio

from ..errors import PathEscapeError, ToolError

__all__ = ["FilesystemTool"]

_MAX_PATH = 4096
_MAX_COMPONENT = 255
_MAX_SYMLINKS = 40  # as the kernel's own limit on links followed in one lookup
_NOFOLLOW = os.O_NOFOLLOW
_CLOEXEC = os.O_CLOEXEC
_NONBLOCK = os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK


def split_relative(path: object) -> list[str]:
    """The components of a safe relative path (empty list: the root itself).

    Raises:
        PathEscapeError: absolute paths, `..` components, NUL bytes, backslashes.
        ToolError: not a string, not valid Unicode (lone surrogates), too long.
    """
    if not isinstance(path, str):
        raise ToolError(f"'path' must be a string relative to the workspace, got {path!r}")
    if "\x00" in path:
        raise PathEscapeError("path contains a NUL byte; use a plain relative path like 'notes.md'")
    if len(path) > _MAX_PATH:
        raise ToolError(f"path is {len(path)} characters long; the limit is {_MAX_PATH}")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ToolError(
            f"path {path!r} is not valid Unicode text (it holds a lone surrogate); "
            "use a plain relative path like 'notes.md'"
        ) from None
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

    def _open_root(self, *, create: bool) -> int | None:
        """A descriptor of the root directory; None if it does not exist (and not `create`)."""
        if create:
            if self.root.exists() and not self.root.is_dir():
                raise ToolError(_ROOT_NOT_DIR)
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise ToolError(_ROOT_NOT_DIR) from None

    def read(self, path: object) -> str:
        """The text of a file under the root (a symlink that stays inside is followed)."""
        with _os_errors("read", path):
            return self._read(path)

    def _read(self, path: object) -> str:
        parts = split_relative(path)
        if not parts:
            raise ToolError("cannot read the workspace itself; give a file path, or use 'list'")
        root_fd = self._open_root(create=False)
        if root_fd is None:
            raise ToolError(f"no file {path!r} in the workspace; try op list")
        with _Walk(root_fd, path) as walk:
            fd = walk.open_final(parts, _READ_FLAGS, create_dirs=False, follow_final=True)
        _check_opened(fd, path)
        with os.fdopen(fd, "rb") as handle:
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
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError:
            raise ToolError(
                "the 'content' is not valid Unicode text (it holds a lone surrogate)"
            ) from None
        root_fd = self._open_root(create=True)
        assert root_fd is not None  # created above
        with _Walk(root_fd, path) as walk:
            fd = walk.open_final(parts, _WRITE_FLAGS, create_dirs=True, follow_final=False)
        # Checked on the opened file, before any byte changes: nothing is written
        # to a FIFO, a device, or a file that is also linked from elsewhere.
        _check_opened(fd, path)
        with os.fdopen(fd, "wb") as handle:
            handle.truncate(0)
            handle.write(data)
        return {"path": "/".join(parts), "bytes": len(data)}

    def listdir(self, path: object = "") -> dict[str, Any]:
        """The entries of a directory under the root (directories end with '/')."""
        with _os_errors("list", path):
            return self._listdir(path)

    def _listdir(self, path: object) -> dict[str, Any]:
        parts = split_relative(path or ".")
        root_fd = self._open_root(create=False)
        if root_fd is None:
            if not parts:
                return {"path": ".", "entries": []}  # the root appears on first write
            raise ToolError(f"{path!r} is not a directory in the workspace")
        if parts:
            with _Walk(root_fd, path) as walk:
                fd = walk.open_final(parts, _DIR_FLAGS, create_dirs=False, follow_final=True)
        else:
            fd = root_fd
        try:
            with os.scandir(fd) as scan:
                entries = sorted(
                    _shown_name(entry.name) + ("/" if entry.is_dir(follow_symlinks=False) else "")
                    for entry in scan
                )
        finally:
            os.close(fd)
        return {"path": "/".join(parts) or ".", "entries": entries}


class _Walk:
    """One path walk from the root's descriptor; owns (and closes) every directory it opens.

    `self.dirs` is the chain of directory descriptors from the root to the
    current directory: `..` in a symlink's target pops it, so the walk can
    never climb above the root, whatever the tree looks like meanwhile.
    """

    def __init__(self, root_fd: int, original: object) -> None:
        self.dirs = [root_fd]
        self.original = original
        self.links_followed = 0

    def __enter__(self) -> _Walk:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.dirs:
            os.close(fd)
        self.dirs = []

    def open_final(
        self, parts: list[str], flags: int, *, create_dirs: bool, follow_final: bool
    ) -> int:
        """Open `parts` below the root: directories on the way, then the last one with `flags`.

        Raises:
            PathEscapeError: a symlink on the way leads outside the root, or (not
                `follow_final`) the final component is a symlink.
            ToolError: a component is missing or not a directory; too many links.
        """
        pending = deque(parts)
        while pending:
            name = pending.popleft()
            if name in ("", "."):
                continue
            if name == "..":  # only from a symlink's target: split_relative refuses it
                if len(self.dirs) == 1:
                    raise self._escape()
                os.close(self.dirs.pop())
                continue
            last = not pending
            try:
                fd = os.open(name, flags if last else _DIR_FLAGS, 0o644, dir_fd=self.dirs[-1])
            except FileNotFoundError:
                if not create_dirs:
                    raise ToolError(
                        f"no file or directory {self.original!r} in the workspace; try op list"
                    ) from None
                if last:
                    raise  # the directory itself went away meanwhile
                _mkdir_at(name, self.dirs[-1])
                pending.appendleft(name)
                continue
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO):
                    raise
                wants_dir = not last or bool(flags & os.O_DIRECTORY)
                target = self._link_target(
                    name, exc, last=last, wants_dir=wants_dir, follow=follow_final or not last
                )
                if target is None:
                    pending.appendleft(name)  # it changed under us: look at it again
                else:
                    pending.extendleft(reversed(target.split("/")))
                continue
            if last:
                return fd
            self.dirs.append(fd)
        # Every component was `.` or a `..` back to a directory: the target is a directory.
        raise ToolError(f"{self.original!r} is a directory; use op list")

    def _link_target(
        self, name: str, exc: OSError, *, last: bool, wants_dir: bool, follow: bool
    ) -> str | None:
        """Why `name` could not be opened: a symlink's target to walk, or None to look again.

        Raises:
            PathEscapeError: an absolute symlink target, or a symlink not to be followed.
            ToolError: `name` is not a directory (or not a regular file) where one is needed.
        """
        try:
            info = os.stat(name, dir_fd=self.dirs[-1], follow_symlinks=False)
        except FileNotFoundError:  # gone meanwhile
            self._count_link()
            return None
        if not stat.S_ISLNK(info.st_mode):
            if exc.errno == errno.ELOOP:  # it was a link a moment ago
                self._count_link()
                return None
            if wants_dir:
                shown = self.original if last else name
                raise ToolError(f"{shown!r} is not a directory in the workspace")
            _require_single_regular(info, self.original)
            raise exc
        if not follow:
            raise PathEscapeError(
                f"{self.original!r} is a symbolic link; the tool does not write through links"
            )
        self._count_link()
        try:
            target = os.readlink(name, dir_fd=self.dirs[-1])
        except OSError:  # no longer a link: look again
            return None
        if target.startswith("/"):
            raise self._escape()
        return target

    def _count_link(self) -> None:
        """Count a link followed (or a component that changed under us): a bounded walk."""
        self.links_followed += 1
        if self.links_followed > _MAX_SYMLINKS:
            raise ToolError(f"{self.original!r} goes through too many symbolic links (a loop?)")

    def _escape(self) -> PathEscapeError:
        return PathEscapeError(
            f"path {self.original!r} leads outside the workspace through a symbolic link"
        )


def _mkdir_at(name: str, dir_fd: int) -> None:
    with suppress(FileExistsError):  # made meanwhile (or a link): the next open decides
        os.mkdir(name, 0o755, dir_fd=dir_fd)


def _check_opened(fd: int, path: object) -> None:
    """Close `fd` and raise unless it is a regular file with one link (see the module doc)."""
    try:
        _require_single_regular(os.fstat(fd), path)
    except BaseException:
        os.close(fd)
        raise


def _shown_name(name: str) -> str:
    """A directory entry's name as valid UTF-8 text (undecodable bytes become U+FFFD)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", errors="replace")
    return name


_ROOT_NOT_DIR = (
    "the workspace root is not a directory (a file is in its place); "
    "ask the operator to fix the tool's root"
)


def _require_single_regular(info: os.stat_result, path: object) -> None:
    """Refuse directories, FIFOs, sockets, devices, and files with more than one hard link."""
    if stat.S_ISDIR(info.st_mode):
        raise ToolError(f"{path!r} is a directory; use op list")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{path!r} is not a regular file (a FIFO, socket or device)")
    if info.st_nlink > 1:
        raise PathEscapeError(
            f"{path!r} has {info.st_nlink} hard links; the tool only reads and writes files "
            "with one link, since another link may be outside the workspace"
        )


@contextmanager
def _os_errors(op: str, path: object) -> Iterator[None]:
    """Turn any OS error into a `ToolError` naming `path` as given (never the absolute path)."""
    try:
        yield
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ToolError(f"cannot {op} {path!r} in the workspace: {why}") from None
