"""A secret a tool reads (the environment, a key file) never reaches the audit log
or the model: tool outputs and errors are scrubbed like the model's own answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow.runtime import RunOptions
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.models.base import ModelRequest, ModelTurn, TextSink, ToolCall

KEY = "sk-ant-api03-TOOL-RESULT-CANARY-7f3e9a"

PIPELINE = """\
name: tool-leak
tools:
  - id: filesystem
    type: builtin
    config: {root: files}
agents:
  - id: reader
    instructions: "read the notes"
    tools: [filesystem]
"""


class _ReadsThenAnswers:
    """A model that reads `notes.txt`, then a missing file, then answers."""

    name = "scripted"

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        self.requests.append(request)
        if request.turn == 1:
            return ModelTurn(
                tool_calls=(
                    ToolCall("c1", "filesystem", {"op": "read", "path": "notes.txt"}),
                    ToolCall("c2", "filesystem", {"op": "read", "path": f"{KEY}.txt"}),
                ),
                stop_reason="tool_use",
            )
        return ModelTurn(text="done")


async def test_a_key_a_tool_reads_is_scrubbed_from_events_and_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "notes.txt").write_text(f"ANTHROPIC_API_KEY={KEY}\n", encoding="utf-8")
    (tmp_path / "p.yaml").write_text(PIPELINE, encoding="utf-8")
    module = compile_and_import(tmp_path / "p.yaml").module
    model = _ReadsThenAnswers()
    log = tmp_path / "run.jsonl"
    result = await module.run("x", model=model, options=RunOptions(audit_log=log))
    assert result.ok, result.reason
    text = log.read_text(encoding="utf-8")
    results = [json.loads(line) for line in text.splitlines() if '"tool_result"' in line]
    assert len(results) == 2
    assert results[0]["payload"]["output"] == "ANTHROPIC_API_KEY=[redacted]\n"
    assert "[redacted]" in results[1]["payload"]["error"]  # the path echoed in the error
    assert KEY not in text
    assert KEY not in json.dumps(model.requests[1].messages)


def test_a_model_that_scrubs_its_own_answers_is_not_scrubbed_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # AnthropicModel scrubs its key (and the environment's) itself: the run's answer
    # redactor keeps only what the model does not know, tools still get all of it.
    from agentflow.runtime.engine.run_services import RunServices

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    class SelfScrubbing(_ReadsThenAnswers):
        secrets = (KEY,)

    plain = RunServices(pipeline=None, model=_ReadsThenAnswers(), tools={}, hub=None)  # type: ignore[arg-type]
    own = RunServices(pipeline=None, model=SelfScrubbing(), tools={}, hub=None)  # type: ignore[arg-type]
    assert plain.answer_redactor.secrets == (KEY,)
    assert own.answer_redactor.secrets == ()
    assert own.redactor.secrets == (KEY,)
