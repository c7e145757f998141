"""UI v2 in real headless Chromium: the details drawer (a model call's prompt from the
store, its response, an item's QA issues in full), the items table (sort, search,
failed only), the timeline, cost per agent following the filters, and the DSL v2
graph (route cases taken, loop iterations, a sub-pipeline as a group, join, reduce)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime.cli.compiled_loader import load_for_inspection
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.store import RunStore
from agentflow.runtime.ui import UiConfig, serve_store, serve_ui

from ..runtime.test_engine_join import join_pipeline
from .conftest import BrowserThread
from .helpers import load_pipeline
from .store_runs import module, record_run
from .test_browser import js, node_status, wait_js
from .test_v2_runs_browser import RUN_STATE, WAIT, new_page

pytestmark = pytest.mark.browser

REQUEST = {
    "system": "You answer one sub-question.",
    "messages": [{"role": "user", "content": "what is item 1? " + "x" * 300}],
    "tools": [],
    "max_tokens": 1024,
}


async def click(bt: BrowserThread, page: Any, selector: str) -> None:
    await bt.call(lambda: page.click(selector))


async def test_drawer_items_timeline_and_cost_of_a_stored_run(
    browser_thread: BrowserThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bt = browser_thread
    monkeypatch.chdir(tmp_path)
    writer = RunStore.open(str(tmp_path / "runs.db"))
    reader = RunStore.open(str(tmp_path / "runs.db"), create=False)
    shutdown = trio.Event()
    try:
        run = await record_run(
            writer, "research_fanout.yaml", "run-details", model=DryRunModel(fail_first=1)
        )
        events = [json.loads(line) for line in writer.lines("run-details")]
        first = next(e for e in events if e["kind"] == "model_request" and e["item"] != "main")
        key = (first["agent"], first["item"], first["attempt"], first["payload"]["turn"])
        recorded = writer.memo("run-details").model_calls.get(key)
        if recorded is None:  # the engine does not record this call: record it as resume would
            committer = await writer.take_over("run-details")
            await committer.record_model_call(
                *key,
                request_hash="h",
                response={"text": "r"},
                usage={},
                seq=first["seq"],
                request=REQUEST,
            )
            expected_request: Any = REQUEST
        else:
            expected_request = recorded.request
        verdicts = [e for e in events if e["kind"] == "qa_verdict" and not e["payload"]["passed"]]
        calls = sum(1 for e in events if e["kind"] == "model_response")
        worker_calls = sum(
            1 for e in events if e["kind"] == "model_response" and e["agent"] == "worker_agent"
        )
        invocations = sum(1 for e in events if e["kind"] == "agent_started")
        assert run.result is not None and verdicts
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve_store, reader, UiConfig(port=0), loader=load_for_inspection), shutdown
            )
            page = await bt.call(lambda: new_page(bt, url + "runs/run-details"))
            try:
                await wait_js(bt, page, f"{RUN_STATE} === 'finished'", timeout=WAIT)

                # An event row -> its drawer -> the model call: prompt sent, response.
                await bt.call(lambda: page.select_option("#filter-kind", "model_request"))
                await bt.call(lambda: page.fill("#filter-item", first["item"]))
                row = f"#log-body tr[data-seq='{first['seq']}']"
                await wait_js(bt, page, f'document.querySelector("{row}") !== null')
                await click(bt, page, row)
                await wait_js(bt, page, "!document.querySelector('#drawer').hidden")
                drawer = "document.querySelector('#drawer-body').textContent"
                assert f'"seq": {first["seq"]}' in await js(bt, page, drawer)
                await bt.call(
                    lambda: page.get_by_role("button", name="open this model call").click()
                )
                request = "document.querySelector('[data-testid=drawer-request]')"
                await wait_js(bt, page, f"{request}.dataset.loaded !== undefined", WAIT)
                shown = await js(bt, page, f"{request}.querySelector('pre').textContent")
                if expected_request is None:
                    assert "without its request" in shown
                else:
                    assert json.loads(shown) == expected_request  # in full, not cut
                assert "response (event)" in await js(bt, page, drawer)
                await click(bt, page, "#drawer-close")

                # The items table: every item; one item's drawer has its QA issues in full.
                await bt.call(lambda: page.fill("#filter-item", ""))
                await bt.call(lambda: page.select_option("#filter-kind", ""))
                await click(bt, page, "#tab-items")
                items = {e["item"] for e in events if e["item"]}
                await wait_js(
                    bt, page, f"document.querySelectorAll('#items-body tr').length === {len(items)}"
                )
                failed = verdicts[0]
                await click(bt, page, f"#items-body tr[data-item='{failed['item']}']")
                await wait_js(bt, page, "document.querySelector('#drawer').dataset.type === 'item'")
                text = await js(bt, page, drawer)
                assert "QA issues" in text
                for issue in failed["payload"]["issues"]:
                    issue_text = issue if isinstance(issue, str) else issue["message"]
                    assert issue_text in text
                await click(bt, page, "#drawer-close")
                await bt.call(lambda: page.check("#items-failed"))  # every item passed in the end
                await wait_js(bt, page, "document.querySelectorAll('#items-body tr').length === 0")
                await bt.call(lambda: page.uncheck("#items-failed"))

                # The timeline: one bar per invocation and per model call; lanes per item.
                await click(bt, page, "#tab-timeline")
                bars = "document.querySelectorAll('#timeline .tbar.{}').length"
                await wait_js(bt, page, f"{bars.format('inv')} === {invocations}")
                assert await js(bt, page, bars.format("call")) == calls
                retries = sum(1 for e in events if e["kind"] == "retry_scheduled")
                assert retries > 0 and await js(bt, page, bars.format("wait")) == retries
                latency = "document.querySelector('#timeline .tbar.call').dataset.latency"
                assert float(await js(bt, page, latency)) >= 0
                await bt.call(lambda: page.select_option("#timeline-mode", "item"))
                lanes = "document.querySelectorAll('#timeline .lane').length"
                await wait_js(bt, page, f"{lanes} === {len(items)}")

                # Cost per agent; the totals follow the agent filter.
                await click(bt, page, "#tab-cost")
                total = "document.querySelector('#cost-total').dataset.calls"
                await wait_js(bt, page, f"{total} === '{calls}'")
                await bt.call(lambda: page.select_option("#filter-agent", "worker_agent"))
                await wait_js(bt, page, f"{total} === '{worker_calls}'")
                rows = "document.querySelectorAll('#cost-body tr').length"
                assert await js(bt, page, rows) == 1
                assert page.errors == []
            finally:
                await bt.call(page.close)
                shutdown.set()
    finally:
        reader.close()
        writer.close()


def _emit_item(hub: EventHub, item: str, status: str, cost: float, reason: str = "") -> None:
    hub.emit(EventKind.ITEM_CREATED, item=item, payload={"parent": "main"})
    hub.emit(EventKind.AGENT_STARTED, agent="worker_agent", item=item, attempt=1)
    hub.emit(
        EventKind.MODEL_REQUEST, agent="worker_agent", item=item, attempt=1, payload={"turn": 1}
    )
    usage = {"input_tokens": 10, "output_tokens": 5, "cost_usd": cost}
    hub.emit(
        EventKind.MODEL_RESPONSE,
        agent="worker_agent",
        item=item,
        attempt=1,
        payload={"turn": 1, "usage": usage, "text": "answer"},
    )
    hub.emit(EventKind.AGENT_COMPLETED, agent="worker_agent", item=item, attempt=1)
    if status == "failed":
        hub.emit(
            EventKind.QA_VERDICT,
            agent="accuracy_qa_agent",
            item=item,
            attempt=1,
            payload={"passed": False, "issues": [reason]},
        )
    if status == "aborted":
        hub.emit(EventKind.ITEM_ABORTED, item=item, payload={"reason": reason})
    hub.emit(EventKind.ITEM_FINISHED, item=item, payload={"status": status})


async def test_items_table_sorts_searches_and_shows_failed_only(
    browser_thread: BrowserThread,
) -> None:
    bt = browser_thread
    hub = EventHub(run_id="run-items", keep_history=True)
    shutdown = trio.Event()
    pipeline = load_pipeline("research_fanout.yaml")
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_ui, hub, pipeline, UiConfig(port=0)), shutdown)
        page = await bt.call(lambda: new_page(bt, url))
        try:
            hub.emit(EventKind.RUN_STARTED, payload={"model": "replay"})
            _emit_item(hub, "a-1", "passed", 0.03)
            _emit_item(hub, "a-2", "failed", 0.01, "the answer is too short")
            _emit_item(hub, "a-3", "aborted", 0.02, "worker_agent failed: timeout")
            await click(bt, page, "#tab-items")
            order = "Array.from(document.querySelectorAll('#items-body tr'), r => r.dataset.item)"
            await wait_js(bt, page, f"{order}.length === 3")
            assert await js(bt, page, order) == ["a-1", "a-2", "a-3"]
            await click(bt, page, "#items-table button[data-sort='cost']")
            await wait_js(bt, page, f"{order}.join() === 'a-2,a-3,a-1'")
            await click(bt, page, "#items-table button[data-sort='cost']")
            await wait_js(bt, page, f"{order}.join() === 'a-1,a-3,a-2'")
            sort = "document.querySelector('#items-table th[aria-sort=descending] button')"
            assert await js(bt, page, f"{sort}.dataset.sort") == "cost"
            a2 = "document.querySelector('#items-body tr[data-item=\"a-2\"]')"
            reason = f"{a2}.children[2].textContent"
            assert await js(bt, page, reason) == "accuracy_qa_agent: the answer is too short"
            await bt.call(lambda: page.fill("#items-search", "too short"))
            await wait_js(bt, page, f"{order}.join() === 'a-2'")
            await bt.call(lambda: page.fill("#items-search", ""))
            await bt.call(lambda: page.check("#items-failed"))
            await wait_js(bt, page, f"{order}.join() === 'a-3,a-2'")
            assert page.errors == []
        finally:
            await bt.call(page.close)
            shutdown.set()


async def test_route_loop_and_sub_pipeline_graph_shows_cases_taken_and_iterations(
    browser_thread: BrowserThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bt = browser_thread
    monkeypatch.chdir(tmp_path)
    mod = module("supervisor.yaml")
    model = DryRunModel(routes={"supervisor": ["research", "write", "write", "finish"]})
    hub = EventHub(run_id="run-routes", keep_history=True)
    shutdown = trio.Event()
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(serve_ui, hub, mod.compiled, UiConfig(port=0), model_name=model.name),
            shutdown,
        )
        page = await bt.call(lambda: new_page(bt, url))
        try:
            await wait_js(bt, page, "window.__agentflow.graph() !== null", WAIT)
            result = await run_pipeline(
                mod.compiled,
                "topic",
                handlers=mod.default_handlers(),
                model=model,
                hub=hub,
                options=RunOptions(backoff_scale=0),
            )
            assert result.status == "succeeded"
            await wait_js(bt, page, f"{RUN_STATE} === 'finished'", timeout=WAIT)
            taken = "document.querySelector('#edge-states li[data-edge=\"{}\"]').dataset.{}"
            await wait_js(bt, page, f"{taken.format('supervisor->writer', 'taken')} === '2'", WAIT)
            assert await js(bt, page, taken.format("supervisor->research_team", "taken")) == "1"
            assert await js(bt, page, taken.format("supervisor->writer", "iteration")) == "2"
            labels = await js(bt, page, "window.__agentflow.edgeLabels()")
            assert labels["supervisor->writer"] == "write (max 3) · taken 2\u00d7 · iteration 2"
            graph = await js(bt, page, "window.__agentflow.graph()")
            x = {node: position["x"] for node, position in graph["positions"]}
            assert x["supervisor"] < min(x["writer"], x["research_team"])  # the entry: left
            groups = dict((g, set(children)) for g, children in graph["groups"])
            assert groups == {
                "group:research_team": {"research_team.researcher", "research_team.editor"}
            }
            assert page.errors == []
        finally:
            await bt.call(page.close)
            shutdown.set()


async def test_join_and_reduce_edges_in_the_page(
    browser_thread: BrowserThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bt = browser_thread
    monkeypatch.chdir(tmp_path)
    compiled, handlers = join_pipeline()
    hub = EventHub(run_id="run-join", keep_history=True)
    shutdown = trio.Event()
    map_reduce = module("map_reduce.yaml").compiled
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_ui, hub, compiled, UiConfig(port=0)), shutdown)
        page = await bt.call(lambda: new_page(bt, url))
        try:
            result = await run_pipeline(compiled, "cats", handlers=handlers, hub=hub)
            assert result.status in ("succeeded", "completed"), result.status
            await wait_js(bt, page, f"{RUN_STATE} === 'finished'", timeout=WAIT)
            classes = "window.__agentflow.edgeClasses()"
            edges = await js(bt, page, classes)
            joins = {e for e, c in edges.items() if "join" in c}
            assert joins == {"joke=>combiner", "story=>combiner", "poem=>combiner"}
            await wait_js(bt, page, f"{node_status('combiner')} === 'passed'", WAIT)
        finally:
            await bt.call(page.close)
            shutdown.set()
    hub2 = EventHub(run_id="run-reduce", keep_history=True)
    shutdown2 = trio.Event()
    async with hub2.running(), trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_ui, hub2, map_reduce, UiConfig(port=0)), shutdown2)
        page = await bt.call(lambda: new_page(bt, url))
        try:
            await wait_js(bt, page, "window.__agentflow.graph() !== null", WAIT)
            edges = await js(bt, page, "window.__agentflow.edgeClasses()")
            assert {e for e, c in edges.items() if "reduce" in c} == {"planner=>synthesiser"}
        finally:
            await bt.call(page.close)
            shutdown2.set()
