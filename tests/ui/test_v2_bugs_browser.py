"""The page bugs issue 13 (item 6) lists, each pinned in real headless Chromium:
node clicks after the end-of-run banner shifts the graph, model text cut with no
marker, QA agents answering with a tool call missing from the model text, the
layout at 390 px, controls without accessible names, the feedback edge through a
node label. (A failed final state in green: test_v2_runs_browser.py.)

The graph is read through cytoscape's own instance on its container
(`_cyreg.cy`), not through the page's debug object."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio

from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.ui import UiConfig, serve_ui

from .conftest import BrowserThread
from .helpers import emit_hello_world, hello_index, load_pipeline
from .test_browser import js, wait_js
from .test_v2_runs_browser import WAIT, new_page

pytestmark = pytest.mark.browser

HELLO = load_pipeline("hello_world.yaml")
CY = "document.querySelector('#graph')._cyreg.cy"


async def _serving(
    bt: BrowserThread, hub: EventHub, nursery: trio.Nursery, width: int, pipeline: Any = HELLO
) -> Any:
    url = await nursery.start(partial(serve_ui, hub, pipeline, UiConfig(port=0)), trio.Event())
    page = await bt.call(lambda: new_page(bt, url, width=width))
    await wait_js(bt, page, "window.__agentflow && window.__agentflow.connection.connected", WAIT)
    return page


async def test_a_node_click_after_the_banner_shifts_the_graph_hits_the_node(
    browser_thread: BrowserThread,
) -> None:
    bt = browser_thread
    hub = EventHub(run_id="run-click", keep_history=True)
    async with hub.running(), trio.open_nursery() as nursery:
        page = await _serving(bt, hub, nursery, 1280)
        try:
            await wait_js(bt, page, f"{CY}.nodes().length > 0", WAIT)
            # Let cytoscape cache where its container is, then let the banner push it down.
            await js(bt, page, f"{CY}.renderer().findContainerClientCoords()")
            emit_hello_world(hub)
            await wait_js(bt, page, "!document.querySelector('#run-banner').hidden", WAIT)
            point = await js(
                bt,
                page,
                f"(() => {{ const n = {CY}.getElementById('reviewer_agent');"
                " const r = document.querySelector('#graph').getBoundingClientRect();"
                " const p = n.renderedPosition(); return {x: r.left + p.x, y: r.top + p.y}; })()",
            )
            await js(bt, page, f"{CY}.nodes().unselect()")
            await bt.call(lambda: page.mouse.click(point["x"], point["y"]))
            selected = f"{CY}.nodes(':selected').map(n => n.id())"
            await wait_js(bt, page, f"{selected}.length > 0", WAIT)
            assert await js(bt, page, selected) == ["reviewer_agent"]
            # and the click opened that agent's drawer
            drawer = "document.querySelector('#drawer')"
            await wait_js(
                bt, page, f"!{drawer}.hidden && {drawer}.dataset.agent === 'reviewer_agent'"
            )
        finally:
            await bt.call(page.close)
            nursery.cancel_scope.cancel()


async def test_cut_model_text_says_so_and_a_qa_tool_call_answer_is_shown(
    browser_thread: BrowserThread,
) -> None:
    bt = browser_thread
    hub = EventHub(run_id="run-text", keep_history=True)
    async with hub.running(), trio.open_nursery() as nursery:
        page = await _serving(bt, hub, nursery, 1280)
        try:
            emit_hello_world(hub, 0, hello_index("model_request"))
            long = "a" * 15_000 + "b" * 15_000
            hub.emit(
                EventKind.MODEL_TEXT,
                agent="writer_agent",
                item="main",
                attempt=1,
                payload={"turn": 1, "text": long},
            )
            text = "document.querySelector('#model-text').textContent"
            await wait_js(bt, page, f"{text}.endsWith('b'.repeat(100))", WAIT)
            shown = await js(bt, page, text)
            assert shown.startswith("[… 10,000 earlier characters not shown")
            # A QA agent answering with a tool call (no text): its verdict is shown.
            verdict = {"passed": False, "issues": ["the second paragraph is wrong"]}
            hub.emit(
                EventKind.MODEL_RESPONSE,
                agent="reviewer_agent",
                item="main",
                attempt=1,
                payload={
                    "turn": 1,
                    "tool_calls": [{"id": "t1", "name": "submit_verdict", "input": verdict}],
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                },
            )
            options = "Array.from(document.querySelectorAll('#text-agent option'), o => o.value)"
            await wait_js(bt, page, f"{options}.includes('reviewer_agent')", WAIT)
            await bt.call(lambda: page.select_option("#text-agent", "reviewer_agent"))
            await wait_js(bt, page, f"{text}.includes('submit_verdict')", WAIT)
            assert "the second paragraph is wrong" in await js(bt, page, text)
        finally:
            await bt.call(page.close)
            nursery.cancel_scope.cancel()


async def test_the_page_fits_a_390_px_screen(browser_thread: BrowserThread) -> None:
    bt = browser_thread
    hub = EventHub(run_id="run-narrow", keep_history=True)
    async with hub.running(), trio.open_nursery() as nursery:
        page = await _serving(bt, hub, nursery, 390)
        try:
            emit_hello_world(hub)
            await wait_js(bt, page, "!document.querySelector('#run-banner').hidden", WAIT)
            width = await js(bt, page, "document.documentElement.scrollWidth")
            assert width <= 390
        finally:
            await bt.call(page.close)
            nursery.cancel_scope.cancel()


ACCESSIBLE_NAME = """Array.from(document.querySelectorAll('input, select, button, textarea'))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby')
    && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.id || el.outerHTML.slice(0, 80))"""


async def test_every_control_has_an_accessible_name(browser_thread: BrowserThread) -> None:
    bt = browser_thread
    hub = EventHub(run_id="run-a11y", keep_history=True)
    async with hub.running(), trio.open_nursery() as nursery:
        page = await _serving(bt, hub, nursery, 1280)
        try:
            emit_hello_world(hub)
            await wait_js(bt, page, "!document.querySelector('#run-banner').hidden", WAIT)
            assert await js(bt, page, ACCESSIBLE_NAME) == []
        finally:
            await bt.call(page.close)
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("pipeline", ["hello_world.yaml", "research_fanout.yaml"])
async def test_the_feedback_edge_does_not_cut_through_a_node_label(
    browser_thread: BrowserThread, pipeline: str
) -> None:
    bt = browser_thread
    hub = EventHub(run_id="run-edge", keep_history=True)
    async with hub.running(), trio.open_nursery() as nursery:
        page = await _serving(bt, hub, nursery, 1280, load_pipeline(pipeline))
        try:
            await wait_js(bt, page, f"{CY}.edges('.feedback').length > 0", WAIT)
            crossing = await js(
                bt,
                page,
                f"""(() => {{
                  const cy = {CY};
                  const out = [];
                  for (const e of cy.edges('.feedback')) {{
                  const s = e.sourceEndpoint(), t = e.targetEndpoint();
                  const c = (e.controlPoints() || [])[0];
                  for (let i = 0; i <= 50; i++) {{
                    const u = i / 50;
                    const p = c ? {{x: (1-u)*(1-u)*s.x + 2*(1-u)*u*c.x + u*u*t.x,
                                   y: (1-u)*(1-u)*s.y + 2*(1-u)*u*c.y + u*u*t.y}}
                                : {{x: s.x + (t.x - s.x) * u, y: s.y + (t.y - s.y) * u}};
                    cy.nodes().forEach(n => {{
                      const b = n.boundingBox({{includeNodes: false, includeEdges: false,
                                               includeLabels: true}});
                      if (b.w > 0 && p.x > b.x1 && p.x < b.x2 && p.y > b.y1 && p.y < b.y2)
                        out.push(n.id());
                    }});
                  }}
                  }}
                  return Array.from(new Set(out));
                }})()""",
            )
            assert crossing == []
        finally:
            await bt.call(page.close)
            nursery.cancel_scope.cancel()
