"""Tool instances passed to `run_pipeline(tools=...)` reach a sub-pipeline's agents.

The app's `tools` argument takes precedence over plugin factories and builtins
(`ToolTable`), for the parent's agents and for every child's: a child that
declares a tool of the same id uses the caller's instance, not a fresh one.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentflow.runtime import RunOptions
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.models.anthropic import AnthropicModel
from tests.fake_anthropic.server import open_fake_anthropic, text_reply, tool_reply

KEY = "sk-ant-api03-SUBPIPELINE-TOOLS-FAKE-KEY-19c2"

CHILD = """\
name: tools-child
input:
  topic: str
tools:
  - id: lookup
    type: plugin
    plugin: "agentflow.runtime.tools.examples:WordCountTool"
agents:
  - id: researcher
    instructions: "Research {{ input.topic }} with the lookup tool."
    tools: [lookup]
"""

PARENT = """\
name: tools-parent
input:
  topic: str
agents:
  - id: team
    pipeline: kids/child.yaml
"""


class RecordingLookup:
    """The caller's own `lookup` tool: records every input it executes."""

    id = "lookup"
    description = "Look a word up."
    input_schema: Mapping[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def execute(self, input: Mapping[str, Any]) -> Any:
        self.calls.append(dict(input))
        return {"found": "callers-instance"}


async def test_a_child_agent_uses_the_tool_instance_the_caller_passed(tmp_path: Path) -> None:
    (tmp_path / "kids").mkdir()
    (tmp_path / "kids" / "child.yaml").write_text(textwrap.dedent(CHILD))
    parent = tmp_path / "parent.yaml"
    parent.write_text(textwrap.dedent(PARENT))
    module = compile_and_import(parent).module
    lookup = RecordingLookup()
    replies = [tool_reply("lookup", {"text": "bees"}), text_reply("Bees are insects.")]
    async with (
        open_fake_anthropic(replies) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
    ):
        result = await module.run(
            {"topic": "bees"},
            model=model,
            tools={"lookup": lookup},
            options=RunOptions(audit_log=tmp_path / "run.jsonl", backoff_scale=0.0),
        )
    assert result.status == "succeeded", result.reason
    assert lookup.calls == [{"text": "bees"}]
    tool_result = fake.requests[1].body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"
    assert "callers-instance" in str(tool_result["content"])
