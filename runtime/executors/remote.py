"""The worker side of a remote invocation, and what crosses the wire (no Ray here).

An orchestrator (the run's own trio process: it owns the hash chain and every
store write) sends an `InvocationRequest`; a `Worker` (one per Ray actor
process) runs the invocation in its own `trio.run` on a thread of its own and
streams `Message`s back:

- `("events", events)`: a burst of events, in the order the body emitted them;
- `("barrier", n, events, op)`: the burst, then `op`, a memo row to commit
  (`("record_turn", turn, request, digest, result)` or
  `("record_tool", turn, call_id, result)`), and the body waits until the
  orchestrator acknowledges `n` (`Worker.ack`): with a run store, a model turn's
  answer and a tool's result are committed by the orchestrator, in the run's
  memo, before the invocation proceeds, as in-process (DURABLE.md: commit before
  proceed; `engine/memo.py`). Without a store the body never waits;
- `("done", events, answer)` or `("failed", events, exception)`: the end.

An event is `(kind, agent, item, attempt, payload)`; the orchestrator publishes
it on its hub exactly as the body would have in-process. In the same ordered
bursts, kinds that start with `@` are what the body did to the run's state:
`@charge` (usage for the run's budget), and for a resume `@served_turn`,
`@went_live`, `@tool_served` (the memo's counters and replay filter). A resumed
invocation carries its recorded turns and tool results (`MemoView`); a
re-submitted one (its worker died) those the lost worker already reported
(`Recorded`): both are served again, not repeated.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import pickle
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import trio
from pydantic import BaseModel

from ..agents import JSON, AgentOutput, ChildResult, QAIssue, WorkItem
from ..engine.context import AgentContext
from ..engine.plan import Handler, resolve_handlers
from ..engine.run_services import RunBudget, RunServices, ToolTable
from ..errors import AgentflowError, ToolError
from ..events.event import EventKind, PipelineEvent, new_event
from ..events.hub import EventHub
from ..models.base import Model, ModelRequest, ModelTurn, TextSink, ToolCall
from ..pipeline import CompiledPipeline
from ..tools.base import Tool
from ..usage import Usage

__all__ = [
    "BARRIER",
    "DONE",
    "EVENTS",
    "FAILED",
    "EventTuple",
    "InvocationRequest",
    "Loader",
    "MemoView",
    "Message",
    "ModelFactory",
    "Recorded",
    "Worker",
    "recorded_tool_result",
    "recorded_turn",
]

EVENTS: Literal["events"] = "events"
BARRIER: Literal["barrier"] = "barrier"
DONE: Literal["done"] = "done"
FAILED: Literal["failed"] = "failed"

_MODEL_RESPONSE = EventKind.MODEL_RESPONSE

EventTuple = tuple[str, str | None, str | None, int | None, dict[str, Any] | None]
"""(kind, agent, item, attempt, payload): one event as the body emitted it."""
Message = tuple[Any, ...]
"""One streamed message (see the module docstring)."""

Loader = Callable[[], tuple[CompiledPipeline, object]]
"""Builds, in the worker, the run's pipeline and its handlers object (picklable)."""
ModelFactory = Callable[[CompiledPipeline], Model]
"""Builds, in the worker, the model default agents call (picklable)."""


@dataclass(frozen=True)
class Recorded:
    """What a lost worker already reported of an invocation: served, not repeated.

    `turns`: each model turn's `model_response` payload, in call order; `tool_results`:
    each tool's `tool_result` payload (`output` or `error`), in call order.
    """

    turns: tuple[dict[str, Any], ...] = ()
    tool_results: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class MemoView:
    """What a worker sees of the run's memo (`engine/memo.py`) for one invocation: the
    store's recorded turns (by turn) and tool results (by turn and call id), and
    whether the run is a resume (`replaying`)."""

    turns: Mapping[int, Any] = field(default_factory=dict)
    tools: Mapping[tuple[int, str], Any] = field(default_factory=dict)
    replaying: bool = False


