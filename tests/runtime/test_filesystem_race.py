"""FilesystemTool against a concurrent attacker: directories swapped for symlinks mid-operation.

The attacker replaces a directory inside the root with a symlink to a directory
outside it that holds files of the same names (canaries). A tool that checks a
path and then opens it by name can be sent outside between the two steps; one
that walks the path a component at a time from the root's file descriptor,
never following a link the kernel resolves, cannot.

Two attackers: a thread swapping as fast as it can while the tool works in a
loop (a bounded number of iterations), and a deterministic one that performs
the swap right after the tool's k-th filesystem call, for every k, so each
point between a check and a use is hit exactly.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from agentflow.runtime.errors import PathEscapeError, ToolError
from agentflow.runtime.tools.filesystem import FilesystemTool

CANARY = "CANARY: read from outside the root"
INSIDE = "inside the root"


@pytest.fixture
def arena(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): root/d/inner.txt, and outside/inner.txt holding the canary."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    (root / "d" / "inner.txt").write_text(INSIDE)
    outside.mkdir()
    (outside / "inner.txt").write_text(CANARY)
    return root, outside


def outside_snapshot(outside: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(outside.iterdir())}


def swap_to_link(root: Path, outside: Path | str, hold: str) -> bool:
    """Move root/d aside as `hold` and put a symlink to `outside` in its place."""
    try:
        os.rename(root / "d", root / hold)
    except OSError:
        return False
    with suppress(FileExistsError):  # the tool re-created d in between: leave it
        os.symlink(outside, root / "d")
    return True


_parked = itertools.count()


def swap_back(root: Path, hold: str) -> None:
    """Put the moved-aside directory back as root/d, whatever the tool did meanwhile."""
    d = root / "d"
    for _ in range(100):
        if d.is_symlink():
            os.unlink(d)
        try:
            os.rename(root / hold, d)
            return
        except FileNotFoundError:  # d (or hold) changed under us: look again
            continue
        except OSError:  # the tool created a non-empty root/d meanwhile: park it
            os.rename(d, root / f"parked-{next(_parked)}")


# --- a real concurrent attacker ---------------------------------------------------------

RACE_ITERATIONS = 3000
MAX_SWAPS = 200_000


def test_a_thread_swapping_a_directory_for_a_symlink_never_gets_the_tool_out(
    arena: tuple[Path, Path],
) -> None:
    root, outside = arena
    before = outside_snapshot(outside)
    tool = FilesystemTool(root)
    stop = threading.Event()
    swaps = 0

    def attacker() -> None:
        nonlocal swaps
        while not stop.is_set() and swaps < MAX_SWAPS:
            if swap_to_link(root, outside, "hold"):
                swap_back(root, "hold")
            swaps += 1

    thread = threading.Thread(target=attacker, daemon=True)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible: more interleavings
    thread.start()
    escapes: list[str] = []
    refusals = successes = 0
    try:
        for i in range(RACE_ITERATIONS):
            for op in (
                lambda: tool.read("d/inner.txt"),
                lambda i=i: tool.write(f"d/new_{i}.txt", "written by the tool"),
                lambda: tool.listdir("d"),
                lambda: tool.write("d/inner.txt", INSIDE),
            ):
                try:
                    result = op()
                except ToolError:
                    refusals += 1
                    continue
                successes += 1
                if CANARY in str(result):
                    escapes.append(f"iteration {i}: {result!r}")
    finally:
        stop.set()
        thread.join(timeout=30)
        sys.setswitchinterval(switch_interval)
    assert not thread.is_alive()
    assert escapes == []
    assert outside_snapshot(outside) == before, "the tool wrote outside its root"
    assert swaps > 0 and successes > 0  # both sides really ran


# --- a deterministic attacker: swap right after the tool's k-th filesystem call ---------

_WATCHED = ("open", "stat", "lstat", "mkdir", "makedirs", "readlink", "scandir", "listdir")


@contextmanager
def swap_after_call(
    k: int, swap: Callable[[], object], monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Run `swap` once, right after the k-th call (0: before any) of the os functions above."""
    calls: list[str] = []
    done = False

    def maybe_swap() -> None:
        nonlocal done
        if not done and len(calls) >= k:
            done = True
            swap()

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return real(*args, **kwargs)
            finally:
                calls.append(name)
                maybe_swap()

        return wrapper

    with monkeypatch.context() as patch:
        for name in _WATCHED:
            if hasattr(os, name):
                patch.setattr(os, name, wrap(name, getattr(os, name)))
        maybe_swap()
        yield calls
    if not done:
        swap()  # so each k is counted the same way by the caller


OPS: dict[str, Callable[[FilesystemTool], Any]] = {
    "read": lambda tool: tool.read("d/inner.txt"),
    "write": lambda tool: tool.write("d/inner.txt", "pwned"),
    "create": lambda tool: tool.write("d/fresh.txt", "pwned"),
    "create_deep": lambda tool: tool.write("d/e/fresh.txt", "pwned"),
    "list": lambda tool: tool.listdir("d"),
}


