"""Screenshots of each view of the UI, into docs/ (docs/ui.md embeds them).

    .venv/bin/python scripts/screenshots.py          # needs /usr/bin/chromium

Records a few runs on the dry-run model into a fresh run store in a temporary
directory (hello-world, research-fanout with a QA retry per item, supervisor's routes
and loop, approval parked at its human step, and a run that crashed), serves the store
as `agentflow serve` does, and takes one screenshot per view with headless Chromium.
Nothing is called: every model answer is synthetic.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
from functools import partial
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PIPELINES = ROOT / "pipelines"
CHROMIUM = "/usr/bin/chromium"


async def _record(store: Any, name: str, run_id: str, model: Any, run_input: Any) -> None:
    from agentflow.runtime.cli.compiled_loader import compile_and_import
    from agentflow.runtime.engine.runner import RunOptions, run_pipeline
    from agentflow.runtime.events.hub import EventHub

    mod = compile_and_import(PIPELINES / name)
    compiled = mod.compiled
    committer = await store.begin_run(
        run_id=run_id,
        pipeline=compiled.spec.name,
        pipeline_path=str(PIPELINES / name),
        source_hash=compiled.source_sha256,
        input=run_input,
        options={},
        model=model.name,
    )
    hub = EventHub(run_id=run_id, pipeline_hash=compiled.source_sha256)
    hub.commit_to(committer)
    async with hub.running():
        await run_pipeline(
            compiled,
            run_input,
            handlers=mod.default_handlers(),
            model=model,
            hub=hub,
            options=RunOptions(run_id=run_id, backoff_scale=0),
        )


async def _crashed(store: Any, run_id: str) -> None:
    """A run whose process died mid-run: no run_finished, its owner gone."""
    from agentflow.runtime.cli.compiled_loader import compile_and_import
    from agentflow.runtime.events.event import EventKind
    from agentflow.runtime.events.hub import EventHub

    compiled = compile_and_import(PIPELINES / "hello_world.yaml").compiled
    gone = subprocess.Popen(["true"])
    gone.wait()
    committer = await store.begin_run(
        run_id=run_id,
        pipeline=compiled.spec.name,
        pipeline_path=str(PIPELINES / "hello_world.yaml"),
        source_hash=compiled.source_sha256,
        input="trio",
        options={},
        model="dry-run",
        owner=f"{socket.gethostname()}:{gone.pid}",
    )
    hub = EventHub(run_id=run_id, pipeline_hash=compiled.source_sha256)
    hub.commit_to(committer)
    hub.emit(EventKind.RUN_STARTED, payload={"pipeline": compiled.spec.name, "model": "dry-run"})
    hub.emit(EventKind.AGENT_STARTED, agent="writer_agent", item="main", attempt=1)
    await hub.wait_committed()


def _serve(store_path: Path, urls: queue.Queue[str], stop: threading.Event) -> None:
    async def main() -> None:
        from agentflow.runtime.cli.compiled_loader import load_for_inspection
        from agentflow.runtime.models.dry_run import DryRunModel
        from agentflow.runtime.store import RunStore
        from agentflow.runtime.ui import UiConfig, serve_store

        store = RunStore.open(str(store_path))
        try:
            await _record(store, "hello_world.yaml", "run-hello", DryRunModel(), "trio")
            await _record(
                store, "research_fanout.yaml", "run-fanout", DryRunModel(fail_first=1), "sky"
            )
            routes = DryRunModel(routes={"supervisor": ["research", "write", "write", "finish"]})
            await _record(store, "supervisor.yaml", "run-supervisor", routes, "topic")
            await _record(
                store, "approval.yaml", "run-approval", DryRunModel(), {"topic": "the launch"}
            )
            await _crashed(store, "run-crashed")
            shutdown = trio.Event()
            async with trio.open_nursery() as nursery:
                serve = partial(serve_store, store, UiConfig(port=0), loader=load_for_inspection)
                url = await nursery.start(serve, shutdown)
                urls.put(url)
                while not stop.is_set():
                    await trio.sleep(0.1)
                shutdown.set()
        finally:
            store.close()

    trio.run(main)


def _shoot(page: Any, name: str) -> None:
    path = DOCS / name
    page.screenshot(path=str(path), full_page=False)
    print(f"{path.relative_to(ROOT)}")


def main() -> int:
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="agentflow-screenshots-"))
    os.chdir(workdir)  # the filesystem tool's workspace, the store
    urls: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    server = threading.Thread(target=_serve, args=(workdir / "runs.db", urls, stop))
    server.start()
    try:
        url = urls.get(timeout=300)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#runs-body tr').length === 5")
            _shoot(page, "ui-runs.png")

            page.goto(url + "runs/run-fanout")
            page.wait_for_function("window.__agentflow.runState === 'finished'")
            page.wait_for_timeout(300)
            _shoot(page, "ui-run.png")
            page.select_option("#filter-kind", "model_response")
            page.click("#log-body tr")
            page.get_by_role("button", name="open this model call").click()
            page.wait_for_function(
                "document.querySelector('[data-testid=drawer-request]').dataset.loaded"
            )
            _shoot(page, "ui-drawer.png")
            page.click("#drawer-close")
            page.select_option("#filter-kind", "")
            page.click("#tab-items")
            page.locator("#pane-items").scroll_into_view_if_needed()
            _shoot(page, "ui-items.png")
            page.click("#tab-timeline")
            page.locator("#pane-timeline").scroll_into_view_if_needed()
            _shoot(page, "ui-timeline.png")
            page.click("#tab-cost")
            page.locator("#pane-cost").scroll_into_view_if_needed()
            _shoot(page, "ui-cost.png")

            page.goto(url + "runs/run-supervisor")
            page.wait_for_function("window.__agentflow.runState === 'finished'")
            page.wait_for_timeout(300)
            _shoot(page, "ui-routes.png")

            page.goto(url + "runs/run-approval")
            page.wait_for_function("window.__agentflow.runState === 'waiting'")
            page.wait_for_timeout(300)
            _shoot(page, "ui-human.png")

            page.goto(url + "runs/run-crashed")
            page.wait_for_function("window.__agentflow.runState === 'crashed'")
            _shoot(page, "ui-crashed.png")

            narrow = browser.new_page(viewport={"width": 390, "height": 844})
            narrow.goto(url + "runs/run-hello")
            narrow.wait_for_function("window.__agentflow.runState === 'finished'")
            narrow.wait_for_timeout(300)
            _shoot(narrow, "ui-390px.png")
            browser.close()
    finally:
        stop.set()
        server.join(timeout=60)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
