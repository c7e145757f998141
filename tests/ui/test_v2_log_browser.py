"""The virtualised event log in real headless Chromium: only the rows in view are in
the DOM, rows already drawn are never rebuilt as events arrive, the log follows the
newest events while the reader is at the bottom, and does not move while the reader
has scrolled up to read (issue 13, item 5)."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.ui import UiConfig, serve_ui

from .conftest import BrowserThread
from .helpers import load_pipeline
from .test_browser import js, wait_js
from .test_v2_runs_browser import WAIT, new_page

pytestmark = pytest.mark.browser

ROWS = "document.querySelectorAll('#log-body tr')"
MATCHING = "Number(document.querySelector('#log-count').dataset.matching)"


def emit(hub: EventHub, first: int, count: int) -> None:
    for k in range(first, first + count):
        hub.emit(EventKind.WARNING, payload={"message": f"event {k}"})


async def test_the_log_keeps_drawn_rows_follows_the_end_and_holds_still_for_a_reader(
    browser_thread: BrowserThread,
) -> None:
    bt = browser_thread
    hub = EventHub(run_id="run-log", keep_history=True)
    pipeline = load_pipeline("hello_world.yaml")
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_ui, hub, pipeline, UiConfig(port=0)), trio.Event())
        page = await bt.call(lambda: new_page(bt, url))
        try:
            hub.emit(EventKind.RUN_STARTED, payload={"model": "replay"})
            emit(hub, 0, 2000)
            await wait_js(bt, page, f"{MATCHING} === 2001", WAIT)
            # Following: the newest event is in view; only a window of rows is in the DOM.
            last = f"{ROWS}[{ROWS}.length - 1].dataset.seq"
            await wait_js(bt, page, f"{last} === '2000'", WAIT)
            assert await js(bt, page, f"{ROWS}.length") < 60

            # Rows already drawn are kept: mark them, add events, they are the same nodes.
            await js(bt, page, f"{ROWS}.forEach(r => r.__kept = true)")
            kept_seqs = await js(bt, page, f"Array.from({ROWS}, r => r.dataset.seq)")
            emit(hub, 2000, 3)
            await wait_js(bt, page, f"{last} === '2003'", WAIT)
            still = await js(
                bt, page, f"Array.from({ROWS}).filter(r => r.__kept).map(r => r.dataset.seq)"
            )
            assert still and set(still) <= set(kept_seqs)
            assert still == [s for s in kept_seqs if s in still]  # in the same order
            assert "2003" not in still  # new rows are new nodes; old ones were not rebuilt

            # The reader scrolls up (the wheel): the log stops following and holds still.
            box = await bt.call(lambda: page.locator("#log-scroll").bounding_box())
            await bt.call(lambda: page.mouse.move(box["x"] + 50, box["y"] + 100))
            await bt.call(lambda: page.mouse.wheel(0, -4000))
            await wait_js(bt, page, "!document.querySelector('#log-latest').hidden", WAIT)
            top = "document.querySelector('#log-scroll').scrollTop"
            first_seq = (
                "(() => { const s = document.querySelector('#log-scroll');"
                " const r = s.getBoundingClientRect();"
                " return document.elementFromPoint(r.left + 30, r.top + 30)"
                ".closest('tr').dataset.seq; })()"
            )
            await trio.sleep(0.3)  # let the wheel's scroll settle before reading where it is
            before = (await js(bt, page, top), await js(bt, page, first_seq))
            emit(hub, 2003, 500)
            await wait_js(bt, page, f"{MATCHING} === 2504", WAIT)
            await js(bt, page, "window.__agentflow.render()")
            after = (await js(bt, page, top), await js(bt, page, first_seq))
            assert after == before
            # "newest" jumps back to the end and follows again.
            await bt.call(lambda: page.click("#log-latest"))
            await wait_js(bt, page, f"{last} === '2503'", WAIT)
            assert page.errors == []
        finally:
            await bt.call(page.close)
            nursery.cancel_scope.cancel()
