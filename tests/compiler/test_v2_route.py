"""DSL v2 section 4 at compile time: `strategy: route`, its cases, and bounded loops."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.flow import dispatch_edges, dominates, immediate_dominators

from .v2_helpers import compile_text, errors, line_of

TRIAGE = """\
name: triage
agents:
  - id: triage
    prompt: p.md
    output:
      category: {enum: [billing, bug, question]}
      urgent: bool
      note: str
      level: {enum: [low, high], optional: true}
    dispatch:
      strategy: route
      on: category
      cases:
        billing: billing_agent
        bug: {target: bug_agent}
        question: end
  - id: billing_agent
    prompt: p.md
  - id: bug_agent
    prompt: p.md
  - id: human
    prompt: p.md
"""


def _triage(old: str, new: str) -> str:
    assert old in TRIAGE
    return TRIAGE.replace(old, new, 1)


def test_short_and_long_case_forms_lower_to_route_cases(tmp_path: Path) -> None:
    spec = compile_text(TRIAGE, tmp_path).spec
    dispatch = spec.agent("triage").dispatch
    assert dispatch is not None and dispatch.on == "category"
    assert list(dispatch.cases) == ["billing", "bug", "question"]  # YAML order, no `loc` key
    assert [case.target for case in dispatch.cases.values()] == [
        "billing_agent",
        "bug_agent",
        "end",
    ]
    billing = dispatch.cases["billing"].loc
    assert billing is not None and billing.line == line_of(TRIAGE, "billing: billing_agent")


def test_short_form_default_lowers_to_a_route_case(tmp_path: Path) -> None:
    text = _triage("        question: end\n", "      default: human\n")
    dispatch = compile_text(text, tmp_path).spec.agent("triage").dispatch
    assert dispatch is not None and dispatch.default is not None
    assert dispatch.default.target == "human"
    assert dispatch.default.max_iterations is None and dispatch.default.on_exhausted == "abort"


def test_router_without_output_gets_the_implicit_route_enum(tmp_path: Path) -> None:
    text = """\
name: implicit
agents:
  - id: router
    prompt: p.md
    dispatch:
      strategy: route
      cases:
        write: writer
        stop: end
        give_up: abort
  - id: writer
    prompt: p.md
"""
    router = compile_text(text, tmp_path).spec.agent("router")
    assert router.dispatch is not None and router.dispatch.on == "route"
    assert router.output is not None
    (field,) = router.output.fields
    assert field.name == "route"
    assert field.type.kind == "enum" and field.type.values == ("write", "stop", "give_up")


def test_implicit_output_with_a_default_is_never_taken(tmp_path: Path) -> None:
    text = """\
name: implicit
agents:
  - id: router
    prompt: p.md
    dispatch:
      strategy: route
      cases: {write: writer, stop: end}
      default: writer
  - id: writer
    prompt: p.md
