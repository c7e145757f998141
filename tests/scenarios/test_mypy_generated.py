"""The scenarios' generated modules and a small app using two pass `mypy --strict` (one run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import Compiled

ROOT = Path(__file__).resolve().parents[2]

APP = """
from pathlib import Path

from agentflow.runtime import AgentContext, AgentOutput
import nested_fanout
import single_agent


class Solo(single_agent.DefaultHandlers):
    async def solo(self, ctx: AgentContext) -> AgentOutput:
        return AgentOutput(text=str(ctx.input))


class Outline(nested_fanout.DefaultHandlers):
    async def outliner(self, ctx: AgentContext) -> AgentOutput:
        return AgentOutput(items=[{"title": "intro"}, "body"])


state: single_agent.State = single_agent.INITIAL
target: nested_fanout.State = nested_fanout.TRANSITIONS[
    (nested_fanout.State.INIT, nested_fanout.Trigger.OUTLINER_ON_START)
]
handlers: nested_fanout.Handlers = Outline()
# A generated module exports what run() takes and returns; an audit log may be a Path.
options = single_agent.RunOptions(audit_log=Path("run.jsonl"), seed=1)
result: single_agent.RunResult | None = None
"""


def test_generated_scenario_modules_pass_mypy_strict(compiled: Compiled) -> None:
    app = compiled.out_dir / "scenario_app.py"
    app.write_text(APP, encoding="utf-8")
    modules = sorted(str(p) for p in compiled.out_dir.glob("*.py"))
    assert len(modules) >= 17
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *modules],
        capture_output=True,
        text=True,
        cwd=ROOT,  # the repo's (ignored) .mypy_cache keeps this run warm
        env={**os.environ, "MYPYPATH": str(compiled.out_dir)},
        check=False,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
