"""Uses of a router's case Literal, joined(ctx) and children(ctx): each `# error: <code>`
line must be a mypy error with that code, and no other line may be one."""

from __future__ import annotations

import route_app
from route_app import JokeWriterOutput, RouterCase, RouterOutput, children, joined

from agentflow.runtime import AgentContext, TextOutput
from agentflow.runtime.agents import BranchFailure, ChildResult


class KnownRoute(route_app.DefaultHandlers):
    async def router(self, ctx: AgentContext) -> RouterOutput:
        return RouterOutput(route="write")


class UnknownRoute(route_app.DefaultHandlers):
    async def router(self, ctx: AgentContext) -> RouterOutput:
        return RouterOutput(route="wrte")  # error: arg-type


def choose(urgent: bool) -> RouterCase:
    return "split" if urgent else "stop"


def choose_badly(name: str) -> RouterCase:
    return name  # error: return-value


def read_joined(ctx: AgentContext) -> str:
    joke = joined(ctx).joke_writer
    if isinstance(joke, BranchFailure):
        return joke.error
    poem: TextOutput | BranchFailure = joined(ctx).poem_writer
    model: JokeWriterOutput = joined(ctx).joke_writer  # error: assignment
    print(joined(ctx).joke_writer.joke)  # error: union-attr
    print(joined(ctx).combiner)  # error: attr-defined
    del poem, model
    return joke.joke


def read_children(ctx: AgentContext) -> list[str]:
    found: tuple[ChildResult, ...] = children(ctx)
    print(children(ctx).status)  # error: attr-defined
    return [child.id for child in found if child.status == "completed"]
