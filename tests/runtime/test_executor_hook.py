"""The executor hook (`RunOptions.executor`, docs/scale.md): every invocation's handler
call goes through it, the local executor changes nothing, and neither importing the
runtime nor a local run imports Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentflow.runtime import AgentContext, AgentOutput, RunOptions, run_pipeline
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.plan import Handler
from agentflow.runtime.errors import PipelineDefinitionError
from agentflow.runtime.executors.local import LocalExecutor
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.memory import MemorySink
from generated.map_reduce import COMPILED as MAP_REDUCE


class _Counting:
    """An executor that runs here and counts what went through it."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    async def invoke(self, handler: Handler, ctx: AgentContext) -> AgentOutput | BaseModel:
        self.calls[ctx.agent, ctx.item.id] += 1
        return await handler(ctx)


def _events(sink: MemorySink) -> Counter[str]:
    return Counter(
        json.dumps([e.kind.value, e.agent, e.item, e.attempt, e.payload], sort_keys=True)
        for e in sink.events
        if e.kind.value != "log_sealed"
    )


async def _run(executor: Any) -> tuple[Any, MemorySink]:
    sink = MemorySink()
    result = await run_pipeline(
        MAP_REDUCE,
        "text",
        handlers=None,
        model=DryRunModel(),
        sinks=[sink],
        options=RunOptions(executor=executor, seed=1, backoff_scale=0),
    )
    return result, sink


async def test_every_invocation_goes_through_the_executor_once() -> None:
    counting = _Counting()
    result, sink = await _run(counting)
    started = Counter((e.agent, e.item) for e in sink.events if e.kind.value == "agent_started")
    assert result.ok
    assert counting.calls == started
    assert sum(counting.calls.values()) == 5  # planner, 3 analysts, synthesiser


async def test_the_local_executor_gives_what_no_executor_gives() -> None:
    plain, plain_sink = await _run(None)
    local, local_sink = await _run(LocalExecutor())
    assert local.model_dump(exclude={"run_id"}) == plain.model_dump(exclude={"run_id"})
    assert _events(local_sink) == _events(plain_sink)


def test_importing_the_runtime_and_a_local_run_do_not_import_ray() -> None:
    script = textwrap.dedent(
        """\
        import sys
        import trio
        import agentflow.runtime
        import agentflow.runtime.executors, agentflow.runtime.executors.local
        from agentflow.runtime import run_pipeline
        from agentflow.runtime.models.dry_run import DryRunModel
        from generated.hello_world import COMPILED
        result = trio.run(lambda: run_pipeline(COMPILED, "x", handlers=None, model=DryRunModel()))
        assert result.status, result
        print("ray" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"


RAY_PIPELINE = """\
name: wants-ray
agents:
  - id: shout
    handler: wants_ray_handlers_x:shout
    executor: ray
"""


async def test_run_pipeline_refuses_ray_agents_without_an_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wants_ray_handlers_x.py").write_text(
        "from agentflow.runtime import AgentOutput\n\n\n"
        "async def shout(ctx):\n    return AgentOutput(text=str(ctx.input).upper())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "p.yaml").write_text(RAY_PIPELINE)
    module = compile_and_import(tmp_path / "p.yaml")
    with pytest.raises(PipelineDefinitionError) as refused:
        await run_pipeline(module.compiled, "hi", handlers=module.default_handlers())
    assert str(refused.value).startswith(
        "agents shout say executor: ray (their own or defaults.executor), and run_pipeline "
        "got no executor: pass RunOptions(executor=RayExecutor(...))"
    )
    here = await run_pipeline(
        module.compiled,
        "hi",
        handlers=module.default_handlers(),
        options=RunOptions(executor=LocalExecutor()),
    )
    assert here.ok and here.items[0].output == "HI"
