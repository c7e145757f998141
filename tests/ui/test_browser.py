"""The page in real headless Chromium: graph colours, retry pulse, state, log filter, scale.

Assertions read the page's DOM mirror (`#node-states li[data-status]`,
`#edge-states li[data-pulses]`, `#state-current[data-state]`) and the
`window.__agentflow` debug object, never pixels. A screenshot of the finished
hello-world run is saved to test-artifacts/ (the docs' screenshots are taken by
scripts/screenshots.py).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.models.factory import choose_model
from agentflow.runtime.ui import UiConfig, serve_ui

from .conftest import BrowserThread
from .helpers import emit_hello_world, hello_index, load_pipeline, running_ui

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
HELLO = load_pipeline("hello_world.yaml")
FANOUT = load_pipeline("research_fanout.yaml")


def open_page(bt: BrowserThread, url: str) -> Any:
    page = bt.browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_function("window.__agentflow && window.__agentflow.connection.connected")
    page.errors = errors
    return page


def node_status(agent: str) -> str:
    return f"document.querySelector('#node-states li[data-agent=\"{agent}\"]').dataset.status"


async def wait_js(bt: BrowserThread, page: Any, expression: str, timeout: float = 5000) -> None:
    await bt.call(lambda: page.wait_for_function(expression, timeout=timeout))


async def js(bt: BrowserThread, page: Any, expression: str) -> Any:
    return await bt.call(lambda: page.evaluate(expression))


async def test_hello_world_run_in_the_page(browser_thread: BrowserThread) -> None:
    bt = browser_thread
    async with running_ui(HELLO) as ui:
        page = await bt.call(lambda: open_page(bt, ui.url))
        try:
            await check_hello_world(bt, page, ui.hub)
            recorded = [(e.kind, e.agent, e.item) for e, _ in ui.hub.history or []]
            await check_log_filter(bt, page, recorded)
            await save_screenshot(bt, page, "ui-hello-world.png")
            assert page.errors == []
        finally:
            await bt.call(page.close)


async def check_hello_world(bt: BrowserThread, page: Any, hub: Any) -> None:
    graph = await js(bt, page, "window.__agentflow.graph()")
    assert sorted(graph["nodes"]) == ["reviewer_agent", "writer_agent"]
    assert sorted(graph["edges"]) == [
        "reviewer_agent~>writer_agent",
        "writer_agent->reviewer_agent",
    ]
    assert await js(bt, page, "document.querySelector('#state-current').dataset.state") == (
        "initialised"
    )

    # The writer starts: its node turns blue, the machine moves to running.
    emit_hello_world(hub, 0, hello_index("model_request"))
    await wait_js(bt, page, f"{node_status('writer_agent')} === 'running'")
    await wait_js(bt, page, "document.querySelector('#state-current').dataset.state === 'running'")
    badge = await js(bt, page, "document.querySelector('#model-badge').textContent")
    assert "OFFLINE REPLAY" in badge

    # The reviewer fails the draft: red node, the feedback edge pulses.
    emit_hello_world(hub, hello_index("model_request"), hello_index("agent_started", 3))
    await wait_js(bt, page, f"{node_status('reviewer_agent')} === 'failed'")
    await wait_js(bt, page, "window.__agentflow.retryPulses === 1")
    pulses = await js(
        bt, page, "document.querySelector('#edge-states li[data-kind=\"feedback\"]').dataset.pulses"
    )
    assert pulses == "1"
    assert await js(bt, page, "window.__agentflow.graph() && window.__agentflow.pulses") == {
        "reviewer_agent~>writer_agent": 1
    }

    # The rewrite passes: both green, the state ends at complete, the banner shows.
    emit_hello_world(hub, hello_index("agent_started", 3))
    await wait_js(bt, page, "document.querySelector('#state-current').dataset.state === 'complete'")
    await wait_js(bt, page, "!document.querySelector('#run-banner').hidden")
    assert await js(bt, page, node_status("writer_agent")) == "passed"
    assert await js(bt, page, node_status("reviewer_agent")) == "passed"
    history = await js(bt, page, "window.__agentflow.statusHistory()")
    assert history["writer_agent"] == ["pending", "running", "passed", "running", "passed"]
    assert history["reviewer_agent"] == ["pending", "running", "failed", "running", "passed"]
    banner = await js(bt, page, "document.querySelector('#run-banner').dataset.status")
    assert banner == "succeeded"
    usage = await js(bt, page, "window.__agentflow.usage")
    assert usage["calls"] == 4 and usage["input"] == 480 and usage["output"] == 320
    assert await js(bt, page, "document.querySelector('#usage-cost').textContent") == "$0.0064"
    text = await js(bt, page, "document.querySelector('#model-text').textContent")
    assert "nurseries" in text


async def check_log_filter(bt: BrowserThread, page: Any, events: list[tuple[Any, ...]]) -> None:
    """Filter the log by agent, then by work item; `events` are (kind, agent, item).

    The log is virtualised: `#log-count[data-matching]` counts the matching events,
    and the rows in the DOM (those in view) all match."""
    rows = "Array.from(document.querySelectorAll('#log-body tr'))"
    matching = "Number(document.querySelector('#log-count').dataset.matching)"
    await wait_js(bt, page, f"{matching} === {len(events)}")
    assert 0 < await js(bt, page, f"{rows}.length") <= len(events)
    reviewer = sum(1 for _, agent, _ in events if agent == "reviewer_agent")
    await bt.call(lambda: page.select_option("#filter-agent", "reviewer_agent"))
    await wait_js(bt, page, f"{matching} === {reviewer}")
    assert await js(bt, page, f"{rows}.length") == reviewer  # few enough to all be in view
    assert await js(bt, page, f"{rows}.every(r => r.dataset.agent === 'reviewer_agent')")
    await bt.call(lambda: page.select_option("#filter-agent", ""))
    await bt.call(lambda: page.fill("#filter-item", "main"))
    on_main = sum(1 for _, _, item in events if item == "main")
    await wait_js(bt, page, f"{matching} === {on_main}")
    assert await js(bt, page, f"{rows}.every(r => r.dataset.item === 'main')")
    await bt.call(lambda: page.fill("#filter-item", ""))
    await wait_js(bt, page, f"{matching} === {len(events)}")


async def save_screenshot(bt: BrowserThread, page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    await bt.call(lambda: page.screenshot(path=str(path), full_page=True))
    assert path.stat().st_size > 10_000


def emit_fanout(hub: Any, items: int, first: int, last: int) -> None:
    """Items [first, last) of a fan-out run: worker and both QA agents pass each."""
    for k in range(first, last):
        item = f"item-{k + 1}"
        hub.emit(EventKind.ITEM_CREATED, item=item, payload={"parent": "main", "index": k})
        hub.emit(EventKind.AGENT_STARTED, agent="worker_agent", item=item, attempt=1)
        hub.emit(EventKind.AGENT_COMPLETED, agent="worker_agent", item=item, attempt=1)
        for qa in ("accuracy_qa_agent", "style_qa_agent"):
            hub.emit(EventKind.QA_VERDICT, agent=qa, item=item, attempt=1, payload={"passed": True})
        hub.emit(EventKind.ITEM_FINISHED, item=item, payload={"status": "passed"})


async def test_ten_thousand_item_fan_out_stays_responsive(browser_thread: BrowserThread) -> None:
    bt = browser_thread
    n = 10_000
    async with running_ui(FANOUT) as ui:
        page = await bt.call(lambda: open_page(bt, ui.url))
        try:
            hub = ui.hub
            hub.emit(EventKind.RUN_STARTED, payload={"model": "replay"})
            hub.emit(EventKind.AGENT_STARTED, agent="orchestrator_agent", item="main", attempt=1)
            hub.emit(EventKind.AGENT_COMPLETED, agent="orchestrator_agent", item="main", attempt=1)
            total = 3 + 6 * n
            for start in range(0, n, 1000):
                emit_fanout(hub, n, start, start + 1000)
                await trio.sleep(0.01)
                await bt.call(lambda: _ping(page))
            await wait_js(bt, page, f"window.__agentflow.events === {total}", timeout=20_000)
            await bt.call(lambda: _ping(page))
            counters = await js(bt, page, "window.__agentflow.items")
            nodes = await js(bt, page, "window.__agentflow.nodes()")
            rows = await js(bt, page, "document.querySelectorAll('#log-body tr').length")
            await save_screenshot(bt, page, "ui-fanout-10k.png")
        finally:
            await bt.call(page.close)
    assert counters["created"] == n and counters["finished"] == n and counters["passed"] == n
    assert nodes["worker_agent"]["label"] == f"worker_agent {n}/{n}"
    assert nodes["worker_agent"]["status"] == "passed"
    assert nodes["style_qa_agent"]["passed"] == n
    assert 0 < rows <= 60  # the virtualised log holds the rows in view, not 60,003
    # Responsive: the page answered a script round trip after every batch of 1,000 items
    # (`_ping` blocks until it does); how fast is not asserted on a loaded machine.


def _ping(page: Any) -> float:
    start = time.monotonic()
    page.evaluate("1 + 1")
    return time.monotonic() - start


async def test_offline_hello_world_run_in_the_page(
    browser_thread: BrowserThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real engine runs hello-world on offline replay while the page watches."""
    bt = browser_thread
    monkeypatch.chdir(tmp_path)  # the filesystem tool's workspace
    compiled = compile_and_import(ROOT / "pipelines" / "hello_world.yaml").compiled
    model = choose_model(compiled, model="replay")
    hub = EventHub(run_id="run-ui-browser", keep_history=True)
    shutdown = trio.Event()
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(
                serve_ui, hub, compiled, UiConfig(port=0), shutdown=shutdown, model_name="replay"
            )
        )
        page = await bt.call(lambda: open_page(bt, url))
        try:
            result = await run_pipeline(
                compiled, "Rust ownership", handlers=None, model=model, hub=hub
            )
            assert result.status == "succeeded"
            await wait_js(bt, page, "window.__agentflow.run !== null")
            await wait_js(
                bt, page, "document.querySelector('#state-current').dataset.state === 'complete'"
            )
            history = await js(bt, page, "window.__agentflow.statusHistory()")
            assert history["writer_agent"] == ["pending", "running", "passed", "running", "passed"]
            assert history["reviewer_agent"] == [
                "pending",
                "running",
                "failed",
                "running",
                "passed",
            ]
            assert await js(bt, page, node_status("writer_agent")) == "passed"
            assert await js(bt, page, node_status("reviewer_agent")) == "passed"
            assert await js(bt, page, "window.__agentflow.pulses") == {
                "reviewer_agent~>writer_agent": 1
            }
            badge = await js(bt, page, "document.querySelector('#model-badge').textContent")
            assert "OFFLINE REPLAY" in badge
            assert await js(bt, page, "document.querySelector('#run-banner').dataset.status") == (
                "succeeded"
            )
            usage = await js(bt, page, "window.__agentflow.usage")
            assert usage["input"] == result.usage.input_tokens and usage["calls"] == 6
            recorded = [(e.kind, e.agent, e.item) for e, _ in hub.history or []]
            await check_log_filter(bt, page, recorded)
            await save_screenshot(bt, page, "ui-hello-world-replay.png")
            assert page.errors == []
        finally:
            await bt.call(page.close)
            shutdown.set()


