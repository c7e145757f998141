"""DSL v2 emit: shape models, OUTPUT_MODELS/INPUT_MODEL, handler imports, typed accessors."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from pydantic import ValidationError

from agentflow.compiler.emit import emit_module
from agentflow.compiler.load import load_pipeline_text
from agentflow.runtime import AgentContext, TextOutput, WorkItem
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.errors import PipelineDefinitionError
from agentflow.runtime.models.dry_run import DryRunModel

from .emit_helpers import ROOT, import_source

PIPELINE = """\
name: emitted
input:
  ticket: str
  tier: {enum: [free, pro], description: The plan.}
agents:
  - id: classifier
    instructions: "Classify {{ input.ticket }}."
    output:
      category: {enum: [billing, bug]}
      note: optional[str]
      steps:
        type: list
        items: {title: str, done: bool}
      author: {type: object, fields: {name: str}}
    dispatch: {strategy: sequential, target: writer}
  - id: writer
    instructions: "Reply about {{ outputs.classifier.category }}."
    dispatch: {strategy: sequential, target: archiver}
  - id: archiver
    handler: HANDLERS:archive
    output:
      stored: bool
      category: {enum: [billing, bug]}
"""

HANDLERS = """\
from agentflow.runtime import AgentContext


async def archive(ctx: AgentContext):
    module = __import__("{module}")
    seen = module.outputs(ctx)
    assert isinstance(seen.writer.text, str)
    return module.ArchiverOutput(stored=True, category=seen.classifier.category)


def archive_sync(ctx: AgentContext):
    raise AssertionError("never called")
"""


@pytest.fixture
def emitted(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[types.ModuleType]:
    handlers = f"v2_handlers_{abs(hash(request.node.name))}"
    module = f"gen_{handlers}"
    (tmp_path / f"{handlers}.py").write_text(HANDLERS.replace("{module}", module))
    sys.path.insert(0, str(tmp_path))
    try:
        loaded = load_pipeline_text(PIPELINE.replace("HANDLERS", handlers), "e.yaml", tmp_path)
        source = emit_module(loaded)
        imported = import_source(source, module, tmp_path)
        sys.modules[module] = imported  # the handler module imports it back by name
        yield imported
    finally:
        sys.modules.pop(module, None)
        sys.modules.pop(handlers, None)
        sys.path.remove(str(tmp_path))


def test_models_validate_their_shapes(emitted: types.ModuleType) -> None:
    model = emitted.ClassifierOutput
    answer = model.model_validate(
        {"category": "bug", "steps": [{"title": "t", "done": True}], "author": {"name": "n"}}
    )
    assert answer.note is None and answer.steps[0].done is True
    with pytest.raises(ValidationError):
        model.model_validate({**answer.model_dump(), "category": "other"})
    with pytest.raises(ValidationError):
        model.model_validate({**answer.model_dump(), "surprise": 1})  # extra="forbid"
    schema = emitted.PipelineInput.model_json_schema()
    assert schema["properties"]["tier"]["description"] == "The plan."
    assert set(schema["required"]) == {"ticket", "tier"}


def test_compiled_pipeline_carries_the_models(emitted: types.ModuleType) -> None:
    assert dict(emitted.OUTPUT_MODELS) == {
        "classifier": emitted.ClassifierOutput,
        "archiver": emitted.ArchiverOutput,
    }
    assert emitted.INPUT_MODEL is emitted.PipelineInput
    assert emitted.COMPILED.output_models is emitted.OUTPUT_MODELS
    assert emitted.COMPILED.input_model is emitted.PipelineInput
    assert "archiver" not in emitted.PROMPTS  # a handler agent has no prompt


def test_typed_accessors(emitted: types.ModuleType) -> None:
    first = emitted.ClassifierOutput(category="bug", steps=[], author={"name": "n"})
    latest = emitted.ClassifierOutput(category="billing", steps=[], author={"name": "n"})
    ctx = AgentContext(
        "run-x", "archiver", WorkItem("main"), 1, {},
        outputs={"classifier": latest, "writer": TextOutput(text="hi")},
        history={"classifier": (first, latest)},
    )  # fmt: skip
    assert emitted.outputs(ctx).classifier is latest
    assert emitted.outputs(ctx).writer.text == "hi"
    assert emitted.history(ctx).classifier == (first, latest)
    assert emitted.history(ctx).writer == ()
    with pytest.raises(LookupError, match="agent 'archiver' has no output on work item 'main'"):
        _ = emitted.outputs(ctx).archiver


def test_a_v2_module_runs_end_to_end_on_the_dry_run_model(
    emitted: types.ModuleType, tmp_path: Path
) -> None:
    async def main() -> object:
        return await emitted.run(
            {"ticket": "My bill is wrong", "tier": "pro"},
            model=DryRunModel(),
            options=RunOptions(audit_log=tmp_path / "audit.jsonl"),
        )

    result = trio.run(main)
    assert result.status == "succeeded", result.reason  # type: ignore[attr-defined]
    assert result.final_state == "complete"  # type: ignore[attr-defined]


def test_a_sync_handler_is_refused_on_import(tmp_path: Path) -> None:
    handlers = "v2_sync_handlers"
    (tmp_path / f"{handlers}.py").write_text(HANDLERS.replace("{module}", "unused"))
    sys.path.insert(0, str(tmp_path))
    try:
        text = PIPELINE.replace("HANDLERS:archive", f"{handlers}:archive_sync")
        source = emit_module(load_pipeline_text(text, "e.yaml", tmp_path))
        with pytest.raises(PipelineDefinitionError, match=r"handler .* is not an async def"):
            import_source(source, "gen_sync_handlers", tmp_path)
    finally:
        sys.modules.pop(handlers, None)
        sys.path.remove(str(tmp_path))


def test_emit_is_deterministic_and_v1_modules_have_no_v2_parts(tmp_path: Path) -> None:
    text = PIPELINE.replace("HANDLERS", "anything")
    first = emit_module(load_pipeline_text(text, "e.yaml", tmp_path))
    assert first == emit_module(load_pipeline_text(text, "e.yaml", tmp_path))
    for path in (ROOT / "generated").glob("*.py"):
        source = path.read_text()
        if "input=ShapeSpec" in source or "output=ShapeSpec" in source or "handler=" in source:
            continue
        assert "OUTPUT_MODELS" not in source and "pydantic" not in source, path.name


def test_generated_names_do_not_clash(tmp_path: Path) -> None:
    text = """\
name: clash
agents:
  - id: a
    instructions: "x"
    output:
      b_item: {type: object, fields: {x: str}}
      b: {type: list, items: {y: int}}
      a_output: {enum: [p, q]}
"""
    source = emit_module(load_pipeline_text(text, "c.yaml", tmp_path))
    module = import_source(source, "gen_clash", tmp_path)
    assert module.AOutputBItem.model_fields.keys() == {"x"}  # b_item's object, named first
    assert module.AOutputBItem2.model_fields.keys() == {"y"}  # b's list items
    assert module.AOutput.model_fields.keys() == {"b_item", "b", "a_output"}
