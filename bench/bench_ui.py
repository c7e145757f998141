"""The UI at scale, measured in headless Chromium (issue 13, item 5).

    .venv/bin/python bench/bench_ui.py                 # this page
    .venv/bin/python bench/bench_ui.py --baseline      # the page before UI v2 (fdf8d92)
    .venv/bin/python bench/bench_ui.py --open-items 10000 --live-items 2000 --stream-s 10
    .venv/bin/python bench/bench_ui.py --only live --live-pane timeline   # watch from a tab

Three measurements, all against the real UI server (a hub in a trio loop on a
thread) and the page in Chromium driven by Playwright:

1. open: a finished run of N fan-out items (~20 events each: ~200,000 events for
   10,000 items) is opened in a new page; the renderer's CPU seconds until every
   event is applied and drawn (CDP `Performance.getMetrics`: `ProcessTime` of the
   renderer process, and `TaskDuration`, its main thread's busy time).
2. live lag: a 2,000-item run is emitted in bursts while the page watches; every
   100 ms the page's count of applied events is compared with the hub's; the lag
   is how long ago the first event the page has not applied was emitted
   (wall seconds: this is the one figure that is about time behind).
3. input latency: while 1,000 events/s stream, keys are typed into a filter box;
   the page records, for each `input` event, the delay from the event's timestamp
   to its handler and to the next animation frame (the next paint).

`--baseline` serves the static files of commit fdf8d92 (the page before UI v2)
instead of today's, with everything else the same.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
BASELINE_COMMIT = "fdf8d92"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def use_baseline_page() -> None:
    """Serve the static files of BASELINE_COMMIT (the page before UI v2)."""
    from agentflow.runtime.ui import app

    folder = Path(tempfile.mkdtemp(prefix="agentflow-ui-baseline-"))
    for name in ("index.html", "app.js", "style.css", "cytoscape.min.js"):
        text = subprocess.run(
            ["git", "show", f"{BASELINE_COMMIT}:runtime/ui/static/{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (folder / name).write_text(text)
    app._static_text = lambda name: (folder / name).read_text()
    app._static_asset.cache_clear()


def emit_item(hub: Any, k: int, kinds: Any) -> None:
    """One fan-out item of research-fanout: 20 events (worker streams text, two QA)."""
    item = f"item-{k + 1}"
    usage = {"input_tokens": 400, "output_tokens": 120, "cost_usd": 0.0018}
    hub.emit(kinds.ITEM_CREATED, item=item, payload={"parent": "main", "index": k})
    hub.emit(kinds.AGENT_STARTED, agent="worker_agent", item=item, attempt=1)
    hub.emit(kinds.MODEL_REQUEST, agent="worker_agent", item=item, attempt=1, payload={"turn": 1})
    for part in range(5):
        hub.emit(
            kinds.MODEL_TEXT,
            agent="worker_agent",
            item=item,
            attempt=1,
            payload={"turn": 1, "text": f"part {part} of the answer to {item}. " * 3},
        )
    hub.emit(
        kinds.MODEL_RESPONSE,
        agent="worker_agent",
        item=item,
        attempt=1,
        payload={"turn": 1, "usage": usage, "text": f"the answer to {item}"},
    )
    hub.emit(kinds.AGENT_COMPLETED, agent="worker_agent", item=item, attempt=1)
    hub.emit(
        kinds.TRANSITION,
        agent="worker_agent",
        item=item,
        payload={"from": "working", "to": "checking", "trigger": "x", "noop": True},
    )
    for qa in ("accuracy_qa_agent", "style_qa_agent"):
        hub.emit(kinds.AGENT_STARTED, agent=qa, item=item, attempt=1)
        hub.emit(kinds.MODEL_REQUEST, agent=qa, item=item, attempt=1, payload={"turn": 1})
        hub.emit(
            kinds.MODEL_RESPONSE,
            agent=qa,
            item=item,
            attempt=1,
            payload={"turn": 1, "usage": usage},
        )
        hub.emit(kinds.QA_VERDICT, agent=qa, item=item, attempt=1, payload={"passed": True})
    hub.emit(kinds.ITEM_FINISHED, item=item, payload={"status": "passed"})


class Server:
    """The UI server over a live hub, in a trio loop on its own thread."""

    def __init__(self) -> None:
        from agentflow.runtime.events.event import EventKind
        from agentflow.runtime.events.hub import EventHub

        sys.path.insert(0, str(ROOT))
        from tests.ui.helpers import load_pipeline

        self.kinds = EventKind
        self.pipeline = load_pipeline("research_fanout.yaml")
        self.hub = EventHub(run_id="run-bench-ui", keep_history=True)
        self.emitted_at: list[float] = []
        self._calls: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]] | None] = queue.Queue()
        self._url: queue.Queue[str] = queue.Queue()
        self._token: Any = None
        self.thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)
        self.thread.start()
        self.url = self._url.get(timeout=60)

    async def _main(self) -> None:
        from agentflow.runtime.ui import UiConfig, serve_ui

        self._token = trio.lowlevel.current_trio_token()
        self.shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve_ui, self.hub, self.pipeline, UiConfig(port=0), model_name="replay"),
                self.shutdown,
            )
            self._url.put(url)
            await self.shutdown.wait()

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` in the trio loop (between its tasks) and return its result."""
        return trio.from_thread.run_sync(fn, trio_token=self._token)

    async def _emit_items(self, first: int, last: int) -> None:
        for k in range(first, last):
            emit_item(self.hub, k, self.kinds)
            now = time.monotonic()
            self.emitted_at.extend([now] * (len(self.hub.history or []) - len(self.emitted_at)))
            if k % 50 == 0:
                await trio.sleep(0)

    def emit_items(self, first: int, last: int) -> None:
        trio.from_thread.run(partial(self._emit_items, first, last), trio_token=self._token)

    def start_run(self) -> None:
        def start() -> None:
            self.hub.emit(self.kinds.RUN_STARTED, payload={"model": "replay"})
            a = "orchestrator_agent"
            self.hub.emit(self.kinds.AGENT_STARTED, agent=a, item="main", attempt=1)
            self.hub.emit(self.kinds.AGENT_COMPLETED, agent=a, item="main", attempt=1)
            self.emitted_at.extend([time.monotonic()] * 3)

        self.run(start)

    def finish_run(self) -> None:
        self.run(
            lambda: self.hub.emit(
                self.kinds.RUN_FINISHED, payload={"status": "succeeded", "final_state": "complete"}
            )
        )

    @property
    def events(self) -> int:
        return int(self.run(lambda: len(self.hub.history or [])))

    def close(self) -> None:
        self.run(self.shutdown.set)
        self.thread.join(timeout=30)


def metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def new_page(browser: Any) -> tuple[Any, Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
    return page, cdp


def bench_open(browser: Any, items: int) -> dict[str, Any]:
    server = Server()
    try:
        server.start_run()
        for first in range(0, items, 1000):
            server.emit_items(first, min(items, first + 1000))
        server.finish_run()
        total = server.events
        # A finished run is opened once the UI holds all of it (as `agentflow serve` does).
        health = server.url.split("?")[0].rstrip("/") + "/healthz"
        while json.loads(urllib.request.urlopen(health).read())["events"] < total:
            time.sleep(0.2)
        page, cdp = new_page(browser)
        started = time.monotonic()
        page.goto(server.url)
        page.wait_for_function(
            f"window.__agentflow && window.__agentflow.events === {total} "
            "&& window.__agentflow.run !== null",
            timeout=600_000,
            polling=200,
        )
        page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 100)))")
        wall = time.monotonic() - started
        m = metrics(cdp)
        page.close()
        return {
            "items": items,
            "events": total,
            "renderer_cpu_s": round(m.get("ProcessTime", 0.0), 2),
            "main_thread_busy_s": round(m.get("TaskDuration", 0.0), 2),
            "script_s": round(m.get("ScriptDuration", 0.0), 2),
            "layout_s": round(m.get("LayoutDuration", 0.0), 2),
            "wall_s": round(wall, 2),
        }
    finally:
        server.close()


