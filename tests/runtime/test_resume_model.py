"""Resume with a model (the real SDK against the fake Anthropic API) and tools: recorded
model turns and tool results are served from the store, never requested or executed
again; a sub-pipeline's committed turns likewise. Requests are counted at the server
by their key (`agentflow-key:` in the system prompt)."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.store import RunStore
from tests.fake_anthropic.server import (
    HangReply,
    RecordedRequest,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)

from .resume_harness import check_log, resume, same_outcome, start_run

KEY = "sk-ant-api03-RESUME-MODEL-FAKE-KEY-0b4d"
KEYLINE = "agentflow-key: agent={{ agent }} item={{ item_id }} attempt={{ attempt }}"


class CountingTool:
    """A plugin tool that counts its executions."""

    id = "notes"
    description = "Look up a note by name."
    input_schema = {"type": "object", "properties": {"name": {"type": "string"}}}

    def __init__(self) -> None:
        self.executed: list[dict[str, Any]] = []

    async def execute(self, input: dict[str, Any]) -> str:
        self.executed.append(dict(input))
        return f"note {input.get('name')}: trio nurseries own their tasks"


TOOLS = """\
name: noted
tools:
  - id: notes
    type: plugin
    plugin: tests.runtime.test_resume_model:CountingTool
    description: Look up a note by name.
agents:
  - id: researcher
    instructions: |
      {keyline}
      Research {{{{ input }}}} with the notes tool.
    tools: [notes]
    dispatch: {{strategy: sequential, target: writer}}
  - id: writer
    instructions: |
      {keyline}
      Write about {{{{ upstream }}}}.
"""


class _Interrupting:
    """Answers by request key; cancels `scope` (and hangs) on the request `cut` names."""

    def __init__(self, answers: dict[tuple[str, int], Any]) -> None:
        self.answers = answers
        self.cut: tuple[str, int] | None = None
        self.scope: trio.CancelScope | None = None

    def __call__(self, request: RecordedRequest) -> Any:
        key = request.key
        assert key is not None, request.body.get("system")
        if self.cut == (key.agent, key.turn) and self.scope is not None:
            self.scope.cancel()
            self.cut = None
            return HangReply()
        return self.answers[(key.agent, key.turn)]


def _keys(requests: list[RecordedRequest]) -> Counter[tuple[str, str, int, int]]:
    return Counter(
        (k.agent, k.item, k.attempt, k.turn) for r in requests if (k := r.key) is not None
    )


async def test_a_recorded_tool_result_and_model_turns_are_served_not_made_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "noted.yaml"
    path.write_text(TOOLS.format(keyline=KEYLINE))
    module = compile_and_import(path)
    compiled = module.compiled
    script = _Interrupting(
        {
            ("researcher", 1): tool_reply("notes", {"name": "trio"}),
            ("researcher", 2): text_reply("nurseries own tasks"),
            ("writer", 1): text_reply("A nursery owns its tasks."),
        }
    )
    async with open_fake_anthropic(script) as fake:
        with RunStore.open(str(tmp_path / "store.db")) as store:
            async with AnthropicModel(api_key=KEY, base_url=fake.base_url) as model:
                whole_tool = CountingTool()
                expected = await start_run(
                    store, compiled, module.default_handlers(), "run-00000000aaaa",
                    tmp_path / "a.jsonl", "trio", model=model, tools={"notes": whole_tool},
                )  # fmt: skip
                assert expected is not None and expected.ok
                whole = len(fake.requests)
                # Cut while the researcher's 2nd turn is in flight: its 1st turn and the
                # tool's result are committed.
                script.cut, script.scope = ("researcher", 2), trio.CancelScope()
                tool = CountingTool()
                log = tmp_path / "b.jsonl"
                cut = await start_run(
                    store, compiled, module.default_handlers(), "run-00000000bbbb", log, "trio",
                    scope=script.scope, model=model, tools={"notes": tool},
                )  # fmt: skip
                assert cut is None
                first = _keys(fake.requests[whole:])
                memo = store.memo("run-00000000bbbb")
                assert set(memo.model_calls) == {("researcher", "main", 1, 1)}
                assert list(memo.tool_calls.values()) == [
                    {"output": "note trio: trio nurseries own their tasks"}
                ]
                before = len(fake.requests)
                result = await resume(
                    store, compiled, module.default_handlers(), "run-00000000bbbb", log,
                    model=model, tools={"notes": tool},
                )  # fmt: skip
                second = _keys(fake.requests[before:])
            same_outcome(result, expected)
            assert len(tool.executed) == 1  # the recorded tool result was served
            # The resume sent the turn that was in flight and the writer's; the
            # committed researcher turn 1 was never sent again.
            assert first == Counter(
                {("researcher", "main", 1, 1): 1, ("researcher", "main", 1, 2): 1}
            )
            assert second == Counter({("researcher", "main", 1, 2): 1, ("writer", "main", 1, 1): 1})
            check_log(store, "run-00000000bbbb", log)
            record = store.run("run-00000000bbbb")
            assert record.model_calls == 3  # every answered call in the log, once


CHILD = """\
name: team-child
agents:
  - id: researcher
    instructions: |
      {keyline}
      Research {{{{ input }}}}.
    dispatch: {{strategy: sequential, target: writer}}
  - id: writer
    instructions: |
      {keyline}
      Write about {{{{ upstream }}}}.
