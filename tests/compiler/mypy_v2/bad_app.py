"""Misuses of the typed surfaces that mypy must reject (each `# error: <code>` line)."""

from __future__ import annotations

import typed_app
from typed_app import ArchiverOutput, ClassifierOutput, history, outputs

from agentflow.runtime import AgentContext, AgentOutput, TextOutput


class TextForTyped(typed_app.DefaultHandlers):
    async def classifier(self, ctx: AgentContext) -> AgentOutput:  # error: override
        return AgentOutput(text="billing")


class WrongShape(typed_app.DefaultHandlers):
    async def classifier(self, ctx: AgentContext) -> ArchiverOutput:  # error: override
        return ArchiverOutput(stored=True)


class MissingField(typed_app.DefaultHandlers):
    async def classifier(self, ctx: AgentContext) -> ClassifierOutput:
        return ClassifierOutput(category="billing")  # error: call-arg


class WrongValue(typed_app.DefaultHandlers):
    async def classifier(self, ctx: AgentContext) -> ClassifierOutput:
        return ClassifierOutput(category="billing", urgency=1, extra=2)  # error: call-arg


def read(ctx: AgentContext) -> None:
    urgency: str = outputs(ctx).classifier.urgency  # error: assignment
    print(outputs(ctx).classifier.summary)  # error: attr-defined
    print(outputs(ctx).nobody)  # error: attr-defined
    outputs("classifier")  # error: arg-type
    text: TextOutput = outputs(ctx).writer
    print(text.category)  # error: attr-defined
    first: ClassifierOutput = history(ctx).classifier  # error: assignment
    model: type[ClassifierOutput] = typed_app.INPUT_MODEL  # error: assignment
    del urgency, text, first, model


def make_input() -> None:
    typed_app.PipelineInput(tiket="x", tier="free")  # error: call-arg


def tier_is_one(given: typed_app.PipelineInput) -> bool:
    return given.tier == 1  # error: comparison-overlap


def is_other(ctx: AgentContext) -> bool:
    return outputs(ctx).classifier.category == "other"  # error: comparison-overlap


async def run_on_a_number() -> None:
    await typed_app.run(42)  # error: arg-type