def bench_live(
    browser: Any, items: int, batch: int = 50, pane: str | None = None
) -> dict[str, Any]:
    server = Server()
    try:
        page, cdp = new_page(browser)
        page.goto(server.url)
        page.wait_for_function("window.__agentflow && window.__agentflow.connection.connected")
        if pane is not None:  # watch the run from that tab (the UI v2 page only)
            page.click(f"#tab-{pane}")
        server.start_run()
        lags: list[float] = []
        stop = threading.Event()

        def emit() -> None:
            for first in range(0, items, batch):
                server.emit_items(first, min(items, first + batch))
                time.sleep(0.05)  # ~1,000 items/s at batch 50: a fast fan-out
            server.finish_run()
            stop.set()

        emitter = threading.Thread(target=emit)
        emitter.start()
        while True:
            done = stop.is_set()
            seen = page.evaluate("window.__agentflow.events")
            now = time.monotonic()
            emitted = server.emitted_at
            if seen < len(emitted):
                lags.append(now - emitted[seen])
            else:
                lags.append(0.0)
            if done and seen >= server.events:
                break
            time.sleep(0.1)
        emitter.join()
        m = metrics(cdp)
        page.close()
        return {
            "items": items,
            "pane": pane or "events",
            "events": server.events,
            "max_lag_s": round(max(lags), 2),
            "p95_lag_s": round(sorted(lags)[int(0.95 * (len(lags) - 1))], 2),
            "samples": len(lags),
            "renderer_cpu_s": round(m.get("ProcessTime", 0.0), 2),
        }
    finally:
        server.close()


INSTALL_LATENCY = """(() => {
  window.__lat = [];
  const box = document.querySelector('#filter-item');
  box.addEventListener('input', (e) => {
    const handled = performance.now() - e.timeStamp;
    requestAnimationFrame(() => window.__lat.push([handled, performance.now() - e.timeStamp]));
  });
})()"""


def bench_input(browser: Any, seconds: float, rate: int = 1000) -> dict[str, Any]:
    server = Server()
    try:
        page, _ = new_page(browser)
        page.goto(server.url)
        page.wait_for_function("window.__agentflow && window.__agentflow.connection.connected")
        page.evaluate(INSTALL_LATENCY)
        server.start_run()
        stop = threading.Event()
        per_item = 20  # events emit_item makes

        def emit() -> None:
            k = 0
            step = max(1, rate // per_item // 20)  # items per 50 ms
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                server.emit_items(k, k + step)
                k += step
                time.sleep(0.05)
            stop.set()

        emitter = threading.Thread(target=emit)
        emitter.start()
        typed = 0
        while not stop.is_set():
            page.focus("#filter-item")
            page.keyboard.type("item-1", delay=30)
            page.fill("#filter-item", "")
            typed += 1
        emitter.join()
        page.wait_for_timeout(200)
        lat = page.evaluate("window.__lat")
        handled = [a for a, _ in lat]
        painted = [b for _, b in lat]
        page.close()
        return {
            "events_per_s": rate,
            "seconds": seconds,
            "inputs": len(lat),
            "handler_ms_p50": round(statistics.median(handled), 1),
            "handler_ms_max": round(max(handled), 1),
            "next_frame_ms_p50": round(statistics.median(painted), 1),
            "next_frame_ms_p95": round(sorted(painted)[int(0.95 * (len(painted) - 1))], 1),
            "next_frame_ms_max": round(max(painted), 1),
        }
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", action="store_true", help=f"the page of {BASELINE_COMMIT}")
    parser.add_argument("--open-items", type=int, default=10_000)
    parser.add_argument("--live-items", type=int, default=2_000)
    parser.add_argument("--stream-s", type=float, default=10.0)
    parser.add_argument("--only", choices=("open", "live", "input"))
    parser.add_argument(
        "--live-pane",
        choices=("items", "timeline", "cost"),
        help="watch the live run from this tab (default: the event log)",
    )
    args = parser.parse_args()
    if args.baseline:
        use_baseline_page()
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"page": BASELINE_COMMIT if args.baseline else "current"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            if args.only in (None, "open"):
                results["open"] = bench_open(browser, args.open_items)
                print(json.dumps({"open": results["open"]}), flush=True)
            if args.only in (None, "live"):
                results["live"] = bench_live(browser, args.live_items, pane=args.live_pane)
                print(json.dumps({"live": results["live"]}), flush=True)
            if args.only in (None, "input"):
                results["input"] = bench_input(browser, args.stream_s)
                print(json.dumps({"input": results["input"]}), flush=True)
        finally:
            browser.close()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
