"""Worst-case bounds of the DSL v2 part 2 constructs (compiler/bounds.py).

Hand-built specs (no checks run), so each rule of the counting is pinned on its
own: a route is the maximum over its cases, a loop case adds its body once per
iteration (nested loops add: the counters are per item), join and reduce run once
per item, a sub-pipeline adds its child's bound. Where no run can reach the
figure, `exact` is False and `notes` say why. The runtime side (the bound is met
exactly by a real run) is tests/test_worst_case_bound.py.
"""

from __future__ import annotations

from agentflow.compiler.bounds import unbounded_cycles, worst_case
from agentflow.compiler.explain import explain
from agentflow.runtime.spec import (
    AgentSpec,
    DispatchSpec,
    OnFailSpec,
    PipelineSpec,
    RetrySpec,
    RouteCase,
    StateMachineSpec,
    StateSpec,
)

from .emit_helpers import HandLoaded


def leaf(agent_id: str, **fields: object) -> AgentSpec:
    fields.setdefault("prompt", "p")
    return AgentSpec(id=agent_id, **fields)


def seq(agent_id: str, target: str, **fields: object) -> AgentSpec:
    dispatch = DispatchSpec(strategy="sequential", target=target)
    return leaf(agent_id, dispatch=dispatch, **fields)


def route(
    agent_id: str, default: str | None = None, **cases: str | tuple[str, int] | RouteCase
) -> AgentSpec:
    def case(value: str | tuple[str, int] | RouteCase) -> RouteCase:
        if isinstance(value, RouteCase):
            return value
        if isinstance(value, tuple):
            return RouteCase(target=value[0], max_iterations=value[1])
        return RouteCase(target=value)

    dispatch = DispatchSpec(
        strategy="route",
        cases={key: case(value) for key, value in cases.items()},
        default=RouteCase(target=default) if default else None,
    )
    return leaf(agent_id, dispatch=dispatch)


def broadcast(agent_id: str, *targets: str, join: str | None = None) -> AgentSpec:
    dispatch = DispatchSpec(strategy="parallel_broadcast", targets=targets, join=join)
    return leaf(agent_id, dispatch=dispatch)


def fan_out(agent_id: str, target: str, reduce: str | None = None) -> AgentSpec:
    dispatch = DispatchSpec(strategy="parallel_fan_out", target=target, reduce=reduce)
    return leaf(agent_id, dispatch=dispatch)


def qa(agent_id: str, retry_target: str, attempts: int) -> AgentSpec:
    return leaf(
        agent_id,
        retry=RetrySpec(max_attempts=attempts),
        on_fail=OnFailSpec(action="feedback_and_retry", target=retry_target),
    )


def pipeline(*agents: AgentSpec, name: str = "bounds") -> PipelineSpec:
    machine = StateMachineSpec(
        initial="running",
        terminal=("complete",),
        states=(StateSpec(id="running"), StateSpec(id="complete")),
    )
    return PipelineSpec(name=name, state_machine=machine, agents=agents)


def test_a_route_counts_its_costliest_case_not_the_sum() -> None:
    spec = pipeline(
        route("r", short="a", long="b", stop="end", bad="abort"),
        leaf("a"),
        seq("b", "c"),
        seq("c", "d"),
        leaf("d"),
    )
    worst = worst_case(spec)
    assert str(worst.invocations) == "4"  # r + b, c, d; the sum of the cases would be 5
    assert worst.scopes[0].runs == {"r": 1, "b": 1, "c": 1, "d": 1}
    assert worst.exact


def test_the_default_counts_like_a_case() -> None:
    spec = pipeline(route("r", default="b", short="a"), leaf("a"), seq("b", "c"), leaf("c"))
    assert str(worst_case(spec).invocations) == "3"


