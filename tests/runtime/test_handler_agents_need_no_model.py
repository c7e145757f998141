"""A pipeline whose agents are all `handler:` functions runs with model=None and no
key: the generated DefaultHandlers' methods for them call the function, not a model
(they were counted as agents that run from their prompt: NoModelError)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentflow.runtime import run_pipeline
from agentflow.runtime.cli.compiled_loader import compile_and_import

HANDLERS = """
from agentflow.runtime import AgentContext, AgentOutput


async def shout(ctx: AgentContext) -> AgentOutput:
    return AgentOutput(text=str(ctx.input).upper())
"""


async def test_handler_agents_run_without_a_model_or_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    (tmp_path / "shout_handlers_x.py").write_text(HANDLERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "shout.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: shout-x
            agents:
              - id: shout
                handler: shout_handlers_x:shout
            """
        )
    )
    module = compile_and_import(path)
    result = await run_pipeline(module.compiled, "hi", handlers=module.default_handlers())
    assert result.ok and result.items[0].output == "HI"
