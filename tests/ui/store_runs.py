"""Runs recorded in a real run store for the UI v2 tests: finished (the real engine on
the dry-run model), crashed (an owner that is gone, no run_finished) and live."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime.cli.compiled_loader import CompiledModule, compile_and_import
from agentflow.runtime.engine.run_result import RunResult
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"


def module(name: str) -> CompiledModule:
    return compile_and_import(PIPELINES / name)


def dead_owner() -> str:
    """A lease owner on this host whose process has exited (as after a crash)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}"


@dataclass
class Recorded:
    run_id: str
    hub: EventHub
    result: RunResult | None = None


async def record_run(
    store: RunStore,
    pipeline: str,
    run_id: str,
    *,
    model: DryRunModel | None = None,
    run_input: Any = "topic",
) -> Recorded:
    """Run `pipeline` to its end on the dry-run model, committed to `store`."""
    mod = module(pipeline)
    compiled = mod.compiled
    model = model or DryRunModel()
    committer = await store.begin_run(
        run_id=run_id,
        pipeline=compiled.spec.name,
        pipeline_path=str(PIPELINES / pipeline),
        source_hash=compiled.source_sha256,
        input=run_input,
        options={},
        model=model.name,
    )
    hub = EventHub(run_id=run_id, pipeline_hash=compiled.source_sha256)
    hub.commit_to(committer)
    async with hub.running():
        result = await run_pipeline(
            compiled,
            run_input,
            handlers=mod.default_handlers(),
            model=model,
            hub=hub,
            options=RunOptions(run_id=run_id, backoff_scale=0),
        )
    return Recorded(run_id, hub, result)


async def begin_partial_run(
    store: RunStore, pipeline: str, run_id: str, *, owner: str | None = None
) -> Recorded:
    """A run that started (run_started, the entry agent started) and has not finished:
    live while `owner` (default: this process) lives, crashed when it is gone."""
    compiled = module(pipeline).compiled
    committer = await store.begin_run(
        run_id=run_id,
        pipeline=compiled.spec.name,
        pipeline_path=str(PIPELINES / pipeline),
        source_hash=compiled.source_sha256,
        input="topic",
        options={},
        model="dry-run",
        owner=owner,
    )
    hub = EventHub(run_id=run_id, pipeline_hash=compiled.source_sha256)
    hub.commit_to(committer)
    hub.emit(EventKind.RUN_STARTED, payload={"pipeline": compiled.spec.name, "model": "dry-run"})
    entry = compiled.spec.entry_agent
    hub.emit(EventKind.AGENT_STARTED, agent=entry, item="main", attempt=1)
    await hub.wait_committed()
    return Recorded(run_id, hub)


async def wait_until(predicate: Any, timeout: float = 30) -> None:
    """Poll `predicate()` until true; a generous safety timeout turns a hang into a failure."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