async def test_dry_run_fan_out_in_the_page(
    browser_thread: BrowserThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fan-out on the dry-run model: per-item counts, the retry pulse, an honest badge."""
    bt = browser_thread
    monkeypatch.chdir(tmp_path)
    compiled = compile_and_import(ROOT / "pipelines" / "research_fanout.yaml").compiled
    model = choose_model(compiled, model="dry-run", fail_first=1)
    hub = EventHub(run_id="run-ui-fanout", keep_history=True)
    shutdown = trio.Event()
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(
                serve_ui, hub, compiled, UiConfig(port=0), shutdown=shutdown, model_name=model.name
            )
        )
        page = await bt.call(lambda: open_page(bt, url))
        try:
            result = await run_pipeline(
                compiled,
                "why is the sky blue",
                handlers=None,
                model=model,
                hub=hub,
                options=RunOptions(backoff_scale=0),
            )
            assert result.status == "succeeded"
            await wait_js(bt, page, "window.__agentflow.run !== null")
            # Three work items (the run's own item `main` is not counted as one).
            items = "document.querySelector('#items-text').textContent"
            await wait_js(bt, page, f"{items}.startsWith('3/3')")
            assert await js(bt, page, items) == "3/3 finished · 3 passed · 0 failed/aborted"
            # Each item's accuracy check failed once, so the feedback edge pulsed three times.
            assert await js(bt, page, "window.__agentflow.pulses") == {
                "accuracy_qa_agent~>worker_agent": 3
            }
            badge = await js(bt, page, "document.querySelector('#model-badge').textContent")
            assert badge.startswith("DRY RUN")
            offline = "document.querySelector('#model-badge').dataset.offline"
            assert await js(bt, page, offline) == "true"
            assert page.errors == []
        finally:
            await bt.call(page.close)
            shutdown.set()