"""
    assert errors(text, tmp_path) == [
        "v.yaml:8:7: error: 'default' is never taken: a router without 'output:' answers one "
        "of its case names; remove it"
    ]


def test_bool_route_takes_true_and_false_cases(tmp_path: Path) -> None:
    text = _triage("      on: category\n", "      on: urgent\n").replace(
        "        billing: billing_agent\n        bug: {target: bug_agent}\n        question: end\n",
        "        true: billing_agent\n        false: end\n",
    )
    dispatch = compile_text(text, tmp_path).spec.agent("triage").dispatch
    assert dispatch is not None and list(dispatch.cases) == ["true", "false"]


def test_bool_route_with_a_maybe_case(tmp_path: Path) -> None:
    text = _triage("      on: category\n", "      on: urgent\n").replace(
        "        billing: billing_agent\n        bug: {target: bug_agent}\n        question: end\n",
        "        true: billing_agent\n        false: end\n        maybe: human\n",
    )
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'maybe:')}:9: error: case 'maybe' is not a value of bool field "
        "'urgent'; its cases are 'true' and 'false'"
    ]


def test_unknown_case_key_suggests_the_value(tmp_path: Path) -> None:
    text = _triage("        billing: billing_agent\n", "        biling: billing_agent\n")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'biling')}:9: error: case 'biling' is not a value of "
        "'category' (did you mean 'billing'?); its values: billing, bug, question"
    ]


def test_route_must_cover_every_value_or_have_a_default(tmp_path: Path) -> None:
    text = _triage("        question: end\n", "")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'cases:')}:7: error: route on 'category' has no case for "
        "'question': add a case for each value, or a 'default'"
    ]
    with_default = _triage("        question: end\n", "      default: human\n")
    assert compile_text(with_default, tmp_path).warnings == []


def test_route_on_an_optional_enum_needs_a_default(tmp_path: Path) -> None:
    text = _triage("      on: category\n", "      on: level\n").replace(
        "        billing: billing_agent\n        bug: {target: bug_agent}\n        question: end\n",
        "        low: end\n        high: human\n",
    )
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'cases:')}:7: error: route on 'level' has no case for a "
        "missing value: add a case for each value, or a 'default'"
    ]


def test_default_when_every_value_has_a_case_is_never_taken(tmp_path: Path) -> None:
    text = _triage("        question: end\n", "        question: end\n      default: human\n")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'default:')}:7: error: 'default' is never taken: the cases "
        "cover every value of 'category'; remove it"
    ]


def test_route_on_a_str_field(tmp_path: Path) -> None:
    text = _triage("      on: category\n", "      on: note\n")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'on: note')}:11: error: route on 'note': field 'note' is str, "
        "not an enum or bool; route on an enum field (e.g. 'note: {enum: [a, b]}') or a bool "
        "field"
    ]


def test_route_on_a_missing_field_suggests_one(tmp_path: Path) -> None:
    text = _triage("      on: category\n", "      on: categroy\n")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'on: categroy')}:11: error: route on 'categroy': the output of "
        "agent 'triage' has no field 'categroy' (did you mean 'category'?); name its enum or "
        "bool field"
    ]


def test_router_with_output_and_no_on_names_its_fields(tmp_path: Path) -> None:
    text = _triage("      on: category\n", "")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'strategy: route')}:7: error: agent 'triage' declares "
        "'output:', so name the enum or bool field it routes on with 'on:' (its fields: "
        "category, urgent, note, level)"
    ]


def test_route_target_must_be_an_agent_end_or_abort(tmp_path: Path) -> None:
    text = _triage("{target: bug_agent}", "{target: bug_agnet}")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'bug: ')}:23: error: route target 'bug_agnet' of case 'bug' is "
        "not an agent, 'end' or 'abort' (did you mean 'bug_agent'?)"
    ]
    short = _triage("question: end", "question: ned")
    assert errors(short, tmp_path) == [
        f"v.yaml:{line_of(short, 'question: ned')}:19: error: route target 'ned' of case "
        "'question' is not an agent, 'end' or 'abort' (did you mean 'end'?)"
    ]


def test_a_qa_agent_cannot_route(tmp_path: Path) -> None:
    text = """\
name: qa-router
agents:
  - id: writer
    prompt: p.md
    dispatch: {strategy: sequential, target: judge}
  - id: judge
    prompt: p.md
    on_fail: {action: feedback_and_retry, target: writer}
    dispatch:
      strategy: route
      cases: {done: end}
"""
    assert errors(text, tmp_path) == [
        "v.yaml:10:17: error: agent 'judge' gives a QA verdict (it has on_fail or is an "
        "aggregation gate), so it cannot route; route in a plain agent after it"
    ]


def test_route_with_a_target_is_an_error(tmp_path: Path) -> None:
    text = _triage("      on: category\n", "      on: category\n      target: human\n")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'target: human')}:7: error: strategy route sends each item to "
        "one of its cases' targets, not 'target'; name the agent in a case (e.g. 'cases: "
        "{done: next_agent}')"
    ]


def test_route_keys_only_with_strategy_route(tmp_path: Path) -> None:
    text = """\
