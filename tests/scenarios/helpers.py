"""Scenario test helpers: compile the scenario pipelines once, run them, read their events."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from agentflow.runtime import AgentContext, AgentOutput, QAIssue
from agentflow.runtime.engine.runner import RunOptions, RunResult
from agentflow.runtime.events.event import EventKind, PipelineEvent
from agentflow.runtime.models.base import Model
from agentflow.runtime.sinks.memory import MemorySink

__all__ = [
    "BIN",
    "PIPELINES",
    "ROOT",
    "Script",
    "agentflow",
    "compile_all",
    "fail",
    "import_generated",
    "kinds",
    "of",
    "run_module",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PIPELINES = HERE / "pipelines"
BIN = Path(sys.executable).parent
Script = Callable[[AgentContext], AgentOutput]


def agentflow(
    *args: str | Path, cwd: Path, tool: str = "agentflow", pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real console script and capture its output (never against live Claude)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "AGENTFLOW_DEBUG")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(BIN / tool), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compile_all(out_dir: Path) -> subprocess.CompletedProcess[str]:
    """`agentflowc tests/scenarios/pipelines/*.yaml -o out_dir` with the real CLI."""
    files = sorted(PIPELINES.glob("*.yaml"))
    return agentflow(*files, "-o", out_dir, cwd=HERE, tool="agentflowc", pythonpath=ROOT)


def import_generated(path: Path) -> ModuleType:
    """Import a generated module file under a private name."""
    spec = importlib.util.spec_from_file_location(f"scenario_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _method(fn: Script) -> Callable[[object, AgentContext], Any]:
    async def method(self: object, ctx: AgentContext) -> AgentOutput:
        return fn(ctx)

    return method


async def run_module(
    module: ModuleType,
    run_input: object = "topic",
    *,
    model: Model | None = None,
    options: RunOptions | None = None,
    **scripts: Script,
) -> tuple[RunResult, list[PipelineEvent]]:
    """Run a generated module with some agents scripted (the rest run from their prompt)."""
    handlers = type(
        "Scripted", (module.DefaultHandlers,), {k: _method(v) for k, v in scripts.items()}
    )
    sink = MemorySink()
    result = await module.run(
        run_input,
        handlers=handlers(),
        model=model,
        sinks=[sink],
        options=options or RunOptions(backoff_scale=0, seed=1),
    )
    assert isinstance(result, RunResult)
    return result, sink.events


def of(
    events: Iterable[PipelineEvent], kind: EventKind, agent: str | None = None
) -> list[PipelineEvent]:
    """The events of one kind (and agent), in order."""
    return [e for e in events if e.kind is kind and (agent is None or e.agent == agent)]


def kinds(events: Iterable[PipelineEvent], skip_model: bool = True) -> list[str]:
    """`kind:agent` for each event, model_* events left out by default, and the audit
    log's closing `log_sealed` record (the run's story ends with run_finished)."""
    return [
        f"{e.kind.value}:{e.agent}" if e.agent else e.kind.value
        for e in events
        if not (skip_model and e.kind.value.startswith("model_")) and e.kind.value != "log_sealed"
    ]


def fail(message: str) -> AgentOutput:
    """A failing QA verdict with one blocking issue."""
    return AgentOutput(passed=False, issues=[QAIssue(message=message)])
