"""`--explain` for DSL v2 part 2: routes, loops, joins, reduces, items, sub-pipelines."""

from __future__ import annotations

from pathlib import Path

from agentflow.compiler.explain import explain
from agentflow.compiler.load import load_pipeline

from .emit_helpers import ROOT, HandLoaded
from .test_v2_bounds import broadcast, pipeline, qa, route, seq

EXAMPLES = ROOT / "pipelines"
SHAPES = ROOT / "tests" / "worst_case"


def _explain(path: Path) -> list[str]:
    return explain(load_pipeline(path)).splitlines()


def test_routes_show_their_field_cases_default_and_targets() -> None:
    lines = _explain(EXAMPLES / "plan_execute.yaml")
    assert "  replanner routes on 'decision': cases execute, done" in lines
    assert (
        "  replanner -> executor  [route case 'execute', max_iterations 4, on_exhausted end]"
    ) in lines
    assert "  replanner -> end  [route case 'done': the item ends]" in lines
    text = explain(HandLoaded(pipeline(route("r", default="b", bad="abort"), seq("b", "c")), {}))
    assert "  r routes on 'route': cases bad; default -> b" in text
    assert "  r -> abort  [route case 'bad': the item aborts]" in text
    assert "  r -> b  [route default]" in text


def test_loops_show_their_path_bound_and_on_exhausted_and_are_not_unbounded() -> None:
    lines = _explain(EXAMPLES / "plan_execute.yaml")
    assert (
        "  route loop: executor -> replanner -> executor (case 'execute'); at most 4 "
        "iterations per item (the body runs at most 5 times), then choosing it again ends "
        "the item (on_exhausted: end)"
    ) in lines
    assert not any("UNBOUNDED" in line for line in lines)
    nested = _explain(SHAPES / "nested_loops.yaml")
    assert any(
        line.startswith(
            "  route loop: inner_work -> checker -> inner_work (case 'retry'); at most 3"
        )
        and line.endswith("then choosing it again aborts the item (on_exhausted: abort)")
        for line in nested
    )


def test_an_unbounded_cycle_is_still_reported() -> None:
    text = explain(HandLoaded(pipeline(seq("a", "b"), route("b", back="a", done="end")), {}))
    assert "  UNBOUNDED dispatch cycle: a -> b -> a (no retry bound)" in text
    assert "  unbounded: a -> b -> a" in text


def test_joins_reduces_and_items_fields() -> None:
    joined = _explain(SHAPES / "route_costliest_case.yaml")
    assert "  researcher -> merge  [join: once per item, after web, papers finished]" in joined
    reduced = _explain(EXAMPLES / "map_reduce.yaml")
    assert "  planner -> analyst  [parallel_fan_out over output field 'aspects']" in reduced
    assert (
        "  planner -> synthesiser  [reduce: once on the parent item, after every child "
        "item finished]"
    ) in reduced
    assert (
        "  per run item 'main': planner x1, synthesiser x1 = 2 invocations, <= 4 model calls"
    ) in reduced


def test_the_worst_case_of_routes_and_loops() -> None:
    lines = _explain(SHAPES / "nested_loops.yaml")
    assert (
        "Worst case (every QA verdict fails until its attempts run out; each router takes "
        "its costliest case, each loop case all its iterations)"
    ) in lines
    assert (
        "  per run item 'main': start x1, outer_work x3, inner_work x6, checker x6, "
        "reviewer x3 = 19 invocations, <= 28 model calls"
    ) in lines
    assert "  per run: agent invocations = 19" in lines
    assert not any("upper bound" in line for line in lines)


def test_an_upper_bound_says_why() -> None:
    spec = pipeline(
        broadcast("work", "check", "judge"),
        qa("check", "work", 2),
        route("judge", more=("work", 3), done="end"),
    )
    text = explain(HandLoaded(spec, {}))
    assert (
        "  (an upper bound: no run may reach it, because QA agent 'check' shares an item "
        "with a loop: its attempts are counted per item and its failure ends the item early)"
    ) in text


def test_sub_pipelines_show_the_childs_bound_added_to_the_parents() -> None:
    lines = _explain(EXAMPLES / "supervisor.yaml")
    assert (
        "  research_team: sub-pipeline research_team.yaml (its agents run as this one); "
        "answers text"
    ) in lines
    assert (
        "  research_team: research_team.yaml; one run of it: agent invocations = 2, model "
        "calls <= 4 (added to the parent's for each run of research_team, which counts "
        "itself once)"
    ) in lines
    # supervisor 7 + research_team 3 x (itself + the child's 2) + writer 3
    assert "  per run: agent invocations = 19" in lines
    assert any(line.endswith("supervisor <= 2, research_team <= 0, writer <= 1)") for line in lines)


def test_a_childs_fan_out_is_named_with_the_parents_symbols() -> None:
    lines = _explain(SHAPES / "sub_pipeline_fan_outs.yaml")
    assert (
        "  team: children/split_team.yaml; one run of it: agent invocations = 1 + N2, model "
        "calls <= 2 + N2 (added to the parent's for each run of team, which counts itself "
        "once)"
    ) in lines
    assert "  per run: agent invocations = 1 + 2·N1 + N1·N2" in lines
    assert "  where N2 = work items one run of team.split produces" in lines


def test_generated_docstrings_name_each_case_and_its_bound() -> None:
    from agentflow.compiler.bounds import agent_summary, pipeline_summary

    spec = load_pipeline(EXAMPLES / "plan_execute.yaml").spec
    summary = " ".join(pipeline_summary(spec, "x.yaml").split())
    assert (
        "replanner -> executor (route case execute, max_iterations 4, on_exhausted end); "
        "replanner -> end (route case done)."
    ) in summary
    lines = agent_summary(spec.agent("replanner"), spec)
    assert " ".join(" ".join(lines).split()).endswith(
        "Dispatch: route on decision: execute -> executor (max_iterations 4, on_exhausted "
        "end), done -> end."
    )