name: keys
agents:
  - id: first
    prompt: p.md
    dispatch:
      strategy: sequential
      target: second
      cases: {a: second}
  - id: second
    prompt: p.md
"""
    assert errors(text, tmp_path) == [
        "v.yaml:8:7: error: 'cases' only applies to strategy route, not sequential; remove it "
        "or use 'strategy: route'"
    ]


@pytest.mark.parametrize("reserved", ["end", "abort"])
def test_agent_ids_end_and_abort_are_reserved(tmp_path: Path, reserved: str) -> None:
    text = f"name: r\nagents:\n  - id: {reserved}\n    prompt: p.md\n"
    verb = "ends" if reserved == "end" else "aborts"
    assert errors(text, tmp_path) == [
        f"v.yaml:3:9: error: agent id '{reserved}' is reserved: a route case with target "
        f"'{reserved}' {verb} the item; rename the agent"
    ]


LOOP = """\
name: loop
agents:
  - id: planner
    prompt: p.md
    dispatch: {strategy: sequential, target: executor}
  - id: executor
    prompt: p.md
    dispatch: {strategy: sequential, target: replanner}
  - id: replanner
    prompt: p.md
    dispatch:
      strategy: route
      cases:
        again: {target: executor, max_iterations: 4, on_exhausted: end}
        done: end
"""


def test_a_loop_through_a_bounded_case_compiles(tmp_path: Path) -> None:
    spec = compile_text(LOOP, tmp_path).spec
    again = spec.agent("replanner").dispatch
    assert again is not None and again.cases["again"].max_iterations == 4
    assert again.cases["again"].on_exhausted == "end"


def test_a_loop_bounded_on_the_case_that_leaves_the_router_compiles(tmp_path: Path) -> None:
    """The supervisor shape: router -> worker (bounded) -> router (sequential)."""
    text = """\
name: supervisor
agents:
  - id: boss
    prompt: p.md
    dispatch:
      strategy: route
      cases:
        work: {target: worker, max_iterations: 3}
        finish: end
  - id: worker
    prompt: p.md
    dispatch: {strategy: sequential, target: boss}
"""
    assert compile_text(text, tmp_path).warnings == []


def test_an_unbounded_route_cycle_says_how_to_bound_it(tmp_path: Path) -> None:
    text = LOOP.replace("{target: executor, max_iterations: 4, on_exhausted: end}", "executor")
    assert errors(text, tmp_path) == [
        "v.yaml:8:15: error: dispatch cycle executor -> replanner -> executor: it would loop "
        "forever; bound it by adding max_iterations to a route case on the cycle (strategy: "
        "route), or re-run an agent with on_fail feedback_and_retry instead"
    ]


def test_a_cycle_needs_a_bounded_case_even_beside_a_bounded_one(tmp_path: Path) -> None:
    """Two cycles through the router: one bounded, one not."""
    text = LOOP.replace("        done: end\n", "        retry: planner\n        done: end\n")
    found = errors(text, tmp_path)
    assert len(found) == 1
    assert "dispatch cycle planner -> executor -> replanner -> planner" in found[0]


def test_max_iterations_on_a_case_that_does_not_loop_back(tmp_path: Path) -> None:
    text = LOOP.replace("done: end", "done: {target: end, max_iterations: 2}")
    line = line_of(text, "done: {")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line}:29: error: case 'done' does not loop back ('end' ends the item's path); "
        "remove max_iterations"
    ]
    forward = _triage("{target: bug_agent}", "{target: bug_agent, max_iterations: 2}")
    assert errors(forward, tmp_path) == [
        f"v.yaml:{line_of(forward, 'bug: ')}:34: error: case 'bug' does not loop back (its "
        "target 'bug_agent' never leads to 'triage' again); remove max_iterations"
    ]


def test_on_exhausted_without_max_iterations(tmp_path: Path) -> None:
    text = LOOP.replace("done: end", "done: {target: end, on_exhausted: end}")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line_of(text, 'done: {')}:29: error: case 'done': on_exhausted only applies "
        "with max_iterations (a case that loops back); remove it"
    ]


def test_a_loop_through_a_fan_out_cannot_be_bounded(tmp_path: Path) -> None:
    text = """\
