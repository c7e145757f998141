"""Running a sub-pipeline (`pipeline: child.yaml`, DSL v2 section 6) as one agent.

`run_subpipeline` is the default body of a sub-pipeline agent (the generated
module's `DefaultHandlers` calls it with the child module's `COMPILED` and
`DefaultHandlers()`). The child runs inside the parent's run, on the parent's
services: one run id, one audit log (through `ChildHub`), one model and
model-call limiter, one budget, and the parent's cancel scope around it (the
child's tasks live in the parent agent's task). It has its own `Dispatcher`,
so its items, QA loops and state machine are its own:

- its main item is `<parent item>/<agent>/<attempt>`, so its ids (and its
  fan-out children's, `<main>.1`, ...) never collide with the parent's, nor with
  another invocation's;
- its events carry agent ids `<agent>.<child agent>` and the payload key
  `"subpipeline": "<agent>"` (nested: `"outer.inner"`), which `agentflow verify`
  uses to keep the child's items and transitions apart from the parent's; its
  model requests name its agents the same way (`ChildModel`), so the run's log
  replays as a cassette (`agentflow run --replay`);
- its state machine settles as a run's would (`run_result.settle`), and it
  succeeds exactly when it would succeed as a run on its own; then the agent's
  output is the text of its main item's last non-QA output. Otherwise the agent
  fails (`SubpipelineFailed`, naming the child and its reason) and the parent's
  item aborts. A run-ending error in the child (an exceeded budget, an invalid
  transition, a bad handler object) ends the parent's run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ..agents import AgentOutput
from ..errors import AgentflowError
from ..events.event import EventKind, PipelineEvent
from ..events.hub import EventHub
from ..models.base import Model, ModelRequest, ModelTurn, TextSink, accepts_keyword
from ..models.rate_limit import WaitCallback
from ..pipeline import CompiledPipeline
from .context import AgentContext
from .dispatcher import Dispatcher
from .governor import RetryGovernor
from .plan import resolve_handlers
from .run_result import run_status, settle
from .run_services import RunServices, ToolTable
from .runner import validated_input

__all__ = ["SUBPIPELINE_KEY", "ChildHub", "SubpipelineFailed", "child_item_id", "run_subpipeline"]

SUBPIPELINE_KEY = "subpipeline"
"""The payload key that marks a sub-pipeline's event; its value is the agent namespace."""


class SubpipelineFailed(AgentflowError):
    """A sub-pipeline's run failed, was aborted or ended in a non-terminal state."""


