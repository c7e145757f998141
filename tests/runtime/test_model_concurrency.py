"""Model-call concurrency follows the fan-out's limit unless the run caps it."""

from __future__ import annotations

from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.models.base import ModelRequest, ModelTurn

from .test_agent_runner import ScriptedModel, go, passing_review
from .test_engine_fakes import compile_dict, fanout_spec


def script(items: int):  # type: ignore[no-untyped-def]
    def answer(request: ModelRequest) -> ModelTurn:
        if request.agent == "orchestrator_agent":
            return ModelTurn(structured={"items": [f"q{k}" for k in range(items)]})
        if request.agent == "worker_agent":
            return ModelTurn(text="w")
        return passing_review(request)

    return answer


def test_no_run_wide_cap_by_default() -> None:
    assert RunOptions().max_model_calls is None


async def test_a_fan_out_makes_as_many_model_calls_at_once_as_its_limit(
    autojump_clock: object,
) -> None:
    model = ScriptedModel(script(40), delay=1.0)
    result, _ = await go(compile_dict(fanout_spec(max_concurrency=32)), model)
    assert result.ok, result.reason
    assert model.peak == 32  # was 8: a run-wide default cap below the fan-out's own


async def test_an_explicit_cap_still_bounds_model_calls_run_wide(autojump_clock: object) -> None:
    model = ScriptedModel(script(40), delay=1.0)
    result, _ = await go(compile_dict(fanout_spec(max_concurrency=32)), model, max_model_calls=5)
    assert result.ok, result.reason
    assert model.peak == 5