name: fan-loop
agents:
  - id: splitter
    prompt: p.md
    dispatch: {strategy: parallel_fan_out, target: router}
  - id: router
    prompt: p.md
    dispatch:
      strategy: route
      cases:
        more: {target: splitter, max_iterations: 3}
        done: end
"""
    assert errors(text, tmp_path) == [
        "v.yaml:5:52: error: a dispatch cycle passes through the fan-out of 'splitter' (its "
        "target 'router' leads back to it): each pass would fan out new work items, and "
        "max_iterations counts per item, so nothing bounds it; end the loop before the fan-out"
    ]


EXCLUSIVE = """\
name: exclusive
agents:
  - id: router
    prompt: p.md
    dispatch:
      strategy: route
      cases: {left: left, right: right}
  - id: left
    prompt: p.md
    dispatch: {strategy: sequential, target: merge}
  - id: right
    prompt: p.md
    dispatch: {strategy: sequential, target: merge}
  - id: merge
    prompt: merge.md
"""


def test_paths_a_route_makes_exclusive_may_meet(tmp_path: Path) -> None:
    loaded = compile_text(EXCLUSIVE, tmp_path, {"p.md": "x\n", "merge.md": "{{ upstream }}\n"})
    assert loaded.warnings == []
    edges = [(e.source, e.target, e.kind, e.case) for e in dispatch_edges(loaded.spec)]
    assert edges[:2] == [("router", "left", "route", "left"), ("router", "right", "route", "right")]


def test_outputs_of_one_route_case_are_not_there_on_the_other(tmp_path: Path) -> None:
    prompts = {"p.md": "x\n", "merge.md": "{{ outputs.left.text }} {{ outputs.router.route }}\n"}
    assert errors(EXCLUSIVE, tmp_path, prompts) == [
        "merge.md:1:1: error: 'outputs.left': agent 'left' does not run before 'merge' on every "
        "path that reaches it, so its output may not be there; read it only from agents that "
        "every path reaches through 'left' (where parallel branches meet, read a branch's "
        "output inside that branch) (prompt of agent 'merge')"
    ]


def test_dominators_in_a_loop(tmp_path: Path) -> None:
    spec = compile_text(LOOP, tmp_path).spec
    idom = immediate_dominators(spec)
    assert idom == {"planner": None, "executor": "planner", "replanner": "executor"}
    assert dominates(idom, "executor", "replanner")
    assert not dominates(idom, "replanner", "executor")  # the first pass reaches it first


def test_a_loop_body_cannot_read_what_the_router_writes_later(tmp_path: Path) -> None:
    prompts = {"p.md": "{{ input }}\n"}
    text = LOOP.replace(
        "  - id: executor\n    prompt: p.md\n", "  - id: executor\n    prompt: e.md\n"
    )
    ok = {**prompts, "e.md": "{{ outputs.planner.text }} {{ history.replanner }}\n"}
    assert compile_text(text, tmp_path, ok).warnings == []
    bad = {**prompts, "e.md": "{{ outputs.replanner.route }}\n"}
    assert errors(text, tmp_path, bad) == [
        "e.md:1:1: error: 'outputs.replanner': agent 'replanner' does not run before 'executor' "
        "on every path that reaches it, so its output may not be there; read it only from "
        "agents that every path reaches through 'replanner' (where parallel branches meet, read "
        "a branch's output inside that branch) (prompt of agent 'executor')"
    ]


def test_agents_reached_only_through_a_route_case_run(tmp_path: Path) -> None:
    """Reachability follows route cases: no 'never runs' warning for a case's target."""
    assert (
        compile_text(TRIAGE.replace("  - id: human\n    prompt: p.md\n", ""), tmp_path).warnings
        == []
    )