@dataclass(frozen=True)
class InvocationRequest:
    """One invocation as the dispatcher built its `AgentContext` (minus the services)."""

    run_id: str
    agent: str
    item: WorkItem
    attempt: int
    input: JSON
    upstream: AgentOutput | None
    feedback: tuple[QAIssue, ...]
    outputs: Mapping[str, BaseModel]
    history: Mapping[str, tuple[BaseModel, ...]]
    joined: Mapping[str, BaseModel]
    children: tuple[ChildResult, ...]
    source: str | None
    backoff_scale: float = 1.0
    seed: int | None = None
    recorded: Recorded = field(default_factory=Recorded)
    memo: MemoView | None = None  # None: the run has no store (nothing waits)

    @classmethod
    def of(
        cls, ctx: AgentContext, recorded: Recorded | None = None, memo: MemoView | None = None
    ) -> InvocationRequest:
        services = ctx.services
        return cls(
            ctx.run_id, ctx.agent, ctx.item, ctx.attempt, ctx.input, ctx.upstream,
            ctx.feedback, dict(ctx.outputs), dict(ctx.history), dict(ctx.joined),
            ctx.children, ctx.source,
            services.backoff_scale if services is not None else 1.0,
            services.seed if services is not None else None,
            recorded or Recorded(), memo,
        )  # fmt: skip


def recorded_turn(payload: Mapping[str, Any]) -> ModelTurn:
    """The `ModelTurn` a `model_response` payload records."""
    return ModelTurn(
        text=payload.get("text") or "",
        tool_calls=tuple(
            ToolCall(call["id"], call["name"], call.get("input") or {})
            for call in payload.get("tool_calls") or ()
        ),
        structured=payload.get("structured"),
        usage=Usage.model_validate(payload.get("usage") or {}),
        stop_reason=payload.get("stop_reason") or "end_turn",
        model=payload.get("model") or "",
    )


def recorded_tool_result(payload: Mapping[str, Any]) -> Any:
    """A `tool_result` payload's output; raises `ToolError` for a recorded error."""
    if "error" in payload:
        raise ToolError(str(payload["error"]))
    return payload.get("output")


