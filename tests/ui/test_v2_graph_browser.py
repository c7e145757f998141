"""The page draws DSL v2 part 2 pipelines in real headless Chromium: a router with
labelled loop cases and a sub-pipeline's namespaced agents, while the real engine
runs it on the dry-run model (no page error, every agent's node settles)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.ui import UiConfig, serve_ui

from .conftest import BrowserThread
from .test_browser import js, node_status, open_page, wait_js

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


async def test_supervisor_routes_and_sub_pipeline_in_the_page(
    browser_thread: BrowserThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bt = browser_thread
    monkeypatch.chdir(tmp_path)
    module = compile_and_import(ROOT / "pipelines" / "supervisor.yaml")
    model = DryRunModel(routes={"supervisor": ["research", "write", "finish"]})
    hub = EventHub(run_id="run-ui-v2-graph", keep_history=True)
    shutdown = trio.Event()
    async with hub.running(), trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(
                serve_ui,
                hub,
                module.compiled,
                UiConfig(port=0),
                shutdown=shutdown,
                model_name=model.name,
            )
        )
        page = await bt.call(lambda: open_page(bt, url))
        try:
            graph = await js(bt, page, "window.__agentflow.graph()")
            assert set(graph["nodes"]) == {
                "supervisor", "research_team", "writer",
                "research_team.researcher", "research_team.editor",
            }  # fmt: skip
            assert set(graph["edges"]) == {
                "supervisor->research_team", "supervisor->writer",
                "research_team->supervisor", "writer->supervisor",
                "research_team=>research_team.researcher",
                "research_team.researcher->research_team.editor",
            }  # fmt: skip
            labels = await js(bt, page, "window.__agentflow.edgeLabels()")
            assert labels["supervisor->writer"] == "write (max 3)"
            assert labels["research_team=>research_team.researcher"] == "runs"
            assert labels["research_team.researcher->research_team.editor"] == "sequential"
            result = await run_pipeline(
                module.compiled,
                "topic",
                handlers=module.default_handlers(),
                model=model,
                hub=hub,
                options=RunOptions(backoff_scale=0),
            )
            assert result.status == "succeeded"
            await wait_js(bt, page, "window.__agentflow.run !== null", timeout=30_000)
            for agent in ("supervisor", "writer", "research_team.editor"):
                # the page settles each node as its events arrive: wait (a loaded
                # machine may draw them after the run's end), then check
                await wait_js(bt, page, f"{node_status(agent)} === 'passed'", timeout=30_000)
                assert await js(bt, page, node_status(agent)) == "passed", agent
            assert page.errors == []
        finally:
            await bt.call(page.close)
            shutdown.set()
