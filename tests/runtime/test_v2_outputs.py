"""DSL v2 on the engine: typed outputs, `outputs`/`history`, the full typed output in events.

Pipelines are built from dicts (runtime/spec.py) with output models written as
the generated module writes them; the compiler side has its own tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentflow.runtime.agents import AgentOutput, QAIssue, TextOutput, text_output
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.pipeline import CompiledPipeline
from agentflow.runtime.sinks.memory import MemorySink

from .test_engine_fakes import Handlers, compile_dict, fanout_spec, hello_spec, kinds, run, text


class ClassifierOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: Literal["billing", "bug", "question"]
    urgency: int
    summary: str


def with_outputs(
    compiled: CompiledPipeline, output_models: dict[str, type[BaseModel]]
) -> CompiledPipeline:
    return dataclasses.replace(compiled, output_models=output_models)


def chain_spec(*agents: str) -> dict[str, Any]:
    """agents[0] -> agents[1] -> ... sequentially; no QA."""
    spec = hello_spec()
    del spec["aggregation"]
    spec["agents"] = [
        {
            "id": agent,
            "prompt": "p.md",
            "transitions": {"on_abort": "failed"}
            | ({"on_complete": "complete"} if i == len(agents) - 1 else {}),
            **(
                {"dispatch": {"strategy": "sequential", "target": agents[i + 1]}}
                if i < len(agents) - 1
                else {}
            ),
        }
        for i, agent in enumerate(agents)
    ]
    return spec


BILLING = ClassifierOutput(category="billing", urgency=3, summary="refund " * 60)


async def test_a_typed_output_reaches_later_agents_typed_and_in_full_in_the_log() -> None:
    handlers = Handlers(
        classifier=lambda ctx: BILLING,
        responder=lambda ctx: text(f"answering a {ctx.outputs['classifier'].category}"),
        closer=lambda ctx: text("closed"),
    )
    handlers_typed = _typed(handlers)
    compiled = with_outputs(
        compile_dict(chain_spec("classifier", "responder", "closer")),
        {"classifier": ClassifierOutput},
    )
    result, events = await run(compiled, "ticket", handlers_typed)

    assert result.ok, result.reason
    responder_ctx, closer_ctx = handlers.contexts[1], handlers.contexts[2]
    assert responder_ctx.outputs == {"classifier": BILLING}
    assert responder_ctx.outputs["classifier"] is BILLING
    # The engine passes on the JSON form: `upstream` and `data`.
    assert responder_ctx.upstream is not None
    assert responder_ctx.upstream.data == BILLING.model_dump(mode="json")
    assert ClassifierOutput.model_validate_json(responder_ctx.upstream.text) == BILLING
    # A text agent's output is a TextOutput.
    assert closer_ctx.outputs == {
        "classifier": BILLING,
        "responder": TextOutput(text="answering a billing"),
    }
    completed = kinds(events, K.AGENT_COMPLETED)
    assert completed[0].payload["output"] == BILLING.model_dump(mode="json")  # not cut at 200
    assert len(completed[0].payload["output"]["summary"]) > 200
    assert "output" not in completed[1].payload  # text agents: as in v1


def _typed(handlers: Handlers) -> object:
    """`Handlers` asserts AgentOutput; this one passes any answer through."""

    class Typed:
        def __getattr__(self, name: str) -> Any:
            script = handlers._scripts[name]

            async def handler(ctx: AgentContext) -> Any:
                handlers.calls.append((ctx.agent, ctx.item.id, ctx.attempt))
                handlers.contexts.append(ctx)
                return script(ctx)

            return handler

    return Typed()


async def test_history_keeps_every_output_of_a_retried_agent_oldest_first() -> None:
    def reviewer(ctx: AgentContext) -> AgentOutput:
        passed = len(ctx.history["writer_agent"]) >= 2
        return AgentOutput(passed=passed, issues=[] if passed else [QAIssue(message="again")])

    handlers = Handlers(
        writer_agent=lambda ctx: text(f"draft {ctx.attempt}"), reviewer_agent=reviewer
    )
    spec = hello_spec(defaults={"retry": {"max_attempts": 3, "backoff_ms": 0}})
    spec["agents"][1]["retry"] = {"max_attempts": 3, "backoff_ms": 0}
    result, _ = await run(compile_dict(spec), "x", handlers)

    assert result.ok, result.reason
    last_review = handlers.contexts[-1]
    assert last_review.history["writer_agent"] == (
        TextOutput(text="draft 1"),
        TextOutput(text="draft 2"),
    )
    assert last_review.outputs["writer_agent"] == TextOutput(text="draft 2")
    # The reviewer's own first verdict is in its history by its second run.
    assert len(last_review.history["reviewer_agent"]) == 1
    assert handlers.contexts[0].history == {} and handlers.contexts[0].outputs == {}


async def test_a_fanned_out_item_sees_its_ancestors_outputs_and_not_its_siblings() -> None:
    def worker(ctx: AgentContext) -> AgentOutput:
        return text(f"work on {ctx.item.id}")

    handlers = Handlers(
        orchestrator_agent=lambda ctx: AgentOutput(text="plan", items=["a", "b"]),
        worker_agent=worker,
        qa_agent=lambda ctx: AgentOutput(passed=True),
    )
    result, _ = await run(compile_dict(fanout_spec()), "x", handlers)

    assert result.ok, result.reason
    qa_contexts = [c for c in handlers.contexts if c.agent == "qa_agent"]
    assert len(qa_contexts) == 2
    for ctx in qa_contexts:
        assert ctx.outputs == {
            "orchestrator_agent": TextOutput(text="plan"),  # from item main, the ancestor
            "worker_agent": TextOutput(text=f"work on {ctx.item.id}"),  # its own item's
        }
        assert set(ctx.history) == {"worker_agent"}  # history: this item only


async def test_a_handler_that_returns_the_wrong_type_fails_its_item_naming_the_type() -> None:
    class Other(BaseModel):
        x: int = 1

    handlers = Handlers(classifier=lambda ctx: text("not typed"), responder=lambda ctx: text("r"))
    compiled = with_outputs(
        compile_dict(chain_spec("classifier", "responder")), {"classifier": ClassifierOutput}
    )
    result, events = await run(compiled, "x", handlers)
    assert result.status == "failed"
    failed = kinds(events, K.AGENT_FAILED)[0]
    assert failed.payload["error"] == "TypeError"
    assert "returned AgentOutput, not ClassifierOutput" in failed.payload["message"]

    wrong = _typed(Handlers(classifier=lambda ctx: Other(), responder=lambda ctx: text("r")))
    result, events = await run(compiled, "x", wrong)
    assert result.status == "failed"
    assert (
        "returned Other, which does not validate as ClassifierOutput"
        in kinds(events, K.AGENT_FAILED)[0].payload["message"]
    )
    # An agent without `output:` still must answer AgentOutput.
    typed_elsewhere = _typed(
        Handlers(classifier=lambda ctx: BILLING, responder=lambda ctx: BILLING)
    )
    result, events = await run(compiled, "x", typed_elsewhere)
    assert (
        "returned ClassifierOutput, not AgentOutput"
        in kinds(events, K.AGENT_FAILED)[0].payload["message"]
    )


async def test_the_same_model_from_another_module_copy_is_accepted_as_the_declared_one() -> None:
    # `agentflow run` executes the generated module under a private name; a handler
    # that imports the class from generated/x.py gets a twin class of the same shape.
    class ClassifierOutputTwin(BaseModel):
        category: str
        urgency: int
        summary: str

    twin = ClassifierOutputTwin(category="bug", urgency=1, summary="s")
    scripted = Handlers(classifier=lambda ctx: twin, responder=lambda ctx: text("r"))
    compiled = with_outputs(
        compile_dict(chain_spec("classifier", "responder")), {"classifier": ClassifierOutput}
    )
    result, _ = await run(compiled, "x", _typed(scripted))
    assert result.ok, result.reason
    responder = scripted.contexts[1]
    assert type(responder.outputs["classifier"]) is ClassifierOutput  # recorded as declared
    assert responder.outputs["classifier"].model_dump() == twin.model_dump()


async def test_prompts_see_outputs_as_json_like_dicts() -> None:
    compiled = with_outputs(
        compile_dict(
            chain_spec("classifier", "responder"),
            prompts={
                "classifier": "Classify {{ input }}",
                "responder": (
                    "Category {{ outputs.classifier.category }}, urgency "
                    "{{ outputs.classifier.urgency + 1 }}; seen {{ history.classifier | length }}"
                ),
            },
        ),
        {"classifier": ClassifierOutput},
    )
    sink = MemorySink()
    result = await run_pipeline(
        compiled, "t", handlers=None, model=DryRunModel(), sinks=[sink], options=RunOptions()
    )
    assert result.ok, result.reason
    classified = kinds(sink.events, K.AGENT_COMPLETED)[0].payload["output"]
    responder_text = next(
        e.payload["text"] for e in kinds(sink.events, K.MODEL_RESPONSE) if e.agent == "responder"
    )
    assert (
        f"Category {classified['category']}, urgency {classified['urgency'] + 1}; seen 1"
        in responder_text
    )


def test_text_output_is_a_valid_model() -> None:
    fast = text_output("draft")
    validated = TextOutput(text="draft")
    assert fast == validated and fast.model_dump() == validated.model_dump()
    assert fast.model_fields_set == validated.model_fields_set
    assert TextOutput.model_validate(fast.model_dump()) == fast


def test_a_context_stays_hashable_as_before_outputs_existed() -> None:
    from agentflow.runtime.agents import WorkItem

    ctx = AgentContext("run-1", "a", WorkItem("main"), 1, "x")
    assert hash(ctx) == hash(AgentContext("run-1", "a", WorkItem("main"), 1, "x"))
