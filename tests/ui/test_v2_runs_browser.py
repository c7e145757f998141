"""UI v2 in real headless Chromium: every run of the store (the runs list), and each
run's page in a distinct, visible state: finished, crashed, live (followed from the
store while another writer commits), disconnected, and a tab that never mixes a new
run on the same port into the old run's page."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime.cli.compiled_loader import load_for_inspection
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.store import RunStore
from agentflow.runtime.ui import UiConfig, serve_store, serve_ui

from .conftest import BrowserThread
from .helpers import emit_hello_world, load_pipeline
from .store_runs import begin_partial_run, dead_owner, record_run
from .test_browser import js, node_status, wait_js

pytestmark = pytest.mark.browser

RUN_STATE = "document.querySelector('#run-state').dataset.state"
WAIT = 30_000  # ms: a safety timeout, never a speed assertion


def new_page(bt: BrowserThread, url: str, *, width: int = 1280) -> Any:
    page = bt.browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.errors = errors
    return page


def runs_row(run_id: str, attribute: str) -> str:
    return f"document.querySelector('#runs-body tr[data-run=\"{run_id}\"]').dataset.{attribute}"


async def test_runs_list_and_a_finished_a_crashed_and_a_live_run(
    browser_thread: BrowserThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bt = browser_thread
    monkeypatch.chdir(tmp_path)
    writer = RunStore.open(str(tmp_path / "runs.db"))
    reader = RunStore.open(str(tmp_path / "runs.db"), create=False)
    shutdown = trio.Event()
    try:
        await record_run(writer, "hello_world.yaml", "run-finished-1")
        await begin_partial_run(writer, "hello_world.yaml", "run-crashed-1", owner=dead_owner())
        live = await begin_partial_run(writer, "hello_world.yaml", "run-live-1")
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve_store, reader, UiConfig(port=0), loader=load_for_inspection), shutdown
            )
            page = await bt.call(lambda: new_page(bt, url))
            try:
                # The runs list: every run, its status told apart (crashed: interrupted).
                await wait_js(bt, page, "document.querySelectorAll('#runs-body tr').length === 3")
                assert await js(bt, page, runs_row("run-finished-1", "status")) == "succeeded"
                assert await js(bt, page, runs_row("run-crashed-1", "state")) == "crashed"
                assert await js(bt, page, runs_row("run-crashed-1", "status")) == "interrupted"
                assert await js(bt, page, runs_row("run-live-1", "state")) == "live"
                shown = "getComputedStyle(document.querySelector('#run-view')).display"
                assert await js(bt, page, shown) == "none"  # the list alone, no empty run view

                # A finished run: its page, its own id, every node settled, FINISHED.
                link = "#runs-body tr[data-run='run-finished-1'] a"
                await bt.call(lambda: page.click(link))
                await wait_js(bt, page, f"{RUN_STATE} === 'finished'", timeout=WAIT)
                assert page.url.endswith("/runs/run-finished-1")
                assert await js(bt, page, "window.__agentflow.runId") == "run-finished-1"
                assert await js(bt, page, node_status("writer_agent")) == "passed"
                assert await js(bt, page, "document.querySelector('#run-banner').hidden") is False

                # A crashed run: no run_finished, its owner gone: CRASHED, not "live".
                await bt.call(lambda: page.goto(url + "runs/run-crashed-1"))
                await wait_js(bt, page, f"{RUN_STATE} === 'crashed'", timeout=WAIT)
                banner = await js(bt, page, "document.querySelector('#run-banner').textContent")
                assert "crashed" in banner and "agentflow resume run-crashed-1" in banner

                # A live run of another writer: the page follows it through the store.
                await bt.call(lambda: page.goto(url + "runs/run-live-1"))
                await wait_js(bt, page, f"{RUN_STATE} === 'live'", timeout=WAIT)
                await wait_js(bt, page, f"{node_status('writer_agent')} === 'running'")
                live.hub.emit(
                    EventKind.AGENT_COMPLETED, agent="writer_agent", item="main", attempt=1
                )
                await live.hub.wait_committed()
                await wait_js(bt, page, f"{node_status('writer_agent')} === 'passed'", WAIT)
                live.hub.emit(
                    EventKind.RUN_FINISHED, payload={"status": "failed", "final_state": "failed"}
                )
                await live.hub.wait_committed()
                await wait_js(bt, page, f"{RUN_STATE} === 'finished'", timeout=WAIT)
                # The list shows the finished status once the store has it.
                await bt.call(lambda: page.goto(url))
                await wait_js(bt, page, f"{runs_row('run-live-1', 'status')} === 'failed'", WAIT)
                assert page.errors == []
            finally:
                await bt.call(page.close)
                shutdown.set()
    finally:
        reader.close()
        writer.close()


async def test_a_failed_final_state_is_red_not_green(browser_thread: BrowserThread) -> None:
    """Issue 13 item 6: a run that failed showed its final state in green."""
    bt = browser_thread
    hub = EventHub(run_id="run-failed-state", keep_history=True)
    shutdown = trio.Event()
    pipeline = load_pipeline("hello_world.yaml")
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_ui, hub, pipeline, UiConfig(port=0)), shutdown)
        page = await bt.call(lambda: new_page(bt, url))
        try:
            hub.emit(EventKind.RUN_STARTED, payload={"model": "replay"})
            hub.emit(
                EventKind.TRANSITION,
                agent="writer_agent",
                item="main",
                payload={"from": "initialised", "to": "failed", "trigger": "x", "noop": False},
            )
            hub.emit(EventKind.RUN_FINISHED, payload={"status": "failed", "final_state": "failed"})
            await wait_js(bt, page, "!document.querySelector('#run-banner').hidden", WAIT)
            colour = "getComputedStyle(document.querySelector('#state-current')).color"
            assert await js(bt, page, colour) == "rgb(239, 68, 68)"  # --failed
            await wait_js(bt, page, f"{RUN_STATE} === 'finished'", timeout=WAIT)
            outcome = "document.querySelector('#run-state').dataset.outcome"
            assert await js(bt, page, outcome) == "bad"
        finally:
            await bt.call(page.close)
            shutdown.set()


async def test_a_tab_never_mixes_a_new_run_on_the_same_port(
    browser_thread: BrowserThread,
) -> None:
    """Run A's tab stays run A's: when the server goes away it says DISCONNECTED, and
    when run B is served on the same port it says so instead of drawing B's events."""
    bt = browser_thread
    pipeline = load_pipeline("hello_world.yaml")
    hub_a = EventHub(run_id="run-a", keep_history=True)
    done_a = trio.Event()
    async with hub_a.running(), trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_ui, hub_a, pipeline, UiConfig(port=0)), done_a)
        port = int(url.split(":")[2].split("/")[0])
        emit_hello_world(hub_a)
        page = await bt.call(lambda: new_page(bt, url))
        try:
            await wait_js(bt, page, f"{RUN_STATE} === 'finished'", timeout=WAIT)
            events_a = await js(bt, page, "window.__agentflow.events")
            done_a.set()
            await wait_js(bt, page, f"{RUN_STATE} === 'disconnected'", timeout=WAIT)
            hub_b = EventHub(run_id="run-b", keep_history=True)
            done_b = trio.Event()
            async with hub_b.running(), trio.open_nursery() as inner:
                await inner.start(partial(serve_ui, hub_b, pipeline, UiConfig(port=port)), done_b)
                hub_b.emit(EventKind.RUN_STARTED, payload={"model": "replay"})
                await wait_js(bt, page, f"{RUN_STATE} === 'other-run'", timeout=WAIT)
                assert await js(bt, page, "window.__agentflow.events") == events_a
                text = await js(bt, page, "document.querySelector('#run-state').textContent")
                assert "run-b" in text
                done_b.set()
            assert page.errors == [] or all("WebSocket" in e for e in page.errors)
        finally:
            await bt.call(page.close)
