"""A child takes the fields its `input:` declares and ignores the rest of what its parent
passes (its input model forbids extra fields, so the parent's extra field failed the run)."""

from __future__ import annotations

from pathlib import Path

from agentflow.runtime.models.dry_run import DryRunModel

from .test_subpipeline import CHILD, events, run_module, write

PARENT_WITH_MORE = """\
name: {name}
input:
  topic: str
  audience: str
agents:
  - id: team
    pipeline: kids/child.yaml
"""


async def test_the_child_ignores_fields_its_input_does_not_declare(tmp_path: Path) -> None:
    path = write(tmp_path, PARENT_WITH_MORE, CHILD, "sp-more")
    log = tmp_path / "run.jsonl"
    result = await run_module(path, {"topic": "bees", "audience": "kids"}, log, model=DryRunModel())
    assert result.status == "succeeded", result.reason
    done = next(
        e for e in events(log) if e["kind"] == "agent_completed" and e["agent"] == "team.researcher"
    )
    assert "Research bees." in done["payload"]["text"]  # the dry run quotes its prompt
