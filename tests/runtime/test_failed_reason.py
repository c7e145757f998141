"""A failed run's reason carries the first failed item's cause, not only its id."""

from __future__ import annotations

from pathlib import Path

from agentflow.runtime import RunOptions
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.models.dry_run import DryRunModel

FAN_OUT = """\
name: fan-fail
agents:
  - id: planner
    instructions: "plan {{ input }}"
    dispatch: {strategy: parallel_fan_out, target: worker}
  - id: worker
    instructions: "{{ history.planner[-1].text }}"
"""


async def test_the_reason_names_the_first_items_cause(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(FAN_OUT, encoding="utf-8")
    module = compile_and_import(tmp_path / "p.yaml").module
    result = await module.run(
        "x", model=DryRunModel(), options=RunOptions(audit_log=tmp_path / "run.jsonl")
    )
    assert result.status == "failed" and result.reason is not None
    # a child item's history holds only its own outputs: the planner ran on the parent
    assert result.reason.startswith("3 item(s) failed or were aborted (first: item-1: ")
    assert "PromptRenderError" in result.reason and "no element -1" in result.reason
