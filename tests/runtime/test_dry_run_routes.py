"""DryRunModel walks routes and typed fan-outs: the model's answers, request in, output out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from agentflow.runtime.errors import AgentflowError
from agentflow.runtime.models.base import ModelRequest
from agentflow.runtime.models.dry_run import DryRunModel, RouteChoiceError, RouteChoices
from agentflow.runtime.spec import DispatchSpec, PipelineSpec, RouteCase


class ImplicitRouterOutput(BaseModel):
    route: Literal["billing", "bug", "question"]


class TicketOutput(BaseModel):
    summary: str
    category: Literal["billing", "bug", "question", "spam"]
    urgent: bool


class PlanOutput(BaseModel):
    goal: str
    subjects: list[str]


def cases(*keys: str, default: str | None = None, on: str | None = None) -> DispatchSpec:
    return DispatchSpec(
        strategy="route",
        on=on,
        cases={key: RouteCase(target=f"{key}_agent") for key in keys},
        default=RouteCase(target=default) if default else None,
    )


def request(
    agent: str,
    dispatch: DispatchSpec | None,
    schema: type[BaseModel],
    *,
    attempt: int = 1,
    item: str = "main",
) -> ModelRequest:
    return ModelRequest(
        agent=agent,
        item=item,
        attempt=attempt,
        turn=1,
        model="m",
        max_tokens=9,
        system="Route the ticket.",
        messages=(),
        output="output",
        output_schema=schema.model_json_schema(),
        dispatch=dispatch,
    )


async def answer(model: DryRunModel, req: ModelRequest) -> Mapping[str, Any]:
    turn = await model.complete(req)
    assert turn.structured is not None
    return turn.structured


IMPLICIT = cases("question", "billing", "bug")  # YAML order differs from the enum's


async def test_a_router_takes_its_first_listed_case_by_default() -> None:
    for item in ("main", "main.1", "main.2"):
        for attempt in (1, 2, 3, 4):
            req = request("triage", IMPLICIT, ImplicitRouterOutput, attempt=attempt, item=item)
            out = await answer(DryRunModel(), req)
            assert out == {"route": "question"}
            ImplicitRouterOutput.model_validate(out)


async def test_a_router_takes_the_case_it_is_told() -> None:
    model = DryRunModel(routes={"triage": ["bug"]})
    out = await answer(model, request("triage", IMPLICIT, ImplicitRouterOutput))
    assert out == {"route": "bug"}
    turn = await model.complete(request("triage", IMPLICIT, ImplicitRouterOutput))
    assert turn.text == "[dry-run] triage on main, attempt 1: route = 'bug' (case 'bug')"


async def test_a_single_string_names_one_case_not_its_letters() -> None:
    model = DryRunModel(routes={"triage": "billing"})
    assert await answer(model, request("triage", IMPLICIT, ImplicitRouterOutput)) == {
        "route": "billing"
    }


async def test_a_sequence_is_taken_per_invocation_on_the_item_and_its_last_case_repeats() -> None:
    model = DryRunModel(routes={"triage": ["bug", "bug", "billing"]})
    chosen = [
        (await answer(model, request("triage", IMPLICIT, ImplicitRouterOutput, attempt=k)))["route"]
        for k in range(1, 6)
    ]
    assert chosen == ["bug", "bug", "billing", "billing", "billing"]
    other_item = request("triage", IMPLICIT, ImplicitRouterOutput, attempt=1, item="main.2")
    assert (await answer(model, other_item))["route"] == "bug"  # counted per item


async def test_other_routers_and_other_agents_are_untouched() -> None:
    model = DryRunModel(routes={"triage": ["bug"]})
    other = cases("billing", "bug", "question")
    assert (await answer(model, request("second", other, ImplicitRouterOutput)))[
        "route"
    ] == "billing"
    plain = await answer(model, request("writer", None, TicketOutput))
    assert plain == await answer(DryRunModel(), request("writer", None, TicketOutput))


async def test_a_declared_enum_field_routes_on_on_and_keeps_the_other_fields() -> None:
    dispatch = cases("bug", "billing", on="category", default="human")
    for attempt in range(1, 9):
        out = await answer(
            DryRunModel(), request("router", dispatch, TicketOutput, attempt=attempt)
        )
        assert out["category"] == "bug"
        assert out["summary"] == "[dry-run] summary" and isinstance(out["urgent"], bool)
        TicketOutput.model_validate(out)


async def test_default_picks_a_value_no_case_covers() -> None:
    dispatch = cases("bug", "billing", on="category", default="human")
    model = DryRunModel(routes={"router": ["default"]})
    out = await answer(model, request("router", dispatch, TicketOutput))
    assert out["category"] == "question"  # the first enum value without a case
    turn = await model.complete(request("router", dispatch, TicketOutput))
    assert turn.text.endswith("category = 'question' (case 'default')")


@pytest.mark.parametrize(
    ("keys", "told", "value"),
    [
        (("true", "false"), None, True),
        (("false", "true"), None, False),
        (("true", "false"), ["false"], False),
        (("true",), ["default"], False),
    ],
)
async def test_a_bool_field_routes_by_its_true_and_false_keys(
    keys: tuple[str, ...], told: list[str] | None, value: bool
) -> None:
    dispatch = cases(*keys, on="urgent", default="human" if len(keys) == 1 else None)
    model = DryRunModel(routes={"router": told} if told else None)
    out = await answer(model, request("router", dispatch, TicketOutput))
    assert out["urgent"] is value


async def test_an_unknown_case_fails_the_router_with_did_you_mean() -> None:
    model = DryRunModel(routes={"triage": ["bilings"]})
    with pytest.raises(AgentflowError) as caught:
        await model.complete(request("triage", IMPLICIT, ImplicitRouterOutput))
    assert str(caught.value) == (
        "dry-run: router 'triage' has no case 'bilings' (did you mean 'billing'?); "
        "its cases: question, billing, bug"
    )


async def test_default_without_a_default_case_is_an_unknown_case() -> None:
    model = DryRunModel(routes={"triage": ["default"]})
    with pytest.raises(AgentflowError, match="router 'triage' has no case 'default'"):
        await model.complete(request("triage", IMPLICIT, ImplicitRouterOutput))


def test_routes_are_checked_when_the_model_is_built() -> None:
    with pytest.raises(AgentflowError, match="router 'triage' is given no case"):
        DryRunModel(routes={"triage": []})
    with pytest.raises(AgentflowError, match="router 'triage' is given no case"):
        DryRunModel(routes={"triage": ""})


@pytest.mark.parametrize("count", [0, 3, 5])
async def test_a_typed_fan_out_gets_items_elements_in_its_items_field(count: int) -> None:
    dispatch = DispatchSpec(strategy="parallel_fan_out", target="writer", items="subjects")
    out = await answer(DryRunModel(items=count), request("planner", dispatch, PlanOutput))
    assert out["subjects"] == [f"[dry-run] subjects {k} of {count}" for k in range(1, count + 1)]
    assert out["goal"] == "[dry-run] goal"
    PlanOutput.model_validate(out)


class Point(BaseModel):
    x: int
    label: str


class OptionalPlanOutput(BaseModel):
    points: list[Point] | None = None


async def test_typed_fan_out_items_may_be_objects_behind_an_optional_list() -> None:
    dispatch = DispatchSpec(strategy="parallel_fan_out", target="writer", items="points")
    out = await answer(DryRunModel(items=4), request("planner", dispatch, OptionalPlanOutput))
    labels = [point["label"] for point in out["points"]]
    assert labels == [f"[dry-run] label (points {k} of 4)" for k in range(1, 5)]
    OptionalPlanOutput.model_validate(out)


def triage_spec() -> PipelineSpec:
    """A support pipeline: `triage` routes on its implicit output, `sorter` on a bool."""
    return PipelineSpec.model_validate(
        {
            "name": "support",
            "state_machine": {
                "initial": "running",
                "terminal": ["complete"],
                "states": [{"id": "running"}, {"id": "complete"}],
            },
            "agents": [
                {
                    "id": "triage",
                    "prompt": "t.md",
                    "dispatch": {
                        "strategy": "route",
                        "cases": {
                            "billing": {"target": "billing_agent"},
                            "bug": {"target": "sorter"},
                            "question": {"target": "end"},
                        },
                    },
                },
                {"id": "billing_agent", "prompt": "b.md"},
                {
                    "id": "sorter",
                    "handler": "app.sorting:sort",
                    "dispatch": {
                        "strategy": "route",
                        "on": "urgent",
                        "cases": {"true": {"target": "billing_agent"}},
                        "default": {"target": "end"},
                    },
                },
            ],
        }
    )


def test_check_routes_accepts_cases_and_default() -> None:
    DryRunModel(routes={"triage": ["bug", "bug", "question"]}).check_routes(triage_spec())
    DryRunModel().check_routes(triage_spec())


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            {"triag": ["bug"]},
            "'triag' is not an agent of pipeline 'support' (did you mean 'triage'?); "
            "its routers: triage, sorter",
        ),
        (
            {"billing_agent": ["bug"]},
            "'billing_agent' is not a router (no `strategy: route`); "
            "the routers of pipeline 'support': triage, sorter",
        ),
        (
            {"triage": ["bug", "questoin"]},
            "router 'triage' has no case 'questoin' (did you mean 'question'?); "
            "its cases: billing, bug, question",
        ),
        (
            {"sorter": ["true"]},
            "router 'sorter' runs its handler app.sorting:sort, not the model; "
            "only a router that runs from its prompt can be told a case",
        ),
    ],
)
def test_check_routes_names_what_is_wrong(routes: RouteChoices, message: str) -> None:
    with pytest.raises(RouteChoiceError) as caught:
        DryRunModel(routes=routes).check_routes(triage_spec())
    assert str(caught.value) == message


def test_check_routes_refuses_a_router_that_runs_a_child_pipeline() -> None:
    spec = triage_spec()
    team = spec.agents[2].model_copy(update={"handler": None, "pipeline": "team.yaml"})
    spec = spec.model_copy(update={"agents": (*spec.agents[:2], team)})
    with pytest.raises(RouteChoiceError) as caught:
        DryRunModel(routes={"sorter": "true"}).check_routes(spec)
    assert str(caught.value) == (
        "router 'sorter' runs pipeline team.yaml, not the model; "
        "only a router that runs from its prompt can be told a case"
    )


def test_check_routes_on_a_pipeline_without_routers() -> None:
    spec = triage_spec().model_copy(update={"agents": triage_spec().agents[1:2]})
    with pytest.raises(RouteChoiceError) as caught:
        DryRunModel(routes={"triage": "bug"}).check_routes(spec)
    assert str(caught.value) == (
        "'triage' is not an agent of pipeline 'support'; it has no router (no agent "
        "with `strategy: route`)"
    )


def test_a_sub_pipeline_router_checked_against_the_spec_alone_says_to_pass_compiled() -> None:
    spec = triage_spec()
    team = spec.agents[1].model_copy(update={"id": "team", "prompt": None, "pipeline": "t.yaml"})
    spec = spec.model_copy(update={"agents": (*spec.agents, team)})
    with pytest.raises(RouteChoiceError) as caught:
        DryRunModel(routes={"team.judge": "stop"}).check_routes(spec)
    assert str(caught.value) == (
        "'team.judge' is not an agent of pipeline 'support'; its routers: triage, sorter "
        "(its sub-pipelines' routers are found through the CompiledPipeline: pass COMPILED, "
        "not PIPELINE)"
    )