class StreamHub(EventHub):
    """The hub an invocation's body sees in a worker: it keeps each event as a tuple
    and hands the burst to `send` at every flush; numbering, hashing and every sink
    are the orchestrator's (so, like `ChildHub`, no `EventHub.__init__`)."""

    def __init__(self, run_id: str, send: Callable[[Message], None]) -> None:
        self.run_id = run_id
        self.pipeline_hash = ""
        self._send = send
        self._burst: list[EventTuple] = []

    def emit(
        self,
        kind: EventKind,
        *,
        agent: str | None = None,
        item: str | None = None,
        attempt: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> PipelineEvent:
        self.publish(kind, agent=agent, item=item, attempt=attempt, payload=payload)
        if kind is not _MODEL_RESPONSE:  # as `EventHub.emit`: at once (the UI follows)
            self.flush()
        # A response waits for the charge of its usage (`@charge`, queued right after it):
        # the orchestrator publishes and charges them in one go, as in-process, so a run
        # that ends meanwhile never holds a response whose usage it did not count.
        return new_event(
            {
                "seq": -1, "ts": "", "run_id": self.run_id, "kind": kind, "agent": agent,
                "item": item, "attempt": attempt, "payload": payload or {},
                "pipeline_hash": "", "prev_hash": "",
            }
        )  # fmt: skip

    def publish(
        self,
        kind: EventKind,
        *,
        agent: str | None = None,
        item: str | None = None,
        attempt: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        self._burst.append((kind.value, agent, item, attempt, payload))

    def op(self, name: str, payload: dict[str, Any] | None = None) -> None:
        """Queue a change to the run's state (`@charge`, ...) in order with the events."""
        self._burst.append((name, None, None, None, payload))

    def take(self) -> list[EventTuple]:
        """The events not yet sent (and forget them)."""
        burst, self._burst = self._burst, []
        return burst

    def flush(self) -> None:
        if self._burst:
            self._send((EVENTS, self.take()))


class _Call:
    """One running invocation in a worker: its trio loop and the acknowledgements."""

    def __init__(self, send: Callable[[Message], None]) -> None:
        self.send = send
        self.token = trio.lowlevel.current_trio_token()
        self.scope = trio.CancelScope()
        self.acked = 0
        self.ack_event = trio.Event()
        self.barriers = 0

    async def barrier(self, hub: StreamHub, op: tuple[Any, ...] | None = None) -> None:
        """Send what the body emitted so far and `op`; wait until the orchestrator
        committed them."""
        self.barriers += 1
        wanted = self.barriers
        self.send((BARRIER, wanted, hub.take(), op))
        while self.acked < wanted:
            self.ack_event = trio.Event()
            await self.ack_event.wait()

    def ack(self, number: int) -> None:  # on the call's trio loop
        self.acked = max(self.acked, number)
        self.ack_event.set()


def _takes(model: Model, keyword: str) -> bool:
    try:
        parameters = inspect.signature(model.complete).parameters
    except (TypeError, ValueError):
        return False
    return keyword in parameters


class _RecordedModel:
    """The worker's model as the body calls it: a re-submission's recorded turns first,
    in call order; then the model (its `on_retry` / `on_wait` reports passed on)."""

    def __init__(self, inner: Model, turns: deque[ModelTurn]) -> None:
        self._inner, self._turns = inner, turns
        self.name = inner.name
        self.secrets: tuple[str, ...] = tuple(getattr(inner, "secrets", ()) or ())
        self._keywords = [k for k in ("on_retry", "on_wait") if _takes(inner, k)]

    async def complete(
        self,
        request: ModelRequest,
        on_text: TextSink | None = None,
        *,
        on_retry: Callable[..., None] | None = None,
        on_wait: Callable[..., None] | None = None,
    ) -> ModelTurn:
        if self._turns:
            return self._turns.popleft()
        given = {"on_retry": on_retry, "on_wait": on_wait}
        callbacks = {k: given[k] for k in self._keywords if given[k] is not None}
        if callbacks:
            complete: Any = self._inner.complete
            result: ModelTurn = await complete(request, on_text, **callbacks)
            return result
        return await self._inner.complete(request, on_text)


class _RecordedTool:
    """A tool as the worker's body calls it: a re-submission's recorded results (shared
    by the invocation's tools, in call order) first."""

    def __init__(self, inner: Tool, results: deque[dict[str, Any]]) -> None:
        self._inner, self._results = inner, results
        self.id = inner.id
        self.description = inner.description
        self.input_schema = inner.input_schema

    async def execute(self, input: Mapping[str, Any]) -> Any:
        if self._results:
            return recorded_tool_result(self._results.popleft())
        return await self._inner.execute(input)


class _WorkerBudget(RunBudget):
    """The body's budget: each charge goes to the orchestrator (`@charge`), which
    totals and enforces the run's limits."""

    def __init__(self, hub: StreamHub) -> None:
        super().__init__()
        self._stream = hub

    def charge(self, usage: Usage) -> None:
        self._stream.op("@charge", usage.model_dump())


class _Replaying:
    """Stands for the run's replay filter in a resumed invocation (`memo.replay`)."""


class _WorkerMemo:
    """The run's memo as the worker's body uses it (`engine/agent_runner.py`): recorded
    turns and tool results served from the request's `MemoView`; each new row sent to
    the orchestrator, which commits it, before the body goes on."""

    def __init__(self, view: MemoView, call: _Call, hub: StreamHub) -> None:
        self._view, self._call, self._hub = view, call, hub
        self.replay = _Replaying() if view.replaying else None

    def turn(self, agent: str, item: str, attempt: int, turn: int) -> Any | None:
        return self._view.turns.get(turn)

    def served_turn(self) -> None:
        self._hub.op("@served_turn")

    def went_live(self, agent: str, item: str, attempt: int, *, mismatch: bool = False) -> None:
        self._hub.op("@went_live", {"mismatch": mismatch})

    def tool(self, agent: str, item: str, attempt: int, turn: int, call_id: str) -> Any | None:
        found = self._view.tools.get((turn, call_id))
        if found is not None:
            self._hub.op("@tool_served", {"turn": turn, "call_id": call_id})
        return found

    async def record_turn(
        self,
        agent: str,
        item: str,
        attempt: int,
        turn: int,
        request: Mapping[str, Any],
        digest: str,
        result: ModelTurn,
    ) -> None:
        await self._call.barrier(self._hub, ("record_turn", turn, dict(request), digest, result))

    async def record_tool(
        self, agent: str, item: str, attempt: int, turn: int, call_id: str, result: Any
    ) -> None:
        await self._call.barrier(self._hub, ("record_tool", turn, call_id, result))


class _RecordedTools(Mapping[str, Tool]):
    def __init__(self, inner: Mapping[str, Tool], wrap: Callable[[Tool], Tool]) -> None:
        self._inner, self._wrap = inner, wrap
        self._wrapped: dict[str, Tool] = {}

    def __getitem__(self, tool_id: str) -> Tool:
        tool = self._wrapped.get(tool_id)
        if tool is None:
            tool = self._wrapped[tool_id] = self._wrap(self._inner[tool_id])
        return tool

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)


class Worker:
    """Runs invocations of one pipeline in this process (a threaded Ray actor calls
    `stream` from many threads). Invocations are tasks of `loops` long-lived
    `trio.run`s, each on a thread of its own, taken in turn: a new thread and
    `trio.run` per invocation cost more than the invocation's Ray call. A blocking
    (synchronous) tool holds up the other invocations of its loop only."""

    def __init__(
        self,
        loader: Loader,
        model_factory: ModelFactory | None,
        tools: Mapping[str, Tool] | None = None,
        loops: int = 4,
    ) -> None:
        self.pipeline, handlers = loader()
        self.handlers: dict[str, Handler] = resolve_handlers(self.pipeline, handlers)
        self._model_factory = model_factory
        self._tools = tools
        self._shared_model: Model | None = None
        self._calls: dict[str, _Call] = {}
        self._lock = threading.Lock()
        self._loop_count = max(1, loops)
        # Invariant: the running loops (token, nursery), at most `_loop_count`.
        self._loops: list[tuple[trio.lowlevel.TrioToken, trio.Nursery]] = []
        self._turn = itertools.count()

    def submit(
        self, call_id: str, request: InvocationRequest, send: Callable[[Message], None]
    ) -> None:
        """Start `request` on the next loop; its messages go to `send` (from that loop's
        thread), the last one `done` or `failed`."""
        token, nursery = self._loop()
        token.run_sync_soon(nursery.start_soon, self._invoke, call_id, request, send)

    def stream(self, call_id: str, request: InvocationRequest) -> Iterator[Message]:
        """Run `request` and yield its messages until `done` / `failed` (blocking)."""
        inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.submit(call_id, request, inbox.put)
        while True:
            message = inbox.get()
            yield message
            if message[0] in (DONE, FAILED):
                break

    def _loop(self) -> tuple[trio.lowlevel.TrioToken, trio.Nursery]:
        """The next loop in turn; started on first use."""
        with self._lock:
            if len(self._loops) < self._loop_count:
                started: queue.SimpleQueue[tuple[trio.lowlevel.TrioToken, trio.Nursery]]
                started = queue.SimpleQueue()
                threading.Thread(target=trio.run, args=(_serve, started.put), daemon=True).start()
                self._loops.append(started.get())
            return self._loops[next(self._turn) % len(self._loops)]

    def ack(self, call_id: str, number: int) -> None:
        """The orchestrator committed everything up to barrier `number` of `call_id`."""
        call = self._calls.get(call_id)
        if call is not None:
            with suppress(trio.RunFinishedError):
                call.token.run_sync_soon(call.ack, number)

    def cancel(self, call_id: str) -> None:
        """Cancel `call_id` (the orchestrator stopped waiting for it)."""
        call = self._calls.get(call_id)
        if call is not None:
            with suppress(trio.RunFinishedError):
                call.token.run_sync_soon(call.scope.cancel)

    def _model(self) -> Model | None:
        """The factory's model: one per process, unless it is an async context manager
        (a live client is bound to one event loop: then one per invocation)."""
        if self._model_factory is None:
            return None
        with self._lock:
            model = self._shared_model
            if model is None:
                model = self._model_factory(self.pipeline)
                if not hasattr(model, "__aenter__"):
                    self._shared_model = model
            return model

    async def _invoke(
        self, call_id: str, request: InvocationRequest, send: Callable[[Message], None]
    ) -> None:
        call = self._calls[call_id] = _Call(send)
        hub = StreamHub(request.run_id, send)
        try:
            with call.scope:
                answer = await self._body(call, hub, request)
                send((DONE, hub.take(), answer))
                return
            send((FAILED, hub.take(), RuntimeError("the orchestrator cancelled the invocation")))
        except Exception as exc:  # the handler's own error: re-raised by the orchestrator
            send((FAILED, hub.take(), _picklable(exc)))
        except BaseException as exc:  # never leave the stream without its end, nor the loop
            send((FAILED, hub.take(), RuntimeError(f"{type(exc).__name__}: {exc}")))
        finally:
            del self._calls[call_id]

    async def _body(
        self, call: _Call, hub: StreamHub, request: InvocationRequest
    ) -> AgentOutput | BaseModel:
        turns = deque(recorded_turn(turn) for turn in request.recorded.turns)
        results = deque(request.recorded.tool_results)
        async with AsyncExitStack() as stack:
            inner = self._model()
            if inner is not None and hasattr(inner, "__aenter__"):
                inner = await stack.enter_async_context(inner)  # type: ignore[arg-type]
            model: Any = _NoWorkerModel() if inner is None else _RecordedModel(inner, turns)
            tools = _RecordedTools(
                ToolTable(self.pipeline, self._tools),
                functools.partial(_RecordedTool, results=results),
            )
            memo: Any = None if request.memo is None else _WorkerMemo(request.memo, call, hub)
            services = RunServices(
                pipeline=self.pipeline,
                model=model,
                tools=tools,
                hub=hub,
                model_limiter=trio.CapacityLimiter(1),
                budget=_WorkerBudget(hub),  # the orchestrator charges and enforces the budget
                backoff_scale=request.backoff_scale,
                seed=request.seed,
                memo=memo,
            )
            ctx = AgentContext(
                request.run_id, request.agent, request.item, request.attempt, request.input,
                request.upstream, request.feedback, services, request.outputs,
                request.history, request.joined, request.children, request.source,
            )  # fmt: skip
            return await self.handlers[request.agent](ctx)
        raise AssertionError("unreachable")  # pragma: no cover  (mypy: the stack may swallow)


async def _serve(started: Callable[[tuple[trio.lowlevel.TrioToken, trio.Nursery]], None]) -> None:
    """A worker loop: hands out its token and nursery, then hosts invocations for ever."""
    async with trio.open_nursery() as nursery:
        started((trio.lowlevel.current_trio_token(), nursery))
        await trio.sleep_forever()


def _picklable(exc: Exception) -> Exception:
    """`exc`, or an `AgentflowError` with its type and message if it cannot cross the wire."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return AgentflowError(f"{type(exc).__name__}: {exc}")
    return exc


class _NoWorkerModel:
    """Stands in when the executor got no model factory: fails on the first call."""

    name = "none"

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        from ..errors import PipelineDefinitionError

        raise PipelineDefinitionError(
            f"agent '{request.agent}' runs from its prompt on a Ray worker, but the executor "
            "got no model_factory; pass RayExecutor(model_factory=...) (agentflow run does)"
        )
