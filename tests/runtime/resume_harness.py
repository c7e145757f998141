"""Helpers for the resume tests: a run recorded in a store, interrupted at a chosen
handler call (its cancel scope is cancelled, as Ctrl-C would), then resumed.

Not tests themselves; real components throughout (store, hub, engine, FileSink).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.resume import resume_run
from agentflow.runtime.engine.run_result import RunResult, with_audit_outcome
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.hub import EventHub
from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.pipeline import CompiledPipeline
from agentflow.runtime.sinks.file import FileSink
from agentflow.runtime.store import RunStore

SAFETY = 60  # seconds: turns a hang into a failure, never a speed assertion

Script = Callable[[AgentContext], Any]


@dataclass
class Scripted:
    """Handlers from scripts (one per agent); counts every call (agent, item, attempt) and
    cancels `scope` instead of answering the call numbered `interrupt_at` (1-based)."""

    scripts: dict[str, Script]
    interrupt_at: int | None = None
    scope: trio.CancelScope | None = None
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Callable[[AgentContext], Any]:
        if name.startswith("_") or name not in self.scripts:
            raise AttributeError(name)
        script = self.scripts[name]

        async def handler(ctx: AgentContext) -> Any:
            self.calls.append((ctx.agent, ctx.item.id, ctx.attempt))
            if self.interrupt_at is not None and len(self.calls) >= self.interrupt_at:
                assert self.scope is not None
                self.scope.cancel()
                await trio.sleep_forever()
            await trio.lowlevel.checkpoint()
            result = script(ctx)
            if inspect.isawaitable(result):
                result = await result
            return result

        return handler


async def start_run(
    store: RunStore,
    pipeline: CompiledPipeline,
    handlers: object,
    run_id: str,
    log: Path,
    run_input: object = "x",
    *,
    scope: trio.CancelScope | None = None,
    model: Any = None,
    tools: Any = None,
) -> RunResult | None:
    """Run `pipeline` recorded in `store` with its JSONL export at `log`; None when `scope`
    was cancelled (the run was interrupted)."""
    committer = await store.begin_run(
        run_id=run_id,
        pipeline=pipeline.spec.name,
        source_hash=pipeline.source_sha256,
        input=run_input,
        options={},
        jsonl_path=str(log),
    )
    hub = EventHub(
        run_id=run_id,
        pipeline_hash=pipeline.source_sha256,
        sinks=[FileSink(log)],
        committer=committer,
    )
    result: RunResult | None = None
    with trio.fail_after(SAFETY):
        with scope if scope is not None else trio.CancelScope():
            async with hub.running():
                result = await run_pipeline(
                    pipeline, run_input, handlers=handlers, hub=hub, model=model, tools=tools,
                    options=RunOptions(backoff_scale=0, run_id=run_id),
                )  # fmt: skip
    return None if result is None else with_audit_outcome(result, hub)


async def resume(
    store: RunStore,
    pipeline: CompiledPipeline,
    handlers: object,
    run_id: str,
    log: Path,
    *,
    model: Any = None,
    tools: Any = None,
) -> RunResult:
    with trio.fail_after(SAFETY):
        return await resume_run(
            pipeline, store, run_id, handlers=handlers, model=model, tools=tools,
            options=RunOptions(backoff_scale=0, audit_log=log),
        )  # fmt: skip


def same_outcome(a: RunResult, b: RunResult) -> None:
    """Two runs ended alike: status, final state, reason and every item's outcome."""
    assert (a.status, a.final_state) == (b.status, b.final_state), (a, b)
    left = [(i.id, i.status, i.output, i.attempts, i.gates, i.reason) for i in a.items]
    right = [(i.id, i.status, i.output, i.attempts, i.gates, i.reason) for i in b.items]
    assert sorted(left, key=repr) == sorted(right, key=repr)


def check_log(store: RunStore, run_id: str, log: Path) -> None:
    """The resumed log verifies end to end, and the JSONL export is the store."""
    report = verify_log(log)
    assert report.ok, report
    assert log.read_text().splitlines() == list(store.lines(run_id))