def test_a_loop_case_adds_its_body_once_per_iteration() -> None:
    spec = pipeline(
        seq("plan", "work"),
        seq("work", "judge"),
        route("judge", more=("work", 4), done="end"),
    )
    worst = worst_case(spec)
    assert str(worst.invocations) == "11"  # plan + 5 x (work, judge)
    assert worst.scopes[0].runs == {"plan": 1, "work": 5, "judge": 5}
    assert worst.exact


def test_the_exit_of_a_loop_is_counted_once_not_per_iteration() -> None:
    spec = pipeline(
        seq("work", "judge"),
        route("judge", more=("work", 3), done="summary"),
        seq("summary", "publish"),
        leaf("publish"),
    )
    worst = worst_case(spec)
    assert str(worst.invocations) == "10"  # 4 x (work, judge) + summary + publish
    assert worst.exact


def test_nested_loops_add_because_their_counters_are_per_item() -> None:
    spec = pipeline(
        seq("outer", "inner"),
        seq("inner", "check"),
        route("check", retry=("inner", 3), ok="review"),
        route("review", again=("outer", 2), done="end"),
    )
    worst = worst_case(spec)
    # base 4; the inner case 3 x (inner, check); the outer one 2 x (outer, inner, check,
    # review). Multiplying (3 inner iterations per outer one) would give far more.
    assert str(worst.invocations) == "18"
    assert worst.scopes[0].runs == {"outer": 3, "inner": 6, "check": 6, "review": 3}
    assert worst.exact


def test_a_supervisor_with_several_loop_cases_adds_each() -> None:
    spec = pipeline(
        route("boss", a=("worker_a", 2), b=("worker_b", 3), finish="end"),
        seq("worker_a", "boss"),
        seq("worker_b", "helper"),
        seq("helper", "boss"),
    )
    worst = worst_case(spec)
    assert str(worst.invocations) == "14"  # boss + 2 x (worker_a, boss) + 3 x (b, helper, boss)
    assert worst.exact


def test_join_and_reduce_run_once_per_item() -> None:
    spec = pipeline(
        broadcast("split", "left", "right", join="merge"),
        leaf("left"),
        leaf("right"),
        seq("merge", "fan"),
        fan_out("fan", "child", reduce="combine"),
        leaf("child"),
        leaf("combine"),
    )
    worst = worst_case(spec)
    assert str(worst.invocations) == "6 + N"
    assert worst.scopes[0].runs == {
        "split": 1, "left": 1, "right": 1, "merge": 1, "fan": 1, "combine": 1
    }  # fmt: skip


def test_a_join_after_a_retrying_qa_branch_never_runs_when_every_verdict_fails() -> None:
    spec = pipeline(
        broadcast("split", "draft", "check", join="merge"),
        leaf("draft"),
        qa("check", "split", 3),
        leaf("merge"),
    )
    worst = worst_case(spec)
    assert str(worst.invocations) == "9"  # 3 x (split, draft, check); the item then aborts
    assert str(worst.ceiling_invocations) == "12"  # any verdicts: the join may run


def test_routes_with_polynomial_costs_take_each_coefficients_maximum() -> None:
    spec = pipeline(
        route("r", wide="fan", long="a"),
        fan_out("fan", "child"),
        leaf("child"),
        seq("a", "b"),
        seq("b", "c"),
        leaf("c"),
    )
    worst = worst_case(spec)
    # wide costs 1 + N, long costs 3: for N < 2 long is worse, for N > 2 wide is.
    assert str(worst.invocations) == "4 + N"
    assert not worst.exact
    assert any("largest coefficient" in note for note in worst.notes)
    assert "(an upper bound: no run may reach it, because a route's cases" in explain(
        HandLoaded(spec, {})
    )


def test_a_loop_whose_worst_choice_leaves_it_is_an_upper_bound() -> None:
    spec = pipeline(
        seq("work", "side"),
        route("side", stay="judge", leave="x"),
        seq("x", "y"),
        seq("y", "z"),
        leaf("z"),
        route("judge", more=("work", 3), done="end"),
    )
    worst = worst_case(spec)
    assert worst.invocations is not None
    assert not worst.exact
    assert any("never reach router 'judge'" in note for note in worst.notes)


