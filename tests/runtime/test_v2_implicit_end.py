"""DSL-V2 section 7: a pipeline without `state_machine:` ends `complete` when every item
passed or ended, else `failed`, through a transition `agentflow verify` accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import RunOptions, run_pipeline
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.events.verify import verify_run_log

from .test_engine_fakes import Handlers, compile_dict, kinds, run


def implicit_spec() -> dict[str, Any]:
    """What lower.py makes of a YAML without `state_machine:`: the default machine."""
    return {
        "name": "implicit",
        "implicit_state_machine": True,
        "state_machine": {
            "initial": "running",
            "terminal": ["complete", "failed"],
            "states": [{"id": "running"}, {"id": "complete"}, {"id": "failed"}],
        },
        "agents": [
            {
                "id": "planner",
                "prompt": "p.md",
                "dispatch": {"strategy": "parallel_fan_out", "target": "worker"},
            },
            {"id": "worker", "prompt": "p.md"},
        ],
    }


def worker_failing_on(bad_item: str | None) -> Handlers:
    def worker(ctx: AgentContext) -> AgentOutput:
        if ctx.item.id == bad_item:
            raise RuntimeError("worker broke")
        return AgentOutput(text="done")

    return Handlers(planner=lambda ctx: AgentOutput(items=["a", "b"]), worker=worker)


async def run_logged(tmp_path: Path, bad_item: str | None) -> tuple[Any, Path]:
    log = tmp_path / "run.jsonl"
    result = await run_pipeline(
        compile_dict(implicit_spec()),
        "x",
        handlers=worker_failing_on(bad_item),
        options=RunOptions(audit_log=log),
    )
    return result, log


async def test_every_item_ended_well_ends_complete(tmp_path: Path) -> None:
    result, log = await run_logged(tmp_path, None)
    assert result.status == "succeeded" and result.final_state == "complete"
    report = verify_run_log(log, compile_dict(implicit_spec()).spec)
    assert report.ok, report.problems
    assert report.final_state == "complete"


async def test_an_aborted_item_ends_failed(tmp_path: Path) -> None:
    result, log = await run_logged(tmp_path, "item-2")
    assert result.status == "failed" and result.final_state == "failed"
    report = verify_run_log(log, compile_dict(implicit_spec()).spec)
    assert report.ok, report.problems
    assert report.final_state == "failed"


async def test_the_end_is_one_run_level_transition(tmp_path: Path) -> None:
    result, events = await run(compile_dict(implicit_spec()), "x", worker_failing_on(None))
    (move,) = kinds(events, K.TRANSITION)
    assert move.agent is None
    assert move.payload == {
        "from": "running",
        "to": "complete",
        "trigger": "run.complete",
        "noop": False,
    }
    assert result.ok


async def test_an_explicit_state_machine_is_not_ended_for_the_user() -> None:
    spec = implicit_spec()
    spec["implicit_state_machine"] = False
    result, events = await run(compile_dict(spec), "x", worker_failing_on(None))
    assert result.status == "incomplete" and kinds(events, K.TRANSITION) == []
