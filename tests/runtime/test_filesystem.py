"""FilesystemTool: confinement to its root against an adversarial corpus, and normal use."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from agentflow.runtime.errors import PathEscapeError, PipelineDefinitionError, ToolError
from agentflow.runtime.tools.base import Tool
from agentflow.runtime.tools.examples import WordCountTool
from agentflow.runtime.tools.filesystem import FilesystemTool
from agentflow.runtime.tools.registry import BUILTIN_TOOLS, builtin_tool

SECRET = "top secret outside the root"


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[FilesystemTool, Path, Path]:
    """A root with hostile symlinks in it, and an outside directory with a secret."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ok.txt").write_text("inside")
    os.symlink(outside / "secret.txt", root / "abs_file_link")
    os.symlink("../outside/secret.txt", root / "rel_file_link")
    os.symlink(outside, root / "abs_dir_link")
    os.symlink("../../outside", root / "sub" / "rel_dir_link")
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    os.symlink("ok.txt", root / "inner_link")  # points inside: allowed
    os.symlink(outside / "new.txt", root / "dangling_out")  # target does not exist yet
    return FilesystemTool(root), root, outside


ESCAPES = [
    "../x",
    "../outside/secret.txt",
    "a/../../x",
    "a/./../..",
    "sub/../../outside/secret.txt",
    "..",
    "./..",
    "/etc/passwd",
    "/",
    "//etc/passwd",
    "C:\\x",
    "C:/x",
    "c:x",
    "\\..\\x",
    "..\\x",
    "sub\\..\\..\\x",
    "ok.txt\x00.png",
    "\x00",
    "\uff0e\uff0e/x",  # fullwidth full stops: NFKC makes them ".."
    "sub/\uff0e\uff0e/\uff0e\uff0e/x",
    "\ufe52\ufe52/x",  # small full stops
    "\u2024\u2024/x",  # one dot leaders
    "abs_file_link",
    "rel_file_link",
    "abs_dir_link/secret.txt",
    "sub/rel_dir_link/secret.txt",
    "abs_dir_link/new.txt",
    "dangling_out",
    "loop_a",
    "loop_a/x",
    "a/" * 2100 + "x",  # too long
    "x" * 300,  # component too long
]

# Odd but harmless: they stay inside the root as literal names.
CONTAINED = ["%2e%2e/x", "%2e%2e%2fx", "..x", "x..", "...", "a b/ c", "ü/ä.txt"]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("op", ["read", "write", "list"])
async def test_escapes_are_refused(
    sandbox: tuple[FilesystemTool, Path, Path], op: str, path: str
) -> None:
    tool, _, outside = sandbox
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(ToolError) as info:
        result = await tool.execute({"op": op, "path": path, "content": "pwned"})
        # Only reachable if nothing was raised: it must not have leaked or escaped.
        assert SECRET not in str(result)
    assert sorted(p.name for p in outside.iterdir()) == before
    assert (outside / "secret.txt").read_text() == SECRET
    assert SECRET not in str(info.value)


def test_corpus_is_big_enough() -> None:
    assert len(ESCAPES) + len(CONTAINED) >= 30


@pytest.mark.parametrize("path", CONTAINED)
async def test_odd_names_stay_inside(sandbox: tuple[FilesystemTool, Path, Path], path: str) -> None:
    tool, root, _ = sandbox
    await tool.execute({"op": "write", "path": path, "content": "data"})
    real_root = os.path.realpath(root)
    written = os.path.realpath(root.joinpath(*[p for p in path.split("/") if p]))
    assert written.startswith(real_root + os.sep)
    assert await tool.execute({"op": "read", "path": path}) == "data"


async def test_escaping_errors_are_path_escape_errors(
    sandbox: tuple[FilesystemTool, Path, Path],
) -> None:
    tool, _, _ = sandbox
    for path in ["../x", "/etc/passwd", "abs_file_link", "abs_dir_link/secret.txt", "a\x00"]:
        with pytest.raises(PathEscapeError):
            await tool.execute({"op": "read", "path": path})
    with pytest.raises(PathEscapeError, match="does not write through links"):
        await tool.execute({"op": "write", "path": "inner_link", "content": "x"})


async def test_read_write_list_roundtrip(tmp_path: Path) -> None:
    root = tmp_path / "workspace"
    tool = FilesystemTool(root, max_read_bytes=100)
    assert await tool.execute({"op": "list", "path": ""}) == {"path": ".", "entries": []}
    assert not root.exists()
    result = await tool.execute({"op": "write", "path": "notes/./draft.md", "content": "# Hi\n"})
    assert result == {"path": "notes/draft.md", "bytes": 5}
    assert (root / "notes" / "draft.md").read_text() == "# Hi\n"
    assert await tool.execute({"op": "read", "path": "notes//draft.md"}) == "# Hi\n"
    assert (await tool.execute({"op": "list", "path": "."}))["entries"] == ["notes/"]
    assert (await tool.execute({"op": "list", "path": "notes"}))["entries"] == ["draft.md"]
    await tool.execute({"op": "write", "path": "notes/draft.md", "content": "short"})
    assert (root / "notes" / "draft.md").read_text() == "short"


