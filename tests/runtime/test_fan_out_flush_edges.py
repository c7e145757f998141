"""Edges of the fan-out flush (`EventHub.flushing_before_waits`) and of the models that
share one `fields_set`, found by a second reader: a sub-pipeline that fans out, an audit
write that fails in the flush before trio sleeps, and one run's result edited or copied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime import AgentOutput
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.models.dry_run import DryRunModel
from tests.runtime.test_subpipeline import run_module, write

PARENT_OF_FAN_OUT_CHILD = """\
name: {name}
agents:
  - id: team
    pipeline: kids/child.yaml
"""

CHILD_THAT_FANS_OUT = """\
name: {name}
agents:
  - id: splitter
    handler: "tests.runtime.test_fan_out_flush_edges:two_items"
    dispatch: {{strategy: parallel_fan_out, target: worker}}
  - id: worker
    handler: "tests.runtime.test_fan_out_flush_edges:echo"
"""


async def two_items(ctx: AgentContext) -> AgentOutput:
    return AgentOutput(text="split", items=["a", "b"])


async def echo(ctx: AgentContext) -> AgentOutput:
    await trio.sleep(0)
    return AgentOutput(text=f"did {ctx.item.payload}")


async def test_a_sub_pipeline_may_fan_out(tmp_path: Path) -> None:
    """A child pipeline's fan-out runs under `ChildHub`, which never ran
    `EventHub.__init__`: `flushing_before_waits` must still work there."""
    path = write(tmp_path, PARENT_OF_FAN_OUT_CHILD, CHILD_THAT_FANS_OUT, "sp-kid-fans")
    log = tmp_path / "run.jsonl"
    result = await run_module(path, None, log, model=DryRunModel())
    assert result.status == "succeeded", result.reason
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    finished = sorted(e["item"] for e in lines if e["kind"] == "item_finished")
    assert finished == ["main", "main/team/1", "main/team/1.1", "main/team/1.2"]


# -- an audit write that fails in the instrument's flush -------------------------------


class AuditLogThatFillsUp:
    """An inline audit sink whose write fails once it is handed an `item_finished` line
    (the disk fills up just then)."""

    audit = True
    inline = True
    name = "audit"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_lines(self, lines: Any) -> None:
        if any('"item_finished"' in line for line in lines):
            raise OSError(28, "No space left on device")
        self.lines.extend(lines)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_an_audit_failure_while_another_item_waits_stops_the_run_at_once() -> None:
    """Item `fast` ends while item `slow` waits (on nothing with a deadline); the write of
    `fast`'s last lines fails. The run must stop at once, as an error. Before this change
    the write happened in `fast`'s task; now it happens in `before_io_wait`, after trio
    computed how long to sleep: the cancel that `on_audit_failure` issues reschedules
    `slow`, but trio sleeps first (here: until the guard's deadline; without one, up to a
    day)."""
    from agentflow.runtime.engine.runner import RunOptions, run_pipeline
    from tests.runtime.test_hub_inline import _pipeline

    slow_waits = trio.Event()

    class Handlers:
        async def planner_agent(self, ctx: AgentContext) -> AgentOutput:
            return AgentOutput(text="plan", items=["slow", "fast"])

        async def worker_agent(self, ctx: AgentContext) -> AgentOutput:
            if ctx.item.payload == "slow":
                slow_waits.set()
                await trio.sleep_forever()  # cancelled when the run stops
            await slow_waits.wait()  # `fast` ends only once `slow` waits
            return AgentOutput(text="done")

    sink = AuditLogThatFillsUp()
    guard = 10.0  # a hang guard, not a timing bound: a stopped run ends in milliseconds
    with trio.move_on_after(guard) as hang:
        result = await run_pipeline(
            _pipeline(), "q", handlers=Handlers(), sinks=[sink],
            options=RunOptions(backoff_scale=0.0),
        )  # fmt: skip
    assert not hang.cancelled_caught, "the run slept until the guard's deadline"
    assert result.status == "error"


# -- engine-built models share one fields_set: nothing a caller does reaches the others ----


async def test_editing_or_copying_one_run_result_changes_no_other_result() -> None:
    """`RunResult` and `ItemOutcome` are not frozen: assignment, deletion, copies,
    pickles and validation of one engine-built instance leave every other instance
    (of this run and of later runs) and the shared set as they were."""
    import copy
    import pickle

    from agentflow.runtime.engine import run_result as rr
    from agentflow.runtime.engine.run_result import ItemOutcome, RunResult
    from agentflow.runtime.engine.runner import RunOptions, run_pipeline
    from tests.runtime.test_hub_inline import _pipeline

    class Handlers:
        async def planner_agent(self, ctx: AgentContext) -> AgentOutput:
            return AgentOutput(text="plan", items=["a"])

        async def worker_agent(self, ctx: AgentContext) -> AgentOutput:
            return AgentOutput(text="done")

    async def one_run() -> RunResult:
        return await run_pipeline(
            _pipeline(), "q", handlers=Handlers(), options=RunOptions(backoff_scale=0.0)
        )

    first = await one_run()
    outcome_fields, result_fields = set(ItemOutcome.model_fields), set(RunResult.model_fields)
    first.reason = "edited"
    first.items[0].output = "edited"
    del first.items[1].reason
    first.model_copy(update={"status": "error", "not_a_field": 1})
    first.items[0].model_copy(update={"bogus": 2}, deep=True)
    copy.copy(first).items.append(first.items[0])
    copy.deepcopy(first).items[0].model_fields_set.add("deep")
    pickle.loads(pickle.dumps(first)).model_fields_set.add("pickled")
    assert RunResult.model_validate(first) is first  # revalidation off: the same instance
    ItemOutcome.model_validate(first.items[0].model_dump()).model_fields_set.add("validated")
    second = await one_run()
    assert outcome_fields == rr._OUTCOME_FIELDS and result_fields == rr._RESULT_FIELDS
    assert second.model_fields_set == result_fields
    assert all(item.model_fields_set == outcome_fields for item in second.items)
    assert second.model_dump(exclude_unset=True, exclude={"usage"}) == second.model_dump(
        exclude={"usage"}
    )
    assert second.reason != "edited" and second.items[0].output == "plan"
