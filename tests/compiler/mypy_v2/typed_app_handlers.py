"""A well-typed handler function (the user module a `handler:` names)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow.runtime import AgentContext

if TYPE_CHECKING:
    from typed_app import ArchiverOutput


async def archive(ctx: AgentContext) -> ArchiverOutput:
    from typed_app import ArchiverOutput, outputs

    category: str = outputs(ctx).classifier.category
    return ArchiverOutput(stored=bool(category))