async def test_inner_symlink_read_is_allowed(sandbox: tuple[FilesystemTool, Path, Path]) -> None:
    tool, _, _ = sandbox
    assert await tool.execute({"op": "read", "path": "inner_link"}) == "inside"


async def test_limits_and_bad_requests(tmp_path: Path) -> None:
    tool = FilesystemTool(tmp_path, max_read_bytes=10)
    (tmp_path / "big.txt").write_text("x" * 11)
    (tmp_path / "bin.dat").write_bytes(b"\xff\xfe\x00")
    cases: list[tuple[dict[str, object], str]] = [
        ({"op": "read", "path": "big.txt"}, "larger than the 10-byte"),
        ({"op": "read", "path": "bin.dat"}, "not UTF-8"),
        ({"op": "read", "path": "missing.txt"}, "no file"),
        ({"op": "read", "path": ""}, "cannot read the workspace"),
        ({"op": "write", "path": "."}, "'content' string"),
        ({"op": "write", "path": ".", "content": "x"}, "cannot write the workspace"),
        ({"op": "delete", "path": "x"}, "unknown op"),
        ({"op": "read", "path": 3}, "must be a string"),
        ({"op": "list", "path": "big.txt"}, "not a directory"),
    ]
    for request, message in cases:
        with pytest.raises(ToolError, match=message):
            await tool.execute(request)


async def test_registry_and_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tool = builtin_tool("filesystem", {})
    assert isinstance(tool, Tool) and isinstance(tool, FilesystemTool)
    assert tool.root == tmp_path / "workspace"
    assert builtin_tool("filesystem", {"root": "w2"}).root == tmp_path / "w2"  # type: ignore[attr-defined]
    assert frozenset({"filesystem"}) == BUILTIN_TOOLS
    with pytest.raises(PipelineDefinitionError, match="builtins are: filesystem"):
        builtin_tool("shell", {})
    with pytest.raises(PipelineDefinitionError, match="only key is 'root'"):
        builtin_tool("filesystem", {"rooot": "x"})

    monkeypatch.setenv("MY_API_KEY", "sk-ant-very-secret")
    counter = WordCountTool(api_key_env="MY_API_KEY")
    assert isinstance(counter, Tool)
    result = await counter.execute({"text": "one two\nthree"})
    assert result == {"words": 3, "lines": 2, "api_key": "set"}
    assert "sk-ant" not in str(result)
    monkeypatch.delenv("MY_API_KEY")
    assert (await counter.execute({"text": ""}))["api_key"] == "missing"
    assert "api_key" not in await WordCountTool().execute({"text": "a"})
    with pytest.raises(ToolError, match="'text' string"):
        await counter.execute({})


def _no_absolute_path(error: pytest.ExceptionInfo[ToolError], root: Path) -> str:
    message = str(error.value)
    assert str(root) not in message and "/tmp" not in message, message
    return message


async def test_root_that_is_a_file_is_a_tool_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.write_text("not a directory")
    tool = FilesystemTool(root)
    for request in (
        {"op": "write", "path": "a.txt", "content": "x"},
        {"op": "write", "path": "d/a.txt", "content": "x"},
        {"op": "list", "path": ""},
        {"op": "list", "path": "d"},
        {"op": "read", "path": "a.txt"},
    ):
        with pytest.raises(ToolError) as error:
            await tool.execute(request)
        _no_absolute_path(error, root)


async def test_fifos_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    tool = FilesystemTool(tmp_path)
    with pytest.raises(ToolError, match="not a regular file"):
        await tool.execute({"op": "read", "path": "pipe"})
    with pytest.raises(ToolError, match="not a regular file"):
        await tool.execute({"op": "write", "path": "pipe", "content": "x"})
    (tmp_path / "dir").mkdir()
    with pytest.raises(ToolError, match="is a directory"):
        await tool.execute({"op": "read", "path": "dir"})
    with pytest.raises(ToolError, match="is a directory") as error:
        await tool.execute({"op": "write", "path": "dir", "content": "x"})
    _no_absolute_path(error, tmp_path)


async def test_os_errors_on_write_and_list_become_relative_tool_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = FilesystemTool(tmp_path)
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fd: int, mode: str) -> None:
            self.handle = real_fdopen(fd, mode)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def fileno(self) -> int:
            return self.handle.fileno()

        def truncate(self, size: int) -> int:
            return self.handle.truncate(size)

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "a.txt"))

    monkeypatch.setattr(os, "fdopen", FullDisk)
    with pytest.raises(ToolError, match="No space left on device") as error:
        await tool.execute({"op": "write", "path": "a.txt", "content": "x"})
    assert "'a.txt'" in _no_absolute_path(error, tmp_path)
    monkeypatch.undo()

    def denied(path: str) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(ToolError, match="Permission denied") as listing:
        await tool.execute({"op": "list", "path": ""})
    _no_absolute_path(listing, tmp_path)
