"""`pipeline()` from a generated module: register tools and sinks, then run (the seed's API)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agentflow.runtime import AgentContext, AgentOutput, PipelineDefinitionError
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.memory import MemorySink

ROOT = Path(__file__).resolve().parents[2]
SEED = compile_and_import(ROOT / "pipelines" / "seed_minimal.yaml").module


class ShoutTool:
    id = "my_tool"
    description = "Upper-cases `text`."
    input_schema: Mapping[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}

    async def execute(self, input: Mapping[str, Any]) -> Any:
        return {"text": str(input["text"]).upper()}


class UsesMyTool(SEED.DefaultHandlers):  # type: ignore[name-defined,misc]
    async def producer_agent(self, ctx: AgentContext) -> AgentOutput:
        assert ctx.services is not None
        result = await ctx.services.tools["my_tool"].execute({"text": str(ctx.input)})
        return AgentOutput(text=result["text"])


async def test_registered_tool_and_sink_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pipeline = SEED.pipeline(UsesMyTool())
    pipeline.register_tool("my_tool", ShoutTool())
    sink = MemorySink()
    pipeline.register_sink(sink)
    result = await pipeline.run("quiet words", model=DryRunModel())
    assert result.status == "succeeded"
    assert result.items[0].output == "QUIET WORDS"  # the registered tool, not the YAML plugin
    assert [e.kind for e in sink.events][-2:] == ["run_finished", "log_sealed"]
    assert len(sink.events) == result.events + 1  # result.events counts through run_finished


def test_registering_an_undeclared_tool_or_a_non_tool_fails_clearly() -> None:
    pipeline = SEED.pipeline()
    with pytest.raises(
        PipelineDefinitionError, match=r"declares no tool 'other'.*filesystem, my_tool"
    ):
        pipeline.register_tool("other", ShoutTool())
    with pytest.raises(PipelineDefinitionError, match="is not a Tool"):
        pipeline.register_tool("my_tool", object())  # type: ignore[arg-type]
    with pytest.raises(PipelineDefinitionError, match="is not a LogSink"):
        pipeline.register_sink(object())  # type: ignore[arg-type]


async def test_run_options_audit_log_writes_a_verifiable_log(tmp_path: Path) -> None:
    from agentflow.runtime import RunOptions
    from agentflow.runtime.events.verify import verify_log
    from agentflow.runtime.pipeline import derive_transitions

    log = tmp_path / "logs" / "run.jsonl"
    log.parent.mkdir()
    log.write_text("an older run\n")
    options = RunOptions(audit_log=str(log))
    result = await SEED.run("x", model=DryRunModel(), options=options)
    lines = log.read_text().splitlines()
    assert len(lines) == result.events + 1 and "older" not in lines[0]  # + log_sealed
    table = {(s, t): to for s, t, to in derive_transitions(SEED.PIPELINE)}
    assert verify_log(log, table).ok


def test_run_options_reject_a_zero_concurrency() -> None:
    from agentflow.runtime import RunOptions

    with pytest.raises(PipelineDefinitionError, match="max_concurrency=0"):
        RunOptions(max_concurrency=0)
