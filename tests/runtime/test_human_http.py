"""`POST /api/runs/<run>/answer` on the UI server (real Hypercorn, docs/human.md): the
token, Origin, Sec-Fetch-Site and JSON content-type refusals record nothing; an answer
that does not fit is 422 naming its fields; a good one is recorded and the run's
resume is started in the server process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from agentflow.runtime.cli.answer import AnswerService
from agentflow.runtime.engine.human import human_steps
from agentflow.runtime.store import RunStore, parse_location
from agentflow.runtime.ui.server import UiConfig, serve_store
from tests.runtime.test_human_runtime import _parked
from tests.store.conftest import pg_server, store_url  # noqa: F401 - fixtures used here

TOKEN = "t0ken-for-the-answer-endpoint-3f9a"
GOOD = {"item": "main", "agent": "approver", "answer": {"approved": True, "comment": "ok"}}


@asynccontextmanager
async def serving(store: RunStore, resumed: list[Sequence[str]]) -> AsyncIterator[str]:
    def resume(arguments: Sequence[str]) -> int:  # runs in a worker thread
        resumed.append(list(arguments))
        return 0

    service = AnswerService(store, [], resume)
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        url: str = await nursery.start(
            partial(serve_store, answers=service), store, UiConfig(port=0, token=TOKEN), shutdown
        )
        try:
            yield url.split("?")[0].rstrip("/")
        finally:
            shutdown.set()


async def test_the_endpoint_refuses_unsafe_writes_and_records_a_good_answer(
    store_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    store = RunStore(parse_location(store_url))
    resumed: list[Sequence[str]] = []
    try:
        await _parked(store, tmp_path, "run-http")
        before = list(store.lines("run-http"))
        with trio.fail_after(60):  # a safety net: a hang fails instead of blocking the suite
            async with serving(store, resumed) as base, httpx.AsyncClient() as client:
                endpoint = f"{base}/api/runs/run-http/answer"
                auth = {"Authorization": f"Bearer {TOKEN}"}
                no_token = await client.post(endpoint, json=GOOD)
                assert no_token.status_code == 401
                foreign = await client.post(
                    endpoint, json=GOOD, headers={**auth, "Origin": "http://evil.example"}
                )
                assert foreign.status_code == 403
                assert "Origin 'http://evil.example' is not this UI" in foreign.json()["error"]
                cross_site = await client.post(
                    endpoint, json=GOOD, headers={**auth, "Sec-Fetch-Site": "cross-site"}
                )
                assert cross_site.status_code == 403
                form = await client.post(
                    endpoint, data={"item": "main", "agent": "approver"}, headers=auth
                )
                assert form.status_code == 415
                malformed = await client.post(
                    endpoint, json={"item": "main", "answer": {}}, headers=auth
                )
                assert malformed.status_code == 400
                assert malformed.json() == {"error": "'agent' must be a non-empty string"}
                bad = await client.post(
                    endpoint,
                    json={**GOOD, "answer": {"approved": "maybe"}},
                    headers={**auth, "Origin": base},
                )
                assert bad.status_code == 422
                assert bad.json()["error"] == (
                    "the answer does not fit the output of agent 'approver' (ApproverOutput): "
                    "approved: Input should be a valid boolean, unable to interpret input "
                    "(got 'maybe'); comment: missing (the answer needs this field)"
                )
                unknown = await client.post(
                    f"{base}/api/runs/run-nope/answer", json=GOOD, headers=auth
                )
                assert unknown.status_code == 404
                assert list(store.lines("run-http")) == before  # nothing was recorded
                good = await client.post(
                    endpoint, json={**GOOD, "by": "alice"}, headers={**auth, "Origin": base}
                )
                assert good.status_code == 200, good.text
                assert good.json() == {
                    "run": "run-http", "agent": "approver", "item": "main", "attempt": 1,
                    "by": "alice", "resuming": True,
                }  # fmt: skip
                again = await client.post(endpoint, json=GOOD, headers=auth)
                assert again.status_code == 409
                assert "answered already (by alice)" in again.json()["error"]
                while not resumed:  # the resume runs in a worker thread
                    await trio.sleep(0.01)
        assert resumed == [["resume", "run-http", "--no-ui", "--quiet"]]
        answered = json.loads(list(store.lines("run-http"))[-1])
        assert answered["kind"] == "human_answered"
        assert answered["payload"] == {"by": "alice", "answer": GOOD["answer"]}
        assert [s.answered_by for s in human_steps(store, "run-http")] == ["alice"]
    finally:
        store.close()


async def test_the_server_resumes_the_answered_run_in_its_own_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentflow.runtime.cli.main import main
    from tests.cli.test_answer_cli import _copy_approval, agentflow

    # The server resumes from its own directory: the run's relative log path is taken
    # from there, as `agentflow serve` run where the run ran would.
    monkeypatch.chdir(tmp_path)
    pipeline = _copy_approval(tmp_path)
    code, out, err = await agentflow(
        "run", str(pipeline), "--input", '{"topic": "the office"}', "--model", "dry-run",
        "--no-ui", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert code == 3, out + err
    run_id = next(x for x in out.splitlines() if x.startswith("run run-")).split()[1].rstrip(":")
    location = str(tmp_path / ".agentflow" / "agentflow.db")
    store = RunStore(parse_location(location))
    # as `agentflow serve` builds it: the resume runs in this process, by `main`
    service = AnswerService(store, ["--store", location], main)
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                shutdown = trio.Event()
                url: str = await nursery.start(
                    partial(serve_store, answers=service), store, UiConfig(port=0), shutdown
                )
                base = url.split("?")[0].rstrip("/")
                async with httpx.AsyncClient() as client:
                    reply = await client.post(
                        f"{base}/api/runs/{run_id}/answer",
                        json={**GOOD, "answer": {"approved": False, "comment": "shorter"}},
                        headers={"Origin": base},
                    )
                assert reply.status_code == 200, reply.text
                while store.run(run_id).status in ("waiting", "running"):
                    await trio.sleep(0.05)
                shutdown.set()
        record = store.run(run_id)
        assert record.status == "succeeded", record.reason
        assert record.output is not None and "reviser" in record.output
    finally:
        store.close()


async def test_a_ui_without_an_answer_backend_takes_no_answers(tmp_path: Path) -> None:
    store = RunStore(parse_location(str(tmp_path / "agentflow.db")))
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                shutdown = trio.Event()
                url: str = await nursery.start(serve_store, store, UiConfig(port=0), shutdown)
                async with httpx.AsyncClient() as client:
                    reply = await client.post(f"{url.rstrip('/')}/api/runs/run-x/answer", json=GOOD)
                shutdown.set()
        assert reply.status_code == 404
        assert reply.json() == {
            "error": "this UI does not take answers: `agentflow serve` (over the run store) "
            "does, or `agentflow answer`"
        }
    finally:
        store.close()
