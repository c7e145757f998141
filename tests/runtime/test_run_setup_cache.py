"""Per-run setup that depends only on the pipeline and the handler class is computed once
(issue 12): the prompts' hash every `run_started` records, and which agents run from their
prompt (whether `model=None` must open a live model). A handler object whose own
attributes could change the answer is never served from the cache."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.agent_runner import run_default_agent
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import run_pipeline
from agentflow.runtime.models.factory import NoModelError
from agentflow.runtime.pipeline import compile_spec
from agentflow.runtime.spec import PipelineSpec

from .test_engine_fakes import hello_spec

SPEC = PipelineSpec.model_validate(hello_spec())


class CountingPrompts(Mapping[str, str]):
    """The pipeline's prompts, counting how often all of them are read."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts
        self.reads = 0

    def __getitem__(self, key: str) -> str:
        return self._texts[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def items(self) -> Any:
        self.reads += 1
        return self._texts.items()


class CountingHandler:
    """A handler (a callable object, not a method) that counts how often the run asks
    whether it is the default agent body (which looks for a bound method's `__func__`)."""

    def __init__(self, output: AgentOutput) -> None:
        self.output = output
        self.asked = 0

    @property
    def __func__(self) -> CountingHandler:
        self.asked += 1
        return self

    async def __call__(self, ctx: AgentContext) -> AgentOutput:
        return self.output


WRITER = CountingHandler(AgentOutput(text="draft"))


class AppHandlers:
    writer_agent = WRITER
    reviewer_agent = CountingHandler(AgentOutput(passed=True))


async def test_the_prompts_hash_is_computed_once_per_pipeline() -> None:
    texts = {a.id: "You are {{ agent }}" for a in SPEC.agents}
    prompts = CountingPrompts(texts)
    pipeline = dataclasses.replace(compile_spec(SPEC, texts), prompts=prompts)
    for _ in range(3):
        result = await run_pipeline(pipeline, "x", handlers=AppHandlers())
        assert result.ok
    assert prompts.reads == 1


async def test_which_agents_run_from_their_prompt_is_worked_out_once_per_handler_class() -> None:
    pipeline = compile_spec(SPEC, {a.id: "You are {{ agent }}" for a in SPEC.agents})
    asked = WRITER.asked
    for _ in range(3):
        assert (await run_pipeline(pipeline, "x", handlers=AppHandlers())).ok
    assert WRITER.asked - asked == 1


async def test_a_handler_objects_own_attribute_is_never_answered_from_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    pipeline = compile_spec(SPEC, {a.id: "You are {{ agent }}" for a in SPEC.agents})
    assert (await run_pipeline(pipeline, "x", handlers=AppHandlers())).ok  # cached: no model
    handlers = AppHandlers()
    handlers.writer_agent = run_default_agent  # type: ignore[assignment]  # from its prompt
    with pytest.raises(NoModelError, match="writer_agent"):
        await run_pipeline(pipeline, "x", handlers=handlers)
