"""UI v2's server over real sockets: the runs of a store (`/api/runs`, `/runs/<id>`,
each run's API), a recorded model call's request on demand, frames naming their run,
static files compressed with validators, and `agentflow serve`'s store mode."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import trio
from trio_websocket import open_websocket_url

from agentflow.runtime.cli.compiled_loader import load_for_inspection
from agentflow.runtime.store import RunStore
from agentflow.runtime.ui import UiConfig, serve_store, serve_ui

from .helpers import HELLO_WORLD, emit_hello_world, load_pipeline, running_ui
from .store_runs import PIPELINES, begin_partial_run, dead_owner, record_run

HELLO = load_pipeline("hello_world.yaml")


async def test_the_store_s_runs_their_pages_and_a_recorded_call(tmp_path: Path) -> None:
    store = RunStore.open(str(tmp_path / "runs.db"))
    shutdown = trio.Event()
    try:
        await record_run(store, "hello_world.yaml", "run-done")
        await begin_partial_run(store, "hello_world.yaml", "run-dead", owner=dead_owner())
        committer = await store.take_over("run-done")
        request = {"system": "s", "messages": [{"role": "user", "content": "hi"}]}
        await committer.record_model_call(
            "writer_agent", "main", 9, 1, request_hash="h", response={"text": "r"},
            usage={}, seq=1, request=request,
        )  # fmt: skip
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve_store, store, UiConfig(port=0), loader=load_for_inspection),
                shutdown,
            )
            base = url.rstrip("/")
            async with httpx.AsyncClient() as client:
                runs = (await client.get(f"{base}/api/runs")).json()
                states = {r["id"]: (r["status"], r["state"]) for r in runs["runs"]}
                assert states == {
                    "run-done": ("succeeded", "finished"),
                    "run-dead": ("interrupted", "crashed"),
                }
                assert runs["store"] is True and runs["primary"] is None
                page = (await client.get(f"{base}/runs/run-done")).text
                assert 'data-view="run" data-run="run-done"' in page
                assert 'data-api="/api/runs/run-done/"' in page
                root = (await client.get(f"{base}/")).text
                assert 'data-view="runs"' in root
                missing = await client.get(f"{base}/runs/run-nope")
                assert missing.status_code == 404
                assert "no run 'run-nope'" in missing.text
                config = (await client.get(f"{base}/api/runs/run-dead/config")).json()
                assert config["run"]["state"] == "crashed"
                assert config["run"]["id"] == "run-dead"
                assert [a["id"] for a in config["agents"]] == ["writer_agent", "reviewer_agent"]
                status = (await client.get(f"{base}/api/runs/run-done/status")).json()
                assert (status["state"], status["status"]) == ("finished", "succeeded")
                query = "agent=writer_agent&item=main&attempt=9&turn=1"
                call = (await client.get(f"{base}/api/runs/run-done/call?{query}")).json()
                assert call["request"] == request and call["why"] is None
                query = "agent=writer_agent&item=main&attempt=8&turn=1"
                call = (await client.get(f"{base}/api/runs/run-done/call?{query}")).json()
                assert call["request"] is None and "no record" in call["why"]
            ws_url = base.replace("http://", "ws://") + "/api/runs/run-dead/ws"
            async with open_websocket_url(ws_url) as ws:
                frame = json.loads(await ws.get_message())
            assert frame["run"] == "run-dead" and frame["start"] == 0
            assert [e["kind"] for e in frame["events"]] == ["run_started", "agent_started"]
            shutdown.set()
    finally:
        store.close()


async def test_static_files_are_gzipped_with_an_etag_and_a_304() -> None:
    async with running_ui(HELLO) as ui, httpx.AsyncClient() as client:
        plain = await client.get(ui.base + "/static/app.js", headers={"Accept-Encoding": ""})
        assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
        zipped = await client.get(
            ui.base + "/static/app.js", headers={"Accept-Encoding": "gzip, br"}
        )
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert zipped.headers["Vary"] == "Accept-Encoding"
        # the bytes on the wire are the gzip of the file (httpx decodes them for .text)
        assert int(zipped.headers["Content-Length"]) == len(gzip.compress(plain.content, mtime=0))
        assert int(zipped.headers["Content-Length"]) < len(plain.content) // 2
        assert zipped.text == plain.text  # httpx decodes it
        etag = plain.headers["ETag"]
        assert etag == zipped.headers["ETag"] and etag.startswith('"')
        again = await client.get(ui.base + "/static/app.js", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        other = await client.get(ui.base + "/static/app.js", headers={"If-None-Match": '"x"'})
        assert other.status_code == 200


async def test_a_live_run_frames_name_their_run_and_its_page_is_the_root_without_a_store() -> None:
    async with running_ui(HELLO, run_id="run-own") as ui, httpx.AsyncClient() as client:
        emit_hello_world(ui.hub)
        with trio.fail_after(30):  # the UI takes the events in from its subscription
            while (await client.get(ui.base + "/healthz")).json()["events"] < len(HELLO_WORLD):
                await trio.sleep(0.02)
        assert 'data-view="run"' in (await client.get(ui.base + "/")).text
        assert ui.url.endswith("/")  # no store: the run's page is /
        runs = (await client.get(ui.base + "/api/runs")).json()
        assert [r["id"] for r in runs["runs"]] == ["run-own"]
        assert runs["runs"][0]["model_calls"] == 4
        async with open_websocket_url(ui.ws_url) as ws:
            frame = json.loads(await ws.get_message())
        assert frame["run"] == "run-own"


async def test_a_run_with_a_store_opens_on_its_own_page(tmp_path: Path) -> None:
    store = RunStore.open(str(tmp_path / "runs.db"))
    try:
        from agentflow.runtime.events.hub import EventHub

        hub = EventHub(run_id="run-mine", keep_history=True)
        shutdown = trio.Event()
        async with hub.running(), trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve_ui, hub, HELLO, UiConfig(port=0), store=store), shutdown
            )
            assert url.endswith("/runs/run-mine")
            shutdown.set()
    finally:
        store.close()


def test_agentflow_serve_without_a_store_or_with_a_log_and_no_pipeline(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "agentflow.runtime.cli"]
    missing = subprocess.run(
        [*cli, "serve", "--store", str(tmp_path / "none.db"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "no run store at" in missing.stderr and "Traceback" not in missing.stderr
    no_pipeline = subprocess.run(
        [*cli, "serve", str(tmp_path / "run.jsonl")], capture_output=True, text=True, timeout=60
    )
    assert no_pipeline.returncode == 2
    assert "serve LOG needs --pipeline" in no_pipeline.stderr


async def test_the_new_routes_need_the_token_too(tmp_path: Path) -> None:
    store = RunStore.open(str(tmp_path / "runs.db"))
    shutdown = trio.Event()
    try:
        await record_run(store, "hello_world.yaml", "run-t")
        async with trio.open_nursery() as nursery:
            config = UiConfig(port=0, token="a-token-of-the-ui-1234")
            url = await nursery.start(partial(serve_store, store, config), shutdown)
            base = url.split("?")[0].rstrip("/")
            paths = ["/", "/runs/run-t", "/api/runs", "/api/runs/run-t/config",
                     "/api/runs/run-t/events", "/api/runs/run-t/status",
                     "/api/runs/run-t/call?agent=writer_agent"]  # fmt: skip
            async with httpx.AsyncClient() as client:
                for path in paths:
                    assert (await client.get(base + path)).status_code == 401, path
                    auth = {"Authorization": "Bearer a-token-of-the-ui-1234"}
                    assert (await client.get(base + path, headers=auth)).status_code == 200, path
                    client.cookies.clear()  # a page sets the token's cookie
            shutdown.set()
    finally:
        store.close()


async def test_a_run_whose_yaml_changed_since_is_drawn_from_its_events(tmp_path: Path) -> None:
    """Two runs of one YAML path: the one recorded with another source hash (the file
    was edited since) gets no graph, even after the other run's graph was read."""
    store = RunStore.open(str(tmp_path / "runs.db"))
    shutdown = trio.Event()
    try:
        await record_run(store, "hello_world.yaml", "run-same")
        compiled = load_for_inspection(PIPELINES / "hello_world.yaml")
        await store.begin_run(
            run_id="run-edited", pipeline="hello-world", source_hash="0" * 64,
            pipeline_path=str(PIPELINES / "hello_world.yaml"), input="x", options={},
        )  # fmt: skip
        assert compiled.source_sha256 != "0" * 64
        async with trio.open_nursery() as nursery:
            serve = partial(serve_store, store, UiConfig(port=0), loader=load_for_inspection)
            base = (await nursery.start(serve, shutdown)).rstrip("/")
            async with httpx.AsyncClient() as client:
                same = (await client.get(f"{base}/api/runs/run-same/config")).json()
                edited = (await client.get(f"{base}/api/runs/run-edited/config")).json()
            assert [a["id"] for a in same["agents"]] == ["writer_agent", "reviewer_agent"]
            assert edited["agents"] == [] and edited["pipeline_missing"] is True
            shutdown.set()
    finally:
        store.close()