def test_a_qa_agent_inside_a_loop_makes_it_an_upper_bound() -> None:
    spec = pipeline(
        broadcast("work", "check", "judge"),
        qa("check", "work", 2),
        route("judge", more=("work", 3), done="end"),
    )
    worst = worst_case(spec)
    assert not worst.exact
    assert any("QA agent 'check' shares an item with a loop" in n for n in worst.notes)


def test_a_cycle_without_a_bounded_case_is_unbounded() -> None:
    spec = pipeline(seq("a", "b"), route("b", back="a", done="end"))
    worst = worst_case(spec)
    assert worst.invocations is None
    assert worst.unbounded == "a -> b -> a"
    assert unbounded_cycles(spec) == [["a", "b"]]
    bounded = pipeline(seq("a", "b"), route("b", back=("a", 2), done="end"))
    assert unbounded_cycles(bounded) == []


def test_a_sub_pipeline_adds_its_childs_bound_with_its_own_symbols() -> None:
    child = pipeline(fan_out("split", "write"), leaf("write"), name="child")
    parent = pipeline(
        fan_out("plan", "team"),
        leaf("team", pipeline="child.yaml", prompt=None),
        name="parent",
    )
    worst = worst_case(parent, {"team": child})
    # plan + N1 x (team itself + the child's 1 + N): the child's N is renamed N2.
    assert str(worst.invocations) == "1 + 2·N1 + N1·N2"
    assert worst.symbols == {"N1": "plan", "N2": "team.split"}
    assert str(worst.children["team"].invocations) == "1 + N"
    # The sub-pipeline agent makes no model call itself: its child's agents do (a fan-out
    # agent may be re-asked once for its item list: 2 calls).
    assert str(worst.model_calls) == "2 + 2·N1 + N1·N2"


def test_a_sub_pipeline_that_was_not_loaded_has_no_formula() -> None:
    parent = pipeline(seq("plan", "team"), leaf("team", pipeline="child.yaml", prompt=None))
    worst = worst_case(parent)
    assert worst.invocations is None
    assert (
        worst.too_complex == "sub-pipeline 'team' (child.yaml) is not loaded: its bound is unknown"
    )


def test_v1_shapes_count_as_before() -> None:
    """A QA loop with no route: the v1 formula (retries re-run the target's subtree)."""
    spec = pipeline(
        broadcast("first", "left", "right"),
        seq("left", "check"),
        seq("right", "check"),
        qa("check", "right", 2),
    )
    worst = worst_case(spec)
    assert worst.scopes[0].runs == {"first": 1, "left": 1, "right": 2, "check": 3}
    assert str(worst.invocations) == "7"
    assert worst.exact


def test_each_loop_case_is_checked_on_its_own_pass() -> None:
    """Case `a` loops back to the router, but the worst choice after case `b` leaves the
    loop: `b` cannot be taken three times, whatever `a` does."""
    spec = pipeline(
        route("boss", a=("worker_a", 3), b=("worker_b", 3), finish="end"),
        seq("worker_a", "boss"),
        seq("worker_b", "side"),
        route("side", back="boss", away="x"),
        seq("x", "y"),
        leaf("y"),
    )
    worst = worst_case(spec)
    assert not worst.exact
    assert worst.notes == (
        "the worst choices after worker_b leave the loop of router 'boss', so it cannot be "
        "taken 3 times",
    )


def test_a_loop_closed_only_through_another_loop_is_an_upper_bound() -> None:
    spec = pipeline(
        route("first", go=("middle", 2), done="end"),
        seq("middle", "second"),
        route("second", back=("first", 3), stop="end"),
    )
    worst = worst_case(spec)
    assert worst.invocations is not None and not worst.exact
    assert (
        "middle leads back to router 'first' only through another loop, so each pass is "
        "counted in full"
    ) in worst.notes