class ChildHub(EventHub):
    """The parent run's hub as a sub-pipeline's engine sees it.

    Every event goes to the parent hub (one sequence, one hash chain, one log) with
    its agent id prefixed by `namespace`, `"subpipeline": namespace` in its
    payload, and the child's main item `item_id` on events that name no item (the
    child's settling transition, a run-ending error). The engine only publishes,
    emits and flushes: none of the hub's own state (sinks, history, lifecycle)
    lives here, so this class does not run `EventHub.__init__`.
    """

    def __init__(self, parent: EventHub, namespace: str, item_id: str) -> None:
        self._parent = parent
        self._namespace = namespace
        self._item_id = item_id
        self.run_id = parent.run_id
        self.pipeline_hash = parent.pipeline_hash

    def _tagged(
        self, agent: str | None, payload: dict[str, Any] | None
    ) -> tuple[str | None, dict[str, Any]]:
        namespace = self._namespace
        tagged = dict(payload) if payload is not None else {}
        inner = tagged.get(SUBPIPELINE_KEY)
        tagged[SUBPIPELINE_KEY] = namespace if inner is None else f"{namespace}.{inner}"
        return (None if agent is None else f"{namespace}.{agent}"), tagged

    def emit(
        self,
        kind: EventKind,
        *,
        agent: str | None = None,
        item: str | None = None,
        attempt: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> PipelineEvent:
        agent, payload = self._tagged(agent, payload)
        item = self._item_id if item is None else item
        return self._parent.emit(kind, agent=agent, item=item, attempt=attempt, payload=payload)

    def publish(
        self,
        kind: EventKind,
        *,
        agent: str | None = None,
        item: str | None = None,
        attempt: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        agent, payload = self._tagged(agent, payload)
        item = self._item_id if item is None else item
        self._parent.publish(kind, agent=agent, item=item, attempt=attempt, payload=payload)

    def flush(self) -> None:
        self._parent.flush()

    @contextmanager
    def flushing_before_waits(self) -> Iterator[None]:
        with self._parent.flushing_before_waits():  # the parent holds the lines
            yield


class ChildModel:
    """The parent run's model as a sub-pipeline's agents call it: each request names its
    agent as the log does (`<namespace>.<agent>`), so the run's log (`--replay`) and a
    cassette recorded from it replay the child's turns."""

    def __init__(self, parent: Model, namespace: str) -> None:
        self._parent = parent
        self._namespace = namespace
        self.name = parent.name
        self.secrets: tuple[str, ...] = tuple(getattr(parent, "secrets", ()) or ())

    async def complete(
        self,
        request: ModelRequest,
        on_text: TextSink | None = None,
        *,
        on_retry: Callable[[str, int, float], None] | None = None,
        on_wait: WaitCallback | None = None,
    ) -> ModelTurn:
        """The parent's answer; its retries and rate-limit waits are reported to the
        child's callbacks (`model_error`, `rate_limited` events) when the parent's model
        reports them."""
        named = replace(request, agent=f"{self._namespace}.{request.agent}")
        parent = self._parent
        callbacks: dict[str, Any] = {}
        if on_retry is not None and accepts_keyword(parent, "on_retry"):
            callbacks["on_retry"] = on_retry
        if on_wait is not None and accepts_keyword(parent, "on_wait"):
            callbacks["on_wait"] = on_wait
        complete: Any = parent.complete
        return await complete(named, on_text, **callbacks)  # type: ignore[no-any-return]


def child_item_id(ctx: AgentContext) -> str:
    """The sub-pipeline's main item id: `<parent item>/<agent>/<attempt>`."""
    return f"{ctx.item.id}/{ctx.agent}/{ctx.attempt}"


def _child_input(ctx: AgentContext, services: RunServices) -> object:
    """What the parent passes (compiler/checks_pipeline.py checks it statically): the run
    input for the entry agent, the work item when a fan-out started it, else the
    upstream's output (its typed data, or its text): a route looping back to a fan-out's
    target passes the router's output."""
    source = services.pipeline.spec.agent(ctx.source) if ctx.source is not None else None
    dispatch = source.dispatch if source is not None else None
    if (
        dispatch is not None
        and dispatch.strategy == "parallel_fan_out"
        and dispatch.target == ctx.agent
        and ctx.item.parent is not None
    ):
        return ctx.item.payload
    upstream = ctx.upstream
    if upstream is None:
        return ctx.input
    return upstream.data if upstream.data is not None else upstream.text


def _declared_fields(child: CompiledPipeline, value: object) -> object:
    """The fields of `value` the child's `input:` declares: a child takes what it names
    and ignores the rest of what its parent passes (checked at compile time)."""
    shape = child.spec.input
    if shape is None or not isinstance(value, dict):
        return value
    names = {named.name for named in shape.fields}
    return {key: field for key, field in value.items() if key in names}


async def run_subpipeline(
    ctx: AgentContext, child: CompiledPipeline, handlers: object
) -> AgentOutput:
    """Run `child` as the invocation `ctx` and return its result (see the module docstring).

    Raises:
        SubpipelineFailed: the child's run did not succeed (the message names the child
            and why); its input did not match the child's `input:` (RunInputError).
        BudgetExceededError, InvalidTransition, PipelineDefinitionError: run-ending
            errors of the child, which end the parent's run too.
    """
    services = ctx.services
    if services is None:
        raise RuntimeError(
            "run_subpipeline needs a context built by the runtime (run the parent pipeline "
            "with run_pipeline)"
        )
    name, main_id = child.spec.name, child_item_id(ctx)
    child_input = validated_input(child, _declared_fields(child, _child_input(ctx, services)))
    max_concurrency = services.max_concurrency or child.spec.defaults.max_concurrency
    child_services = RunServices(
        pipeline=child,
        model=ChildModel(services.model, ctx.agent),
        tools=(
            services.tools.for_child(child)
            if isinstance(services.tools, ToolTable)
            else ToolTable(child, None)
        ),
        hub=ChildHub(services.hub, ctx.agent, main_id),
        model_limiter=services.model_limiter,
        budget=services.budget,
        backoff_scale=services.backoff_scale,
        seed=services.seed,
        max_concurrency=services.max_concurrency,
        memo=None if services.memo is None else services.memo.child(ctx.agent, main_id),
    )
    governor = RetryGovernor(child.spec, backoff_scale=services.backoff_scale, seed=services.seed)
    engine = Dispatcher(
        child,
        resolve_handlers(child, handlers),
        child_services,
        governor,
        run_id=ctx.run_id,
        input=child_input,
        max_concurrency=max_concurrency,
    )
    await engine.run(main_id)
    if engine.fatal is not None:
        raise engine.fatal
    settle(child, engine)
    status, reason = run_status(engine, services.budget)
    if status != "succeeded":
        raise SubpipelineFailed(f"sub-pipeline '{name}' {status}: {reason}")
    return AgentOutput(text=engine.items[0].output)
