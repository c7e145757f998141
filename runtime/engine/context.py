"""`AgentContext`: what one agent invocation may read, the run's services included."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from ..agents import JSON, AgentOutput, ChildResult, QAIssue, WorkItem
from ..spec import AgentSpec
from .payloads import issue_dicts
from .run_services import RunServices

__all__ = ["AgentContext", "new_context"]


@dataclass(frozen=True, slots=True)
class AgentContext:
    """Everything one agent invocation may read.

    `input` is the run's input; `upstream` the output of the agent that dispatched
    to this one (None for the entry agent); `feedback` the QA issues to address on
    a retry (empty on a first attempt); `attempt` counts this agent's runs on this
    work item, from 1. `outputs` maps each agent that already ran on this item or
    an ancestor item (the item a fan-out started from) to its latest output, the
    item's own first: a typed agent's output model instance, else a `TextOutput`.
    `history` maps each agent that ran on this item to all its outputs, oldest first.
    `joined` (a broadcast's join agent only) maps each target of the broadcast to its
    latest output on this item, or a `BranchFailure` when it failed; `children` (a
    fan-out's reduce agent only) is one `ChildResult` per child item, in item order.
    `source` is the agent whose output `upstream` is (None when there is none).
    """

    run_id: str
    agent: str
    item: WorkItem
    attempt: int
    input: JSON
    upstream: AgentOutput | None = None
    feedback: tuple[QAIssue, ...] = ()
    services: RunServices | None = field(default=None, repr=False, compare=False)
    outputs: Mapping[str, BaseModel] = field(default_factory=dict, hash=False)
    history: Mapping[str, tuple[BaseModel, ...]] = field(default_factory=dict, hash=False)
    joined: Mapping[str, BaseModel] = field(default_factory=dict, hash=False)
    children: tuple[ChildResult, ...] = ()
    source: str | None = None

    @property
    def spec(self) -> AgentSpec:
        """The agent's definition; requires a context built by the runtime."""
        if self.services is None:
            raise RuntimeError(
                "this AgentContext was built by hand, without run services; "
                "build it through agentflow.runtime.run_pipeline"
            )
        return self.services.pipeline.spec.agent(self.agent)

    def prompt_variables(self) -> Mapping[str, JSON]:
        """The variables an agent's prompt template may use (checked by the compiler)."""
        return {
            "input": self.input,
            "item": self.item.payload,
            "item_id": self.item.id,
            "upstream": self.upstream.text if self.upstream is not None else "",
            "feedback": issue_dicts(self.feedback),
            "attempt": self.attempt,
            "agent": self.agent,
            "outputs": {a: out.model_dump(mode="json") for a, out in self.outputs.items()},
            # every agent has a history, empty until it answers on this item, so
            # `{% for d in history.writer %}` works on a writer's first attempt
            "history": {
                **{agent.id: [] for agent in self._pipeline_agents()},
                **{
                    a: [out.model_dump(mode="json") for out in outs]
                    for a, outs in self.history.items()
                },
            },
            "joined": {a: out.model_dump(mode="json") for a, out in self.joined.items()},
            "children": [child.model_dump(mode="json") for child in self.children],
        }

    def _pipeline_agents(self) -> tuple[AgentSpec, ...]:
        return self.services.pipeline.spec.agents if self.services is not None else ()


_new_object = object.__new__
(
    _set_run_id, _set_agent, _set_item, _set_attempt, _set_input, _set_upstream,
    _set_feedback, _set_services, _set_outputs, _set_history, _set_joined, _set_children,
    _set_source,
) = (getattr(AgentContext, name).__set__ for name in AgentContext.__slots__)  # fmt: skip


def new_context(
    run_id: str,
    agent: str,
    item: WorkItem,
    attempt: int,
    input: JSON,
    upstream: AgentOutput | None,
    feedback: tuple[QAIssue, ...],
    services: RunServices | None,
    outputs: Mapping[str, BaseModel],
    history: Mapping[str, tuple[BaseModel, ...]],
    joined: Mapping[str, BaseModel],
    children: tuple[ChildResult, ...],
    source: str | None,
) -> AgentContext:
    """`AgentContext(...)` with every field given, without the frozen dataclass's
    `__init__` (its `object.__setattr__` per field): ~0.65 us instead of ~1.25, and the
    engine builds one per invocation. Pinned equal to the dataclass's own by
    tests/runtime/test_context.py::test_new_context_equals_the_dataclass_init."""
    ctx: AgentContext = _new_object(AgentContext)
    _set_run_id(ctx, run_id)
    _set_agent(ctx, agent)
    _set_item(ctx, item)
    _set_attempt(ctx, attempt)
    _set_input(ctx, input)
    _set_upstream(ctx, upstream)
    _set_feedback(ctx, feedback)
    _set_services(ctx, services)
    _set_outputs(ctx, outputs)
    _set_history(ctx, history)
    _set_joined(ctx, joined)
    _set_children(ctx, children)
    _set_source(ctx, source)
    return ctx
