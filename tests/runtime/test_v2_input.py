"""DSL v2 `input:`: `run(input=...)` is validated against the input model before any event."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunInputError, RunOptions, run_pipeline
from agentflow.runtime.pipeline import CompiledPipeline
from agentflow.runtime.sinks.memory import MemorySink

from .test_engine_fakes import Handlers, compile_dict, hello_spec, run


class PipelineInputCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    email: str | None = None


class PipelineInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket: str
    tier: Literal["free", "pro", "enterprise"]
    customer: PipelineInputCustomer


def typed_input_pipeline() -> CompiledPipeline:
    return dataclasses.replace(compile_dict(hello_spec()), input_model=PipelineInput)


def handlers() -> Handlers:
    return Handlers(
        writer_agent=lambda ctx: AgentOutput(text="draft"),
        reviewer_agent=lambda ctx: AgentOutput(passed=True),
    )


@pytest.mark.parametrize(
    ("bad_input", "wanted"),
    [
        (
            {"ticket": "t", "tier": "gold", "customer": {"name": "a"}},
            "field 'tier': Input should be 'free', 'pro' or 'enterprise' (got 'gold')",
        ),
        ({"tier": "pro", "customer": {"name": "a"}}, "field 'ticket': Field required"),
        (
            {"ticket": "t", "tier": "pro", "customer": {"name": 7}},
            "field 'customer.name': Input should be a valid string (got 7)",
        ),
        (
            {"ticket": "t", "tier": "pro", "customer": {"name": "a"}, "extra": 1},
            "field 'extra': Extra inputs are not permitted",
        ),
        ("just text", "must be a JSON object with the fields of the pipeline's `input:` "),
    ],
)
async def test_a_wrong_input_is_refused_before_any_event_naming_the_field(
    bad_input: Any, wanted: str
) -> None:
    sink = MemorySink()
    with pytest.raises(RunInputError) as caught:
        await run_pipeline(typed_input_pipeline(), bad_input, handlers=handlers(), sinks=[sink])
    assert wanted in str(caught.value)
    assert sink.events == []


async def test_a_valid_input_reaches_agents_as_json_data_with_optional_fields_filled() -> None:
    seen = handlers()
    given = {"ticket": "t", "tier": "pro", "customer": {"name": "Ada"}}
    result, events = await run(typed_input_pipeline(), given, seen)

    assert result.ok, result.reason
    expected = {"ticket": "t", "tier": "pro", "customer": {"name": "Ada", "email": None}}
    context: AgentContext = seen.contexts[0]
    assert context.input == expected
    assert events[0].payload["input"] == expected
    # The generated input class itself is accepted too.
    result, events = await run(
        typed_input_pipeline(), PipelineInput.model_validate(given), handlers()
    )
    assert result.ok and events[0].payload["input"] == expected


async def test_a_pipeline_without_input_shape_takes_any_input_as_before() -> None:
    result, events = await run(compile_dict(hello_spec()), "free text", handlers())
    assert result.ok and events[0].payload["input"] == "free text"
    sink = MemorySink()
    await run_pipeline(
        compile_dict(hello_spec()), {"any": [1]}, handlers=handlers(), sinks=[sink],
        options=RunOptions(backoff_scale=0.0),
    )  # fmt: skip
    assert sink.events[0].payload["input"] == {"any": [1]}