@pytest.mark.parametrize("link", ["absolute", "relative"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_a_swap_after_every_single_filesystem_call_never_escapes(
    tmp_path: Path, op: str, link: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = 0
    while True:
        case = tmp_path / f"k{k}"
        root, outside = case / "root", case / "outside"
        (root / "d").mkdir(parents=True)
        (root / "d" / "inner.txt").write_text(INSIDE)
        outside.mkdir()
        (outside / "inner.txt").write_text(CANARY)
        before = outside_snapshot(outside)
        tool = FilesystemTool(root)
        target = outside if link == "absolute" else "../outside"
        swap = functools.partial(swap_to_link, root, target, "hold")
        with swap_after_call(k, swap, monkeypatch) as calls:
            try:
                result: Any = OPS[op](tool)
            except ToolError:
                result = None
        assert CANARY not in str(result), f"{op}: the swap after call {k} leaked the canary"
        assert outside_snapshot(outside) == before, f"{op}: the swap after call {k} wrote outside"
        if k > len(calls):  # every point of the operation has been tried
            break
        k += 1
        assert k < 200, "the operation never ends"


# --- static hostile trees ----------------------------------------------------------------


def test_a_hard_link_to_a_file_outside_is_neither_read_nor_written(
    arena: tuple[Path, Path],
) -> None:
    root, outside = arena
    os.link(outside / "inner.txt", root / "linked.txt")
    tool = FilesystemTool(root)
    with pytest.raises(ToolError, match="hard link"):
        tool.read("linked.txt")
    with pytest.raises(ToolError, match="hard link"):
        tool.write("linked.txt", "pwned")
    assert (outside / "inner.txt").read_text() == CANARY


def test_a_symlinked_final_component_is_never_written_through(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    os.symlink(outside / "inner.txt", root / "to_outside")
    os.symlink(outside / "missing.txt", root / "dangling")
    os.symlink("d/inner.txt", root / "to_inside")
    tool = FilesystemTool(root)
    for name in ("to_outside", "dangling", "to_inside"):
        with pytest.raises(PathEscapeError, match="symbolic link"):
            tool.write(name, "pwned")
    assert outside_snapshot(outside) == {"inner.txt": CANARY}
    assert (root / "d" / "inner.txt").read_text() == INSIDE
    with pytest.raises(PathEscapeError):
        tool.read("to_outside")
    assert tool.read("to_inside") == INSIDE  # a link that stays inside may be read


def test_links_with_dotdot_inside_the_root_resolve_and_those_leaving_it_are_refused(
    arena: tuple[Path, Path],
) -> None:
    root, outside = arena
    (root / "a" / "b").mkdir(parents=True)
    os.symlink("../../d", root / "a" / "b" / "up")  # root/d
    os.symlink("../../..", root / "a" / "b" / "out")  # the root's parent
    os.symlink("../../../outside", root / "a" / "b" / "out2")
    tool = FilesystemTool(root)
    assert tool.read("a/b/up/inner.txt") == INSIDE
    assert tool.listdir("a/b/up") == {"path": "a/b/up", "entries": ["inner.txt"]}
    assert tool.write("a/b/up/made.txt", "x") == {"path": "a/b/up/made.txt", "bytes": 1}
    assert (root / "d" / "made.txt").read_text() == "x"
    for path in ("a/b/out/outside/inner.txt", "a/b/out2/inner.txt"):
        with pytest.raises(PathEscapeError):
            tool.read(path)
        with pytest.raises(PathEscapeError):
            tool.write(path, "pwned")
        with pytest.raises(PathEscapeError):
            tool.listdir(path.rsplit("/", 1)[0])
    assert outside_snapshot(outside) == {"inner.txt": CANARY}


def test_a_symlink_loop_is_a_tool_error(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    os.symlink("self", root / "self")
    tool = FilesystemTool(root)
    for call in (lambda: tool.read("self/x"), lambda: tool.write("self/x", "x")):
        with pytest.raises(ToolError, match="symbolic links"):
            call()


@pytest.mark.parametrize(
    "path", ["\udc80", "a/\ud800/b", "x\udfff.txt", "\ud83d", "ok/\x00", "\x00/x"]
)
@pytest.mark.parametrize("op", ["read", "write", "list"])
async def test_lone_surrogates_and_nul_bytes_are_tool_errors(
    arena: tuple[Path, Path], path: str, op: str
) -> None:
    root, _ = arena
    tool = FilesystemTool(root)
    with pytest.raises(ToolError):
        await tool.execute({"op": op, "path": path, "content": "x"})
    with pytest.raises(ToolError):
        await tool.execute({"op": "write", "path": "ok.txt", "content": "bad \udc80 text"})


@pytest.mark.parametrize("path", ["..", "../outside/inner.txt", "d/../../outside/inner.txt"])
@pytest.mark.parametrize("op", ["read", "write", "list"])
async def test_dotdot_and_absolute_paths_are_refused(
    arena: tuple[Path, Path], path: str, op: str
) -> None:
    root, outside = arena
    tool = FilesystemTool(root)
    for candidate in (path, str(outside / "inner.txt"), str(outside)):
        with pytest.raises(PathEscapeError):
            await tool.execute({"op": op, "path": candidate, "content": "pwned"})
    assert outside_snapshot(outside) == {"inner.txt": CANARY}


async def test_names_that_are_not_utf8_are_listed_without_surrogates(
    arena: tuple[Path, Path],
) -> None:
    root, _ = arena
    os.close(os.open(os.fsencode(root) + b"/bad-\xff-name", os.O_CREAT | os.O_WRONLY, 0o644))
    listing = await FilesystemTool(root).execute({"op": "list", "path": ""})
    assert "bad-\ufffd-name" in listing["entries"]
    for entry in listing["entries"]:
        entry.encode("utf-8")  # no lone surrogates reach the model or the event log
