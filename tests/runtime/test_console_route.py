"""The console says which route case an item took, and when a loop case ran out."""

from __future__ import annotations

from typing import Any

from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.sinks.console import summarize


def _route(payload: dict[str, Any]) -> str:
    event = PipelineEvent(
        run_id="r", seq=3, ts=0.0, kind=EventKind.ROUTE_CHOSEN, agent="replanner",
        item="main", attempt=2, payload=payload,
    )  # fmt: skip
    return summarize(event)


def test_a_plain_case_names_its_target() -> None:
    text = _route({"on": "route", "value": "done", "case": "done", "to": "end"})
    assert text == "⤳ case done → end"


def test_the_default_case_shows_the_value_that_took_it() -> None:
    text = _route({"on": "category", "value": "spam", "case": "default", "to": "triage"})
    assert text == "⤳ case default (category = spam) → triage"


def test_a_loop_case_shows_its_iteration_and_exhaustion() -> None:
    taken = {"on": "route", "value": "more", "case": "more", "to": "executor"}
    assert _route({**taken, "iteration": 2, "max_iterations": 4}) == (
        "⤳ case more → executor, iteration 2 of 4"
    )
    exhausted = {**taken, "to": "end", "iteration": 5, "max_iterations": 4, "exhausted": True}
    assert _route(exhausted) == "⤳ case more → end: case exhausted after 4 iterations"
