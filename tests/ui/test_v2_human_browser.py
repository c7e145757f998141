"""A human step answered from the page, in real headless Chromium: a run parked
waiting for a person (the real engine against the fake Anthropic API, a real store)
shows WAITING FOR A PERSON, who it waits for and the question; an answer that does
not fit is refused with its fields named; a good one is posted to the server's
`POST /api/runs/<run>/answer` (token-protected, same-origin JSON) and recorded, and
the page sees the step answered."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pytest
import trio

from agentflow.runtime.cli.answer import AnswerService
from agentflow.runtime.cli.compiled_loader import load_for_inspection
from agentflow.runtime.store import RunStore
from agentflow.runtime.ui import UiConfig, serve_store
from tests.runtime.test_human_runtime import _parked

from .conftest import BrowserThread
from .test_browser import js, wait_js
from .test_v2_runs_browser import RUN_STATE, WAIT, new_page

pytestmark = pytest.mark.browser

TOKEN = "t0ken-for-the-page-answer-7c2e"
FORM = "#human-list li[data-agent='approver']"


async def test_a_human_step_answered_from_the_page(
    browser_thread: BrowserThread, tmp_path: Path
) -> None:
    bt = browser_thread
    store = RunStore.open(str(tmp_path / "runs.db"))
    resumed: list[Sequence[str]] = []
    shutdown = trio.Event()
    try:
        await _parked(store, tmp_path, "run-person")

        def resume(arguments: Sequence[str]) -> int:  # the resume itself: H's tests
            resumed.append(list(arguments))
            return 0

        service = AnswerService(store, [], resume)
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve_store, answers=service, loader=load_for_inspection),
                store,
                UiConfig(port=0, token=TOKEN),
                shutdown,
            )
            base, query = url.split("?")
            page = await bt.call(lambda: new_page(bt, f"{base}runs/run-person?{query}"))
            try:
                await wait_js(bt, page, f"{RUN_STATE} === 'waiting'", timeout=WAIT)
                await wait_js(bt, page, f'document.querySelector("{FORM}") !== null', WAIT)
                text = await js(bt, page, f'document.querySelector("{FORM}").textContent')
                assert "the comms lead" in text  # who it waits for
                # Not "ended well": a waiting run's state is neutral, not green.
                outcome = "document.querySelector('#state-current').dataset.outcome"
                assert await js(bt, page, outcome) == ""
                human = (
                    "document.querySelector('#graph')._cyreg.cy.nodes('.human').map(n => n.id())"
                )
                assert await js(bt, page, human) == ["approver"]
                area = f"{FORM} textarea"
                # An answer that does not fit: refused, its field named, nothing recorded.
                bad = json.dumps({"approved": "maybe", "comment": "x"})
                await bt.call(lambda: page.fill(area, bad))
                await bt.call(lambda: page.click(f"{FORM} button[type=submit]"))
                error = f'document.querySelector("{FORM} .form-error").textContent'
                await wait_js(bt, page, f"{error}.includes('422')", WAIT)
                assert "approved" in await js(bt, page, error)
                # A good answer: recorded, and the page sees the step answered.
                good = json.dumps({"approved": True, "comment": "ship it"})
                await bt.call(lambda: page.fill(area, good))
                await bt.call(lambda: page.fill(f"{FORM} input", "alice"))
                await bt.call(lambda: page.click(f"{FORM} button[type=submit]"))
                await wait_js(bt, page, "document.querySelector('#human').hidden", WAIT)
                answered = [
                    json.loads(line)
                    for line in store.lines("run-person", kinds=("human_answered",))
                ]
                assert [a["payload"] for a in answered] == [
                    {"by": "alice", "answer": {"approved": True, "comment": "ship it"}}
                ]
                with trio.fail_after(30):
                    while not resumed:  # the service starts the resume in a worker thread
                        await trio.sleep(0.05)
                assert resumed[0][:2] == ["resume", "run-person"]
                assert page.errors == [] or all("422" in e for e in page.errors)
            finally:
                await bt.call(page.close)
                shutdown.set()
    finally:
        store.close()
