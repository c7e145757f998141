"""Routes, loops, joins and reduces from YAML: compiled by agentflowc's front end, run by
the engine with the default agent bodies on the dry-run model, prompts rendered for real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentflow.runtime import RunOptions
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.events.event import EventKind as K
from agentflow.runtime.events.event import PipelineEvent
from agentflow.runtime.events.verify import verify_run_log
from agentflow.runtime.models.base import ModelRequest, ModelTurn, TextSink
from agentflow.runtime.models.dry_run import DryRunModel

FLOW = """\
name: flow-e2e
agents:
  - id: planner
    instructions: "Plan {{ input }}"
    output:
      subjects: list[str]
    dispatch:
      strategy: parallel_fan_out
      items: subjects
      target: writer
      reduce: collector
  - id: writer
    instructions: "Write about {{ item }}"
  - id: collector
    instructions: >-
      CHILDREN {% for c in children %}[{{ c.id }}|{{ c.status }}|{{ c.output.text }}]{% endfor %}
    dispatch:
      strategy: parallel_broadcast
      targets: [joker, poet]
      join: combiner
  - id: joker
    instructions: "Joke"
  - id: poet
    instructions: "Poem"
  - id: combiner
    instructions: "JOINED joke={{ joined.joker.text }} poem={{ joined.poet.text }}"
    dispatch:
      strategy: sequential
      target: judge
  - id: judge
    instructions: "Judge"
    dispatch:
      strategy: route
      cases:
        again: {target: combiner, max_iterations: 2, on_exhausted: end}
        done: end
"""


class Recording:
    """The dry-run model, keeping every request (prompts are not in the events)."""

    name = "dry-run"

    def __init__(self, **options: Any) -> None:
        self.inner = DryRunModel(**options)
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        self.requests.append(request)
        return await self.inner.complete(request, on_text)


def events_of(log: Path) -> list[PipelineEvent]:
    return [PipelineEvent.model_validate_json(line) for line in log.read_text().splitlines()]


async def test_a_compiled_map_reduce_join_and_loop_run_with_their_prompts_rendered(
    tmp_path: Path,
) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    module = compile_and_import(tmp_path / "flow.yaml").module
    model = Recording(routes={"judge": ["again"]}, items=2)
    log = tmp_path / "run.jsonl"
    result = await module.run("cats", model=model, options=RunOptions(audit_log=log))

    assert result.ok, result.reason
    events = events_of(log)
    created = [e.item for e in events if e.kind == K.ITEM_CREATED]
    assert created == ["item-1", "item-2"]
    texts = {(e.agent, e.item): e.payload["text"] for e in events if e.kind == K.AGENT_COMPLETED}
    # The reduce ran once on main and saw both children, in order, with their outputs.
    (collector,) = [r for r in model.requests if r.agent == "collector"]
    assert collector.system == (
        f"CHILDREN [item-1|completed|{texts['writer', 'item-1']}]"
        f"[item-2|completed|{texts['writer', 'item-2']}]"
    )
    # The join saw both branches' outputs; the loop re-entered it until exhausted.
    combiners = [r for r in model.requests if r.agent == "combiner"]
    assert len(combiners) == 3  # the first pass, then `again` twice; the third `again` ends
    joined = f"JOINED joke={texts['joker', 'main']} poem={texts['poet', 'main']}"
    assert [r.system for r in combiners] == [joined] * 3
    chosen = [e.payload for e in events if e.kind == K.ROUTE_CHOSEN]
    assert [(p["case"], p["iteration"], p["to"]) for p in chosen] == [
        ("again", 1, "combiner"),
        ("again", 2, "combiner"),
        ("again", 3, "end"),
    ]
    assert chosen[-1]["exhausted"] is True
    main = next(i for i in result.items if i.id == "main")
    assert main.status == "completed"
    assert main.attempts == {
        "planner": 1,
        "collector": 1,
        "joker": 1,
        "poet": 1,
        "combiner": 3,
        "judge": 3,
    }
    assert json.loads(main.output) == {"route": "again"}


REPLAN = """\
name: replan-e2e
agents:
  - id: planner
    instructions: "Plan {{ input }}"
    output:
      steps: list[str]
    dispatch:
      strategy: parallel_fan_out
      items: steps
      target: worker
      reduce: reviewer
  - id: worker
    instructions: "Do {{ item }}"
  - id: reviewer
    instructions: "{{ children | length }} steps done"
    dispatch:
      strategy: route
      cases:
        replan: {target: planner, max_iterations: 1}
        done: end
"""


async def test_a_loop_through_a_fan_out_and_reduce_keeps_item_ids_unique_and_verifies(
    tmp_path: Path,
) -> None:
    (tmp_path / "replan.yaml").write_text(REPLAN, encoding="utf-8")
    module = compile_and_import(tmp_path / "replan.yaml").module
    model = Recording(routes={"reviewer": ["replan", "done"]}, items=2)
    log = tmp_path / "run.jsonl"
    result = await module.run("x", model=model, options=RunOptions(audit_log=log))

    assert result.ok, result.reason
    assert [i.id for i in result.items] == ["main", "item-1", "item-2", "item-1#2", "item-2#2"]
    reviewers = [r.system for r in model.requests if r.agent == "reviewer"]
    assert reviewers == ["2 steps done", "2 steps done"]
    report = verify_run_log(log, module.COMPILED.spec)
    assert report.problems == []
