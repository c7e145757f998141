"""`--explain`: state graph, agent graph, cycles with their bounds, worst-case call counts."""

from __future__ import annotations

import pytest

from agentflow.compiler.bounds import Poly, worst_case
from agentflow.compiler.explain import explain
from agentflow.compiler.load import load_pipeline
from agentflow.runtime.spec import AgentSpec, DispatchSpec, OnFailSpec, RetrySpec

from .emit_helpers import ROOT, HandLoaded
from .test_emit import small_spec


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_hello_world_worst_case_is_four_invocations() -> None:
    text = explain(load_pipeline("pipelines/hello_world.yaml"))
    assert "writer_agent x2, reviewer_agent x2 = 4 invocations, <= 22 model calls" in text
    assert "per run: agent invocations = 4\n" in text
    # The writer has a tool: 2 x (8 + 1); the reviewer may be re-asked once: 2 x (1 + 1).
    assert "per run: model calls <= 22\n" in text
    assert "writer_agent <= 9, reviewer_agent <= 2)" in text
    assert (
        "QA loop: writer_agent -> reviewer_agent -.-> writer_agent; "
        "broken by reviewer_agent max_attempts = 2"
    ) in text
    assert "writer_agent -> reviewer_agent  [sequential]" in text
    assert "reviewer_agent -.-> writer_agent  [feedback on a failing verdict]" in text


def test_hello_world_state_graph() -> None:
    text = explain(load_pipeline("pipelines/hello_world.yaml"))
    assert (
        "states: initialised (initial), running, reviewing, complete (terminal), failed (terminal)"
        in text
    )
    assert "writer_agent.on_complete -> reviewing\n" in text
    assert "reviewer_agent.on_pass   -> complete  (deferred: taken when the run ends)" in text
    assert "aggregation.on_complete  -> complete\n" in text
    assert "legal moves: 3 non-terminal states x 7 triggers = 21" in text


def test_fan_out_costs_are_a_formula_in_n() -> None:
    text = explain(load_pipeline("pipelines/research_fanout.yaml"))
    assert "per run: agent invocations = 1 + 6·N\n" in text
    assert "worker_agent x2, accuracy_qa_agent x2, style_qa_agent x2 = 6 invocations" in text
    assert "where N = work items one run of orchestrator_agent produces" in text
    assert "style_qa_agent: a failing verdict aborts the item" in text


def test_nested_fan_outs_and_two_loops_on_one_target() -> None:
    loaded = load_pipeline("tests/golden/cases/nested_fanout/pipeline.yaml")
    worst = worst_case(loaded.spec)
    # Every verdict failing: both checks are joined at worker's broadcast, so each retry
    # spends an attempt of both and check_a's 3 end the item: worker runs 3 times, and
    # each run reaches both checks once.
    assert str(worst.invocations) == "1 + N1 + 9·N1·N2"
    assert worst.symbols == {"N1": "planner", "N2": "splitter"}
    assert worst.invocations is not None
    assert worst.invocations.evaluate({"N1": 2, "N2": 3}) == 1 + 2 + 9 * 6
    # Any verdicts: failing in turn, worker re-runs (3 - 1) + (4 - 1) times: 6 runs.
    assert str(worst.ceiling_invocations) == "1 + N1 + 18·N1·N2"


def test_tool_rounds_multiply_model_calls() -> None:
    text = explain(load_pipeline("tests/golden/cases/plugins/pipeline.yaml"))
    assert "per run: agent invocations = 1\n" in text
    assert "per run: model calls <= 4\n" in text  # max_tool_rounds 3 + 1


def test_diamond_dispatch_counts_every_path() -> None:
    agents = (
        AgentSpec(
            id="first",
            prompt="p",
            dispatch=DispatchSpec(strategy="parallel_broadcast", targets=("left", "right")),
        ),
        AgentSpec(id="left", prompt="p", dispatch=DispatchSpec(strategy="sequential", target="qa")),
        AgentSpec(
            id="right", prompt="p", dispatch=DispatchSpec(strategy="sequential", target="qa")
        ),
        AgentSpec(
            id="qa",
            prompt="p",
            retry=RetrySpec(max_attempts=2),
            on_fail=OnFailSpec(action="feedback_and_retry", target="right"),
        ),
    )
    spec = small_spec().model_copy(update={"agents": agents})
    worst = worst_case(spec)
    runs = worst.scopes[0].runs
    # qa runs once per path (2), plus once more per retry of `right` (1).
    assert runs == {"first": 1, "left": 1, "right": 2, "qa": 3}
    assert str(worst.invocations) == "7"


def test_dispatch_cycles_are_reported_unbounded() -> None:
    agents = (
        AgentSpec(
            id="first", prompt="p", dispatch=DispatchSpec(strategy="sequential", target="second")
        ),
        AgentSpec(
            id="second", prompt="p", dispatch=DispatchSpec(strategy="sequential", target="first")
        ),
    )
    spec = small_spec().model_copy(update={"agents": agents})
    text = explain(HandLoaded(spec, {"first": "", "second": ""}))
    assert "UNBOUNDED dispatch cycle: first -> second -> first" in text
    assert "unbounded: first -> second -> first" in text


def test_poly_formatting() -> None:
    assert str(Poly({(): 1, ("N",): 6})) == "1 + 6·N"
    assert str(Poly({("N",): 1})) == "N"
    assert str(Poly({})) == "0"
    assert str(Poly({(): 2}) + Poly({(): -2})) == "0"