def test_a_qa_agent_after_a_route_case_can_retry_the_router(tmp_path: Path) -> None:
    text = TRIAGE.replace(
        "  - id: bug_agent\n    prompt: p.md\n",
        "  - id: bug_agent\n    prompt: p.md\n    on_fail: {action: feedback_and_retry, "
        "target: triage}\n",
    ).replace("  - id: human\n    prompt: p.md\n", "")
    assert compile_text(text, tmp_path).warnings == []


def test_an_aggregation_gate_reached_through_a_route_case(tmp_path: Path) -> None:
    text = TRIAGE.replace("  - id: human\n    prompt: p.md\n", "") + (
        "aggregation:\n  strategy: all_pass\n  gates: [bug_agent]\n"
        "  on_complete: {transition: complete}\n  on_any_abort: {transition: failed}\n"
        "state_machine:\n  initial: running\n  terminal: [complete, failed]\n"
        "  states: [{id: running}, {id: complete}, {id: failed}]\n"
    )
    assert compile_text(text, tmp_path).warnings == []


def test_the_json_schema_accepts_both_case_forms() -> None:
    from agentflow.compiler.schema import pipeline_json_schema

    schema = pipeline_json_schema()
    dispatch = schema["$defs"]["DispatchSpec"]["properties"]
    forms = dispatch["cases"]["additionalProperties"]["anyOf"]
    assert forms[0] == {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}
    assert forms[1] == {"$ref": "#/$defs/RouteCase"}
    assert dispatch["default"]["anyOf"][0]["anyOf"] == forms
    assert set(schema["$defs"]["RouteCase"]["properties"]) == {
        "target",
        "max_iterations",
        "on_exhausted",
    }


def test_max_concurrency_on_a_router_is_a_warning(tmp_path: Path) -> None:
    text = LOOP.replace("        done: end\n", "        done: end\n      max_concurrency: 2\n")
    (warning,) = compile_text(text, tmp_path).warnings
    assert str(warning) == (
        f"v.yaml:{line_of(text, 'max_concurrency')}:7: warning: max_concurrency has no effect "
        "with route dispatch (one case runs); remove it"
    )


def test_an_empty_case_name_or_field_name_is_an_error(tmp_path: Path) -> None:
    head = "name: e\nagents:\n  - id: router\n    prompt: p.md\n    dispatch:\n"
    empty_case = head + '      strategy: route\n      cases: {"": end, done: end}\n'
    assert errors(empty_case, tmp_path) == [
        "v.yaml:7:15: error: a case name is empty; name each case by a value of the field it "
        "routes on"
    ]
    empty_on = head + '      strategy: route\n      on: ""\n      cases: {done: end}\n'
    assert errors(empty_on, tmp_path) == [
        "v.yaml:7:11: error: route on '': the output of agent 'router' has no field ''; name "
        "its enum or bool field"
    ]


def test_a_router_may_loop_on_itself_only_through_a_bounded_case(tmp_path: Path) -> None:
    head = "name: s\nagents:\n  - id: router\n    prompt: p.md\n    dispatch:\n"
    bounded = (
        head
        + "      strategy: route\n"
        + "      cases: {again: {target: router, max_iterations: 2}, done: end}\n"
    )
    assert compile_text(bounded, tmp_path).warnings == []
    unbounded = head + "      strategy: route\n      cases: {again: router, done: end}\n"
    assert errors(unbounded, tmp_path) == [
        "v.yaml:6:7: error: dispatch cycle router -> router: it would loop forever; bound it by "
        "adding max_iterations to a route case on the cycle (strategy: route), or re-run an "
        "agent with on_fail feedback_and_retry instead"
    ]
