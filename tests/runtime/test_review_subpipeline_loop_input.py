"""A sub-pipeline agent that a fan-out starts and a route loops back to gets the
router's output on the loop (review of DSL v2 part 2).

The child's input was the work item on every run of the agent on a child item, so
the loop's second run redid the first one's work and never saw what the router
passed (the compiler checked the router's output against the child's `input:`).
"""

from __future__ import annotations

from pathlib import Path

from agentflow.runtime import EventKind, run_pipeline
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.memory import MemorySink

CHILD = """\
name: team
input:
  instruction: str
agents:
  - id: worker
    prompt: task.md
"""

PARENT = """\
name: parent
agents:
  - id: planner
    prompt: plain.md
    output:
      tasks:
        type: list
        items: {instruction: str}
    dispatch: {strategy: parallel_fan_out, items: tasks, target: team}
  - id: team
    pipeline: child.yaml
    dispatch: {strategy: sequential, target: reviewer}
  - id: reviewer
    prompt: plain.md
    output:
      route: {enum: [again, done]}
      instruction: str
    dispatch:
      strategy: route
      cases:
        again: {target: team, max_iterations: 1, on_exhausted: end}
        done: end
"""


async def test_a_route_back_to_a_fan_out_targets_sub_pipeline_passes_the_routers_output(
    tmp_path: Path,
) -> None:
    (tmp_path / "task.md").write_text("Task: {{ input.instruction }}\n")
    (tmp_path / "plain.md").write_text("Go.\n")
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "parent.yaml").write_text(PARENT)
    module = compile_and_import(tmp_path / "parent.yaml")
    sink = MemorySink()
    result = await run_pipeline(
        module.compiled,
        "topic",
        handlers=module.default_handlers(),
        model=DryRunModel(items=1, routes={"reviewer": ["again"]}),
        sinks=[sink],
        options=RunOptions(backoff_scale=0),
    )
    assert result.ok, result.reason
    done = {
        str(e.item): str(e.payload["text"])
        for e in sink.events
        if e.kind == EventKind.AGENT_COMPLETED and e.agent == "team.worker"
    }
    # The fan-out's run: the work item; the route's run: the reviewer's instruction.
    assert done["item-1/team/1"].endswith('"Task: [dry-run] instruction (tasks 1 of 1)"')
    assert done["item-1/team/2"].endswith('"Task: [dry-run] instruction"'), done
