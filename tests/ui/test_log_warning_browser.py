"""`agentflow serve` in real headless Chromium: a log that does not verify gets a visible
warning in the page; a sound, sealed one does not (the page reads /api/config's
`verification`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.ui import UiConfig
from agentflow.runtime.ui.server import serve_log

from .conftest import BrowserThread
from .test_browser import open_page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
HELLO_YAML = ROOT / "pipelines" / "hello_world.yaml"


def _finished_log(work: Path) -> Path:
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    subprocess.run(
        [sys.executable, "-m", "agentflow", "run", str(HELLO_YAML), "--no-ui", "--quiet",
         "--jsonl", "run.jsonl"],
        cwd=work, env=environ, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return work / "run.jsonl"


async def _warning_in_page(bt: BrowserThread, log: Path) -> dict[str, Any]:
    """Serve `log` as `agentflow serve` does; the page's #log-warning once it has loaded."""
    pipeline = compile_and_import(HELLO_YAML).compiled
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_log, log, pipeline, UiConfig(port=0), shutdown)
        # Connected means /api/config was read and the warning rendered (app.js's start).
        page = await bt.call(lambda: open_page(bt, url))
        try:
            found: dict[str, Any] = await bt.call(
                lambda: page.evaluate(
                    "(() => { const w = document.getElementById('log-warning');"
                    " return { visible: !w.hidden && w.offsetHeight > 0, text: w.textContent,"
                    " sealed: w.dataset.sealed }; })()"
                )
            )
        finally:
            await bt.call(page.close)
            shutdown.set()
    return found


async def test_the_page_warns_about_a_log_that_does_not_verify(
    browser_thread: BrowserThread, tmp_path: Path
) -> None:
    log = _finished_log(tmp_path)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))  # the seal cut off: a crashed run's log
    warning = await _warning_in_page(browser_thread, log)
    assert warning["visible"] is True
    assert warning["text"].startswith("⚠ This audit log does NOT verify")
    assert "not sealed" in warning["text"]
    assert warning["sealed"] == "false"


async def test_a_sound_log_shows_no_warning(browser_thread: BrowserThread, tmp_path: Path) -> None:
    warning = await _warning_in_page(browser_thread, _finished_log(tmp_path))
    assert warning["visible"] is False
