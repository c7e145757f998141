"""The compiler reads a prompt without following a symlink swapped in after its
check, and refuses a hard-linked prompt (a link can name a file outside)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from agentflow.compiler.load import _read_prompt


def test_a_directory_swapped_for_a_symlink_never_leaks_the_outside_file(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    (root / "d").mkdir(parents=True)
    (root / "d" / "p.md").write_text("inside prompt", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "p.md").write_text("OUTSIDE-SECRET", encoding="utf-8")
    stop = threading.Event()
    swaps = 0

    def attacker() -> None:
        nonlocal swaps
        # the swap of the reviewer's reproducer: a real directory at check time,
        # a symlink out at open time
        saved, link = root / "d_saved", root / "d"
        while not stop.is_set():
            try:
                os.rename(link, saved)
                os.symlink(outside, link)
                os.unlink(link)
                os.rename(saved, link)
                swaps += 1
            except OSError:
                pass

    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    texts: set[str | None] = set()
    try:
        for _ in range(20_000):  # count-bounded, not time-bounded
            text, _problem = _read_prompt(root.resolve(), "d/p.md", "d/p.md")
            texts.add(text)
    finally:
        stop.set()
        thread.join()
    assert swaps > 0, "the attacker never swapped: the race was not exercised"
    assert "OUTSIDE-SECRET" not in texts
    assert "inside prompt" in texts


def test_a_hard_linked_prompt_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-OUTSIDE-HARDLINK", encoding="utf-8")
    os.link(secret, root / "hl.md")
    text, problem = _read_prompt(root.resolve(), "hl.md", "hl.md")
    assert text is None
    assert "has 2 hard links" in problem


def test_a_symlink_inside_the_directory_is_still_followed(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    (root / "real").mkdir(parents=True)
    (root / "real" / "p.md").write_text("via link", encoding="utf-8")
    (root / "alias").symlink_to(root / "real")
    assert _read_prompt(root.resolve(), "alias/p.md", "alias/p.md") == ("via link", "")
