"""Prompt variables a new user reaches for first: history before any output,
fields named like dict methods, and render errors that list what exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow.runtime import RunOptions
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.prompting import PromptRenderer, PromptRenderError
from agentflow.runtime.models.base import ModelRequest, ModelTurn, TextSink
from agentflow.runtime.models.dry_run import DryRunModel

HISTORY_LOOP = """\
name: hist-one
agents:
  - id: writer
    instructions: >-
      Write about {{ input }}. {% for d in history.writer %}old: {{ d.text }}{% endfor %}
      n={{ history.writer | length }}
    dispatch: {strategy: sequential, target: checker}
  - id: checker
    instructions: "Check {{ outputs.writer.text }}"
    retry: {max_attempts: 2, backoff_ms: 0}
    on_fail: {action: feedback_and_retry, target: writer}
"""

METHOD_NAMES = """\
name: method-names
input:
  values: str
agents:
  - id: a
    instructions: "x"
    output: {items: list[str], keys: str}
    dispatch: {strategy: sequential, target: b}
  - id: b
    instructions: "I={{ outputs.a.items }} K={{ outputs.a.keys }} V={{ input.values }}"
"""


class _Recording:
    """The dry-run model, keeping every request it was sent (the prompts are not in events)."""

    name = "dry-run"

    def __init__(self, fail_first: int = 0) -> None:
        self.inner = DryRunModel(fail_first=fail_first)
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        self.requests.append(request)
        return await self.inner.complete(request, on_text)


async def _prompts(
    tmp_path: Path, text: str, given: object, agent: str, fail_first: int = 0
) -> list[str]:
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    module = compile_and_import(tmp_path / "p.yaml").module
    model = _Recording(fail_first)
    options = RunOptions(audit_log=tmp_path / "run.jsonl")
    result = await module.run(given, model=model, options=options)
    assert result.ok, result
    return [r.system + json.dumps(r.messages) for r in model.requests if r.agent == agent]


async def test_history_of_an_agent_that_has_not_answered_yet_is_empty(tmp_path: Path) -> None:
    prompts = await _prompts(tmp_path, HISTORY_LOOP, "x", "writer", fail_first=1)
    assert len(prompts) == 2  # the checker failed the first draft once
    assert "old:" not in prompts[0] and "n=0" in prompts[0]
    assert "old:" in prompts[1] and "n=1" in prompts[1]


async def test_fields_named_like_dict_methods_render_their_values(tmp_path: Path) -> None:
    (prompt,) = await _prompts(tmp_path, METHOD_NAMES, {"values": "VAL"}, "b")
    assert "built-in method" not in prompt
    assert "V=VAL" in prompt and "I=[" in prompt


def test_a_render_error_lists_the_variables_there_are() -> None:
    with pytest.raises(PromptRenderError) as caught:
        PromptRenderer({"a": "{{ nope.x }}"}).render("a", {"input": 1, "outputs": {}})
    assert "(input, outputs)" in str(caught.value)


def test_dict_keys_win_over_methods_but_methods_stay_for_other_names() -> None:
    renderer = PromptRenderer({"a": "{{ d.items }}|{{ d.get('k') }}|{{ d.values }}"})
    assert renderer.render("a", {"d": {"items": [1], "k": "v", "values": 3}}) == "[1]|v|3"
