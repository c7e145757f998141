"""Checks of human agents (`human:` / `kind: human`, docs/human.md).

A human agent's invocation is answered by a person: the run parks its item
until `agentflow answer` records an answer, validated against the agent's
declared `output:`. So it needs that shape, makes no model call (model settings
and tools have no effect on it), answers typed data rather than a QA verdict,
and lives in a top-level pipeline (a sub-pipeline's run cannot park).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from agentflow.runtime.spec import AgentSpec, PipelineSpec

from .checks_base import CheckContext, agent_paths
from .diagnostics import Diagnostic
from .parse import Path, SourceMap

__all__ = ["check_human_agents", "check_human_children", "human_path"]

_MODEL_SETTINGS = ("tools", "model", "max_tokens", "temperature", "max_tool_rounds")
"""Agent keys that configure a model call: meaningless on a human agent."""


def human_path(ctx_source: SourceMap, path: Path) -> Path:
    """Where an agent's human step is written: its `human:` key, or `kind: human`."""
    human = (*path, "human")
    return human if human in ctx_source.keys else (*path, "kind")


def check_human_agents(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Each human agent declares its answer's shape and nothing a person cannot use."""
    spec = ctx.spec
    for path, agent in agent_paths(ctx):
        if agent.human is None:
            continue
        where = human_path(ctx.source, path)
        who = f"agent '{agent.id}' is answered by a person"
        if agent.human.question is not None and not agent.human.question.strip():
            yield ctx.at((*where, "question"), f"{who}: 'question' is empty; name a file")
        assignee = agent.human.assignee
        if assignee is not None and not assignee.strip():
            yield ctx.at((*where, "assignee"), f"{who}: 'assignee' is empty; name who answers")
        if spec.output_kind(agent) == "verdict":
            yield _at_key(
                ctx,
                where,
                f"{who}, who answers typed data, not a QA verdict: it cannot have 'on_fail' "
                "or be an aggregation gate; put a QA agent after it (its verdict can reject "
                "the answer and re-ask the person)",
            )
        elif agent.output is None:
            yield _at_key(ctx, where, _needs_output(agent, who))
        for key in _MODEL_SETTINGS:
            if ctx.source.has((*path, key)):
                yield _at_key(
                    ctx,
                    (*path, key),
                    f"{who}: '{key}' has no effect here (a person answers, no model is "
                    "called); remove it",
                )


def _at_key(ctx: CheckContext, path: Path, message: str) -> Diagnostic:
    loc = ctx.source.key(path)
    return Diagnostic(loc.file, loc.line, loc.column, message)


def _needs_output(agent: AgentSpec, who: str) -> str:
    if agent.dispatch is not None and agent.dispatch.strategy == "route":
        on = agent.dispatch.on or "route"
        return (
            f"{who}: declare the answer's shape with 'output:'; a human router has no "
            f"implicit output, so give it the field its 'on: {on}' reads, e.g. "
            f"output: {{{on}: {{enum: [{', '.join(agent.dispatch.cases) or 'a, b'}]}}}}"
        )
    return (
        f"{who}: declare the answer's shape with 'output:' (what the person fills in), "
        "e.g. output: {approved: bool, comment: str}"
    )


class _Child(Protocol):
    """What this check reads of a loaded child (`load.LoadedPipeline`)."""

    @property
    def spec(self) -> PipelineSpec: ...


def check_human_children(
    spec: PipelineSpec, source: SourceMap, children: Mapping[str, _Child]
) -> Iterator[Diagnostic]:
    """A sub-pipeline holds no human agent: its run is one invocation of the parent's
    agent and cannot park (docs/human.md)."""
    for index, agent in enumerate(spec.agents):
        child = children.get(agent.id)
        if child is None:
            continue
        humans = [inner.id for inner in child.spec.agents if inner.human is not None]
        if humans:
            loc = source.value(("agents", index, "pipeline"))
            yield Diagnostic(
                loc.file,
                loc.line,
                loc.column,
                f"agent '{agent.id}': sub-pipeline '{agent.pipeline}' has the human agent "
                f"'{humans[0]}'; a sub-pipeline cannot wait for a person (its run is one "
                "step of this one): move the human step into this pipeline",
            )
