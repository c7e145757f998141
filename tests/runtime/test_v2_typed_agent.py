"""`run_typed_agent` on the real Anthropic SDK against the fake API, and on the dry-run model.

The typed answer travels as a forced `submit_output` tool whose input schema is
the output model's JSON schema (nested models inlined); an invalid answer is
re-asked once with the validation error, a second one fails the item.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentflow.runtime.engine.runner import RunOptions, RunResult, run_pipeline
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.dry_run import DryRunModel, schema_instance
from agentflow.runtime.models.replay import ReplayModel
from agentflow.runtime.pipeline import CompiledPipeline
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.sinks.memory import MemorySink
from tests.fake_anthropic.server import RecordedRequest, open_fake_anthropic, tool_reply

from .test_anthropic_e2e import KEY, assert_valid_conversations
from .test_engine_fakes import compile_dict, hello_spec, kinds


class TriageOutputStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    done: bool


class TriageOutputAuthor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    email: str | None = None


class TriageOutput(BaseModel):
    """Every field kind DSL-V2 section 1 names, as the generated module writes them."""

    model_config = ConfigDict(extra="forbid")
    category: Literal["billing", "bug", "question"] = Field(description="the ticket's kind")
    urgency: int
    score: float
    escalate: bool
    summary: str
    tags: list[str]
    note: str | None = None
    steps: list[TriageOutputStep]
    author: TriageOutputAuthor


GOOD: dict[str, Any] = {
    "category": "bug",
    "urgency": 2,
    "score": 0.5,
    "escalate": False,
    "summary": "crash on save",
    "tags": ["editor"],
    "steps": [{"title": "reproduce", "done": True}],
    "author": {"name": "Ada"},
}


def triage_pipeline() -> CompiledPipeline:
    spec = hello_spec()
    del spec["aggregation"]
    spec["agents"] = [
        {
            "id": "triage",
            "prompt": "p.md",
            "transitions": {"on_complete": "complete", "on_abort": "failed"},
        }
    ]
    compiled = compile_dict(spec, {"triage": "Triage the ticket: {{ input }}"})
    return dataclasses.replace(compiled, output_models={"triage": TriageOutput})


async def run_on_fake(replies: list[Any]) -> tuple[RunResult, list[Any], list[RecordedRequest]]:
    sink = MemorySink()
    async with open_fake_anthropic(replies) as fake:
        model = AnthropicModel(api_key=KEY, base_url=fake.base_url, backoff_base_s=0.01)
        async with model:
            result = await run_pipeline(
                triage_pipeline(),
                "the editor crashes",
                handlers=None,
                model=model,
                sinks=[sink],
                options=RunOptions(backoff_scale=0.0),
            )
    assert_valid_conversations(fake.requests)
    return result, sink.events, fake.requests


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


async def test_a_typed_agent_answers_through_a_forced_tool_with_its_models_schema() -> None:
    result, events, requests = await run_on_fake([tool_reply("submit_output", GOOD)])

    assert result.ok, result.reason
    (request,) = requests
    assert request.body["tool_choice"] == {"type": "tool", "name": "submit_output"}
    (tool,) = request.body["tools"]
    schema = tool["input_schema"]
    assert schema["type"] == "object" and "$defs" not in schema and refs(schema) == []
    assert set(schema["required"]) == set(GOOD) - {"note"}
    assert schema["properties"]["category"]["enum"] == ["billing", "bug", "question"]
    assert schema["properties"]["category"]["description"] == "the ticket's kind"
    steps = schema["properties"]["steps"]["items"]
    assert steps["properties"]["done"]["type"] == "boolean"
    completed = kinds(events, K.AGENT_COMPLETED)[0]
    assert completed.payload["output"] == TriageOutput.model_validate(GOOD).model_dump(mode="json")


async def test_an_invalid_typed_answer_is_re_asked_once_with_the_validation_error() -> None:
    bad = {**GOOD, "category": "refund"}
    result, events, requests = await run_on_fake(
        [tool_reply("submit_output", bad), tool_reply("submit_output", GOOD)]
    )

    assert result.ok, result.reason
    assert len(requests) == 2
    reask = json.dumps(requests[1].body["messages"][-1])
    assert "category" in reask and "submit_output" in reask
    assert kinds(events, K.AGENT_COMPLETED)[0].payload["output"]["category"] == "bug"
    assert result.usage.model_calls == 2  # both calls charged


async def test_a_second_invalid_typed_answer_fails_the_item() -> None:
    bad = {**GOOD, "urgency": "high"}
    result, events, requests = await run_on_fake(
        [tool_reply("submit_output", bad), tool_reply("submit_output", bad)]
    )

    assert result.status == "failed"
    assert len(requests) == 2
    failed = kinds(events, K.AGENT_FAILED)[0]
    assert failed.payload["error"] == "OutputValidationError"
    assert "urgency" in failed.payload["message"]


def test_dry_run_instances_validate_for_every_field_kind_and_are_deterministic() -> None:
    schema = TriageOutput.model_json_schema()
    for seed in range(200):
        value = schema_instance(schema, random.Random(seed))
        TriageOutput.model_validate(value)
    assert schema_instance(schema, random.Random("a|main|1")) == schema_instance(
        schema, random.Random("a|main|1")
    )
    categories = {schema_instance(schema, random.Random(s))["category"] for s in range(50)}
    assert categories == {"billing", "bug", "question"}  # the seed picks among the values


async def test_the_dry_run_model_walks_a_typed_pipeline_and_replays_from_its_log(
    tmp_path: Any,
) -> None:
    log = tmp_path / "run.jsonl"
    dry = await run_pipeline(
        triage_pipeline(),
        "t",
        handlers=None,
        model=DryRunModel(),
        sinks=[FileSink(log)],
    )
    assert dry.ok, dry.reason
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    recorded = next(e for e in lines if e["kind"] == "agent_completed")["payload"]["output"]
    TriageOutput.model_validate(recorded)

    sink = MemorySink()
    replayed = await run_pipeline(
        triage_pipeline(), "t", handlers=None, model=ReplayModel(log), sinks=[sink]
    )
    assert replayed.ok, replayed.reason
    assert kinds(sink.events, K.AGENT_COMPLETED)[0].payload["output"] == recorded


async def test_fail_first_still_fails_qa_agents_next_to_typed_ones() -> None:
    spec = hello_spec(defaults={"retry": {"max_attempts": 3, "backoff_ms": 0}})
    compiled = dataclasses.replace(compile_dict(spec), output_models={"writer_agent": TriageOutput})
    sink = MemorySink()
    result = await run_pipeline(
        compiled,
        "t",
        handlers=None,
        model=DryRunModel(fail_first=1),
        sinks=[sink],
        options=RunOptions(backoff_scale=0.0),
    )
    assert result.ok, result.reason
    verdicts = [e.payload["passed"] for e in kinds(sink.events, K.QA_VERDICT)]
    assert verdicts == [False, True]
    outputs = [e.payload["output"] for e in kinds(sink.events, K.AGENT_COMPLETED)]
    assert len(outputs) == 2 and all(TriageOutput.model_validate(o) for o in outputs)
    assert outputs[0] != outputs[1]  # seeded by attempt