"""

PARENT = """\
name: team-parent
agents:
  - id: team
    pipeline: kids/child.yaml
    dispatch: {{strategy: sequential, target: editor}}
  - id: editor
    instructions: |
      {keyline}
      Edit {{{{ upstream }}}}.
"""


async def test_a_sub_pipeline_interrupted_inside_resumes_with_its_turns_served(
    tmp_path: Path,
) -> None:
    (tmp_path / "kids").mkdir()
    (tmp_path / "kids" / "child.yaml").write_text(textwrap.dedent(CHILD).format(keyline=KEYLINE))
    path = tmp_path / "parent.yaml"
    path.write_text(textwrap.dedent(PARENT).format(keyline=KEYLINE))
    module = compile_and_import(path)
    compiled = module.compiled
    script = _Interrupting(
        {
            ("researcher", 1): text_reply("facts about trio"),
            ("writer", 1): text_reply("a draft about trio"),
            ("editor", 1): text_reply("an edited draft about trio"),
        }
    )
    async with open_fake_anthropic(script) as fake:
        with RunStore.open(str(tmp_path / "store.db")) as store:
            async with AnthropicModel(api_key=KEY, base_url=fake.base_url) as model:
                expected = await start_run(
                    store, compiled, module.default_handlers(), "run-00000000aaaa",
                    tmp_path / "a.jsonl", "trio", model=model,
                )  # fmt: skip
                assert expected is not None and expected.ok
                whole = len(fake.requests)
                script.cut, script.scope = ("writer", 1), trio.CancelScope()
                log = tmp_path / "b.jsonl"
                cut = await start_run(
                    store, compiled, module.default_handlers(), "run-00000000bbbb", log, "trio",
                    scope=script.scope, model=model,
                )  # fmt: skip
                assert cut is None
                before = len(fake.requests)
                result = await resume(
                    store, compiled, module.default_handlers(), "run-00000000bbbb", log,
                    model=model,
                )  # fmt: skip
                first, second = _keys(fake.requests[whole:before]), _keys(fake.requests[before:])
            same_outcome(result, expected)
            child = "main/team/1"
            assert first == Counter({("researcher", child, 1, 1): 1, ("writer", child, 1, 1): 1})
            # The child's researcher turn was committed: served, never requested again.
            assert second == Counter({("writer", child, 1, 1): 1, ("editor", "main", 1, 1): 1})
            check_log(store, "run-00000000bbbb", log)
