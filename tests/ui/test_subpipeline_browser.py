"""A sub-pipeline run in real headless Chromium: the child's own state machine and items
are not the run's, so the page shows the run's state and item counts (its events carry
the payload key `subpipeline`, docs/events.md)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime import RunOptions
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.ui import UiConfig
from agentflow.runtime.ui.server import serve_log

from .conftest import BrowserThread
from .test_browser import open_page

pytestmark = pytest.mark.browser

PARENT = """\
name: ui-sub-parent
agents:
  - id: team
    pipeline: child.yaml
"""

CHILD = """\
name: ui-sub-child
state_machine:
  initial: drafting
  terminal: [published, dropped]
  states: [{id: drafting}, {id: published}, {id: dropped}]
agents:
  - id: writer
    instructions: "Write about {{ input }}."
    transitions: {on_start: drafting, on_complete: published, on_abort: dropped}
"""


async def _page_view(bt: BrowserThread, log: Path, pipeline: Any) -> dict[str, Any]:
    """Serve `log` as `agentflow serve` does; the page's state and item counts once every
    event of the log is applied."""
    events = len(log.read_text().splitlines())
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_log, log, pipeline, UiConfig(port=0), shutdown)
        page = await bt.call(lambda: open_page(bt, url))
        try:
            await bt.call(lambda: page.wait_for_function(f"window.__agentflow.events >= {events}"))
            seen: dict[str, Any] = await bt.call(
                lambda: page.evaluate(
                    "(() => ({ state: window.__agentflow.state,"
                    " items: window.__agentflow.items }))()"
                )
            )
            seen["errors"] = page.errors
        finally:
            await bt.call(page.close)
            shutdown.set()
    return seen


async def test_the_page_shows_the_runs_state_and_items_not_the_childs(
    browser_thread: BrowserThread, tmp_path: Path
) -> None:
    (tmp_path / "child.yaml").write_text(textwrap.dedent(CHILD))
    (tmp_path / "parent.yaml").write_text(textwrap.dedent(PARENT))
    module = compile_and_import(tmp_path / "parent.yaml")
    log = tmp_path / "run.jsonl"
    result = await module.module.run("bees", model=DryRunModel(), options=RunOptions(audit_log=log))
    assert result.status == "succeeded" and result.final_state == "complete"
    seen = await _page_view(browser_thread, log, module.compiled)
    assert seen["state"] == "complete"
    assert seen["items"]["created"] == 0 and seen["items"]["finished"] == 1
    # the log up to the child's settling transition (drafting -> published): the run is
    # still in its own state, `running`
    lines = log.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"published","trigger":"writer' in line)
    log.write_text("".join(lines[: cut + 1]))
    seen = await _page_view(browser_thread, log, module.compiled)
    assert seen["state"] == "running"
    assert seen["items"]["finished"] == 0
