"""`RayExecutor`: agent invocations in threaded Ray actors; the run stays here.

The run's orchestrator is the trio process that calls `run_pipeline`: it owns
the hash chain, the run store and the dispatcher. For an agent whose executor is
`ray` the dispatcher's one hook (`InvocationExecutor.invoke`) sends the
invocation to an actor of a pool (`remote.Worker` in each actor process), and
publishes the events the actor sends back, in order, on the run's hub. With a
run store, each model turn and tool result the worker records is committed by
the orchestrator (the run's memo) before the worker goes on (`remote.BARRIER`).

- In flight: at most the pool's actors times `invocations_per_actor` (a trio
  `CapacityLimiter`). Each actor has one session: requests go in batches (one
  Ray call per trio tick) and one long-lived streaming call brings every
  invocation's messages back in batches, read by one asyncio task on the
  executor's bridge thread; never a `ray.wait` over every pending ref.
- Pools: agents with no `resources:` share `actors` actors of
  up to `invocations_per_actor` invocations each (tasks of `loops_per_actor`
  long-lived `trio.run`s); an agent with `resources:` gets its own pool of
  one-invocation actors reserving them (`num_cpus`, `memory`), at most
  `actors` of them. With `max_model_calls` the agents that call the model run
  in a pool whose actors reserve the custom resource `agentflow_model_calls`
  (one unit per invocation they host), so the cluster's total of that resource bounds the
  model calls of every run that shares it.
- Faults: when an actor dies mid-invocation, the invocation is re-submitted by
  this executor to a fresh actor (Ray's own retries are off: they drop the
  retried attempt's events), with the model turns and tool results the dead
  actor already reported, which are served, not repeated; the events the retry
  repeats are not published twice. Each re-submission is an
  `invocation_resubmitted` event and counted in `resubmitted`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import os
import queue
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import Any

import ray
import trio
from pydantic import BaseModel

from ..agents import AgentOutput
from ..engine.context import AgentContext
from ..engine.plan import Handler, runs_default_body
from ..errors import AgentflowError
from ..events.event import EventKind
from ..pipeline import CompiledPipeline
from ..spec import ExecutorKind
from ..tools.base import Tool
from ..usage import Usage
from .remote import (
    BARRIER,
    DONE,
    EVENTS,
    FAILED,
    EventTuple,
    InvocationRequest,
    Loader,
    MemoView,
    Message,
    ModelFactory,
    Recorded,
    Worker,
)

__all__ = ["MODEL_CALLS_RESOURCE", "RayExecutor", "WorkerLostError"]

MODEL_CALLS_RESOURCE = "agentflow_model_calls"
"""The custom Ray resource that bounds model calls cluster-wide (`max_model_calls`)."""

_MB = 1024 * 1024


class WorkerLostError(AgentflowError):
    """An invocation's worker died more often than `max_resubmissions` allows."""


class _InvocationActor:
    """A threaded Ray actor hosting many invocations (`remote.Worker`).

    One long-lived streaming call (`session`) carries every invocation's messages
    back, in batches: whatever is ready when the stream can send; invocations
    arrive in batches too (`submit`). So the Ray calls per invocation are few (its
    barriers' acknowledgements), not one streaming task each.
    """

    def __init__(
        self,
        loader: Loader,
        model_factory: ModelFactory | None,
        tools: Mapping[str, Tool] | None,
        loops: int,
    ) -> None:
        self._worker = Worker(loader, model_factory, tools, loops)
        self._outbox: queue.SimpleQueue[tuple[str, Message]] = queue.SimpleQueue()

    @ray.method(num_returns="streaming")
    def session(self) -> Iterator[list[tuple[str, Message]]]:
        outbox = self._outbox
        while True:
            batch = [outbox.get()]
            while True:
                try:
                    batch.append(outbox.get_nowait())
                except queue.Empty:
                    break
            yield batch

    def submit(self, batch: list[tuple[str, InvocationRequest]]) -> None:
        post = self._outbox.put
        for call_id, request in batch:
            self._worker.submit(call_id, request, functools.partial(_tagged, post, call_id))

    def ack(self, call_id: str, number: int) -> None:
        self._worker.ack(call_id, number)

    def cancel(self, call_id: str) -> None:
        self._worker.cancel(call_id)

    def pid(self) -> int:
        return os.getpid()


def _tagged(post: Callable[[tuple[str, Message]], None], call_id: str, message: Message) -> None:
    post((call_id, message))


class _Session:
    """One actor as the orchestrator sees it: its session stream, read on the bridge
    loop, and the invocations in flight on it (call id -> their channel)."""

    def __init__(self, actor: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.actor = actor
        self.calls: dict[str, trio.MemorySendChannel[Message]] = {}
        self.lost: str | None = None
        self._queued: list[tuple[str, InvocationRequest]] = []
        self._token = trio.lowlevel.current_trio_token()
        stream = actor.session.remote()
        asyncio.run_coroutine_threadsafe(_pump(stream, self._arrived), loop)

    def submit(
        self, call_id: str, request: InvocationRequest, send: trio.MemorySendChannel[Message]
    ) -> None:
        """Queue `request`; this trio tick's submissions go in one Ray call."""
        if self.lost is not None:
            raise _ActorLost(self.lost)
        self.calls[call_id] = send
        if not self._queued:
            self._token.run_sync_soon(self._flush)
        self._queued.append((call_id, request))

    def _flush(self) -> None:
        batch, self._queued = self._queued, []
        if batch and self.lost is None:
            self.actor.submit.remote(batch)

    def _arrived(self, batch: list[tuple[str, Message]] | str) -> None:  # on the bridge thread
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._route, batch)

    def _route(self, batch: list[tuple[str, Message]] | str) -> None:
        if isinstance(batch, str):  # the stream broke: the actor is gone
            self.lost = batch
            lost, self.calls = self.calls, {}
            for channel in lost.values():
                channel.send_nowait(("lost", batch))
            return
        calls = self.calls
        for call_id, message in batch:
            send = calls.get(call_id)
            if send is not None:
                send.send_nowait(message)
                if message[0] in (DONE, FAILED):
                    del calls[call_id]


class _Pool:
    """Actors of one kind; an invocation goes to the one with the fewest in flight."""

    def __init__(self, name: str, options: dict[str, Any], size: int, threads: int) -> None:
        self.name, self.options, self.size, self.threads = name, options, size, threads
        self.actors: list[_Session] = []
        self.load: dict[int, int] = {}  # id(session) -> invocations in flight
        self.limiter = trio.CapacityLimiter(size * threads)

    def pick(self, make: Callable[[dict[str, Any], int], _Session]) -> _Session:
        for dead in [a for a in self.actors if a.lost is not None]:
            self.drop(dead)
        if len(self.actors) < self.size and all(self.load[id(a)] for a in self.actors):
            actor = make(self.options, self.threads)
            self.actors.append(actor)
            self.load[id(actor)] = 0
        actor = min(self.actors, key=lambda a: self.load[id(a)])
        self.load[id(actor)] += 1
        return actor

    def release(self, actor: _Session) -> None:
        if id(actor) in self.load:
            self.load[id(actor)] -= 1

    def drop(self, actor: _Session) -> None:
        """Forget a dead actor (the next `pick` starts a fresh one)."""
        if actor in self.actors:
            self.actors.remove(actor)
            del self.load[id(actor)]


class RayExecutor:
    """Runs the `executor: ray` agents' invocations on a Ray cluster (docs/scale.md).

    Use as `async with RayExecutor(...) as executor:` around the run, with
    `RunOptions(executor=executor)`. `loader` and `model_factory` are called in
    each actor process (so they must be picklable: module-level functions or
    `functools.partial` of them) and must build the same pipeline and handlers
    the run uses; `tools` (optional) is pickled to the actors, with the pipeline's
    builtin tools, built here (a relative `root` is this process's directory).
    """

    def __init__(
        self,
        pipeline: CompiledPipeline,
        loader: Loader,
        *,
        model_factory: ModelFactory | None = None,
        tools: Mapping[str, Tool] | None = None,
        address: str | None = None,
        default: ExecutorKind | None = None,
        actors: int = 2,
        invocations_per_actor: int = 64,
        max_model_calls: int | None = None,
        num_cpus: int | None = None,
        max_resubmissions: int = 3,
        loops_per_actor: int = 4,
    ) -> None:
        if actors < 1 or invocations_per_actor < 1:
            raise AgentflowError(
                f"RayExecutor(actors={actors}, invocations_per_actor="
                f"{invocations_per_actor}): use 1 or more of each"
            )
        if max_model_calls is not None and max_model_calls < 1:
            raise AgentflowError(f"RayExecutor(max_model_calls={max_model_calls}): use 1 or more")
        self.pipeline = pipeline
        self._loader, self._model_factory = loader, model_factory
        self._tools: Mapping[str, Tool] = {**_builtin_tools(pipeline), **(tools or {})}
        self.address = address
        self._num_cpus = num_cpus
        self._actors, self._threads, self._loops = actors, invocations_per_actor, loops_per_actor
        self.max_model_calls = max_model_calls
        self.max_resubmissions = max_resubmissions
        fallback = default or pipeline.spec.defaults.executor
        # Invariant: the agents of `pipeline` whose invocations run on Ray.
        self.remote_agents = frozenset(
            a.id for a in pipeline.spec.agents if (a.executor or fallback) == "ray"
        )
        self._resources = {a.id: a.resources for a in pipeline.spec.agents if a.resources}
        # agent -> it runs from its prompt (its default body calls the model)
        self._prompted = {
            a.id: a.handler is None and a.pipeline is None for a in pipeline.spec.agents
        }
        self._pools: dict[str, _Pool] = {}
        self._actor_class: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._owns_ray = False
        self._ids = itertools.count(1)
        # Invariant: invocations re-submitted after their worker died, this executor's life.
        self.resubmitted = 0
        self.startup_s: float | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> RayExecutor:
        if self._loop is None:
            self.start()  # blocks this trio loop meanwhile: see `start`
        return self

    async def __aexit__(self, *exc: object) -> None:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.close)

    def start(self) -> None:
        """Connect to (or start) the cluster and the bridge thread (blocking: 1-30 s).

        Call it on the main thread (before `trio.run`, as `agentflow run` does, or
        from `async with`, which blocks the loop while Ray connects): `ray.init` on
        another thread leaves a thread in the driver that burns a fifth of a core for
        as long as invocations are in flight (measured: 3.8 CPU-s in a 20 s run).
        """
        import time

        if self._loop is not None:
            return
        started = time.perf_counter()
        if not ray.is_initialized():
            if self.address is None:  # a local cluster: its workers see this sys.path
                resources = (
                    {MODEL_CALLS_RESOURCE: float(self.max_model_calls)}
                    if self.max_model_calls
                    else None
                )
                ray.init(
                    num_cpus=self._num_cpus,
                    resources=resources,
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}},
                )
            else:
                ray.init(address=self.address, log_to_driver=False)
            self._owns_ray = True
        if self.max_model_calls and MODEL_CALLS_RESOURCE not in ray.cluster_resources():  # type: ignore[no-untyped-call]
            raise AgentflowError(
                f"max_model_calls={self.max_model_calls} needs the custom resource "
                f"'{MODEL_CALLS_RESOURCE}' on the cluster; start its head with "
                f"ray start --head --resources '{{\"{MODEL_CALLS_RESOURCE}\": N}}'"
            )
        self._actor_class = ray.remote(_InvocationActor)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="agentflow-ray-bridge", daemon=True
        )
        self._thread.start()
        self.startup_s = time.perf_counter() - started

    async def warm_up(self) -> None:
        """Start every shared actor now and wait until each answers; a run would
        otherwise pay the actors' start on its first invocations."""
        pool = self._pool_for(None, default_body=False)
        while len(pool.actors) < pool.size:
            pool.actors.append(self._make_actor(pool.options, pool.threads))
            pool.load[id(pool.actors[-1])] = 0
        refs = [session.actor.pid.remote() for session in pool.actors]
        await trio.to_thread.run_sync(ray.get, refs)

    def actor_pids(self) -> list[int]:
        """The process ids of the live actors (blocking; for measurements)."""
        actors = [session.actor for pool in self._pools.values() for session in pool.actors]
        return list(ray.get([actor.pid.remote() for actor in actors]))

    def close(self) -> None:
        """Stop the actors and the bridge thread; shut Ray down if `start` started it."""
        for pool in self._pools.values():
            for session in pool.actors:
                ray.kill(session.actor, no_restart=True)
        self._pools.clear()
        if self._loop is not None:
            # the streams of killed actors end; nothing reads them any more
            asyncio.run_coroutine_threadsafe(_cancel_pumps(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join()
            self._loop.close()
            self._loop = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    # -- pools -----------------------------------------------------------------------

    def _make_actor(self, options: dict[str, Any], threads: int) -> _Session:
        """A new actor and its session (on the trio thread: the session delivers there)."""
        assert self._loop is not None
        actor = self._actor_class.options(
            max_concurrency=8,  # its session, and submits, acks, cancels beside it
            max_restarts=0,
            max_task_retries=0,
            **options,
        ).remote(self._loader, self._model_factory, self._tools, min(threads, self._loops))
        return _Session(actor, self._loop)

    def _pool_for(self, agent: str | None, *, default_body: bool) -> _Pool:
        resources = self._resources.get(agent) if agent is not None else None
        if resources is not None:
            key = f"agent:{agent}"
            options: dict[str, Any] = {"num_cpus": resources.num_cpus or 0}
            if resources.memory_mb:
                options["memory"] = resources.memory_mb * _MB
            size, threads = self._actors, 1
        elif default_body and self.max_model_calls:
            key = "model"
            threads = min(self._threads, self.max_model_calls)
            options = {"num_cpus": 0, "resources": {MODEL_CALLS_RESOURCE: threads}}
            size = max(1, min(self._actors, self.max_model_calls // threads))
        else:
            key, options, size, threads = "shared", {"num_cpus": 0}, self._actors, self._threads
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(key, options, size, threads)
        return pool

    # -- the hook --------------------------------------------------------------------

    async def invoke(self, handler: Handler, ctx: AgentContext) -> AgentOutput | BaseModel:
        """Run `handler(ctx)` on Ray if its agent runs there, else here."""
        services = ctx.services
        if (
            ctx.agent not in self.remote_agents
            or services is None
            or services.pipeline is not self.pipeline  # a sub-pipeline's agents run here
        ):
            return await handler(ctx)
        calls_model = runs_default_body(handler) and self._prompted.get(ctx.agent, False)
        pool = self._pool_for(ctx.agent, default_body=calls_model)
        state = _Invocation(ctx)
        memo = _memo_view(ctx)
        resubmissions = 0
        async with pool.limiter:
            while True:
                request = InvocationRequest.of(ctx, state.recorded(), memo)
                session = pool.pick(self._make_actor)
                try:
                    return await self._drive(session, request, state)
                except _ActorLost as lost:
                    pool.drop(session)
                    resubmissions += 1
                    self.resubmitted += 1
                    services.hub.publish(
                        EventKind.INVOCATION_RESUBMITTED,
                        agent=ctx.agent,
                        item=ctx.item.id,
                        attempt=ctx.attempt,
                        payload={
                            "executor": "ray",
                            "error": lost.reason,
                            "resubmission": resubmissions,
                            "recorded_turns": len(state.turns),
                            "recorded_tool_results": len(state.tool_results),
                        },
                    )
                    if resubmissions > self.max_resubmissions:
                        raise WorkerLostError(
                            f"agent '{ctx.agent}' on item '{ctx.item.id}': its Ray worker died "
                            f"{resubmissions} times ({lost.reason}); giving up after "
                            f"{self.max_resubmissions} re-submissions"
                        ) from None
                finally:
                    pool.release(session)

    async def _drive(
        self, session: _Session, request: InvocationRequest, state: _Invocation
    ) -> AgentOutput | BaseModel:
        """Submit `request` on `session`, publish its messages, commit its memo rows and
        acknowledge its barriers."""
        call_id = f"{request.run_id}:{next(self._ids)}"
        send, receive = trio.open_memory_channel[Message](math.inf)
        session.submit(call_id, request, send)
        finished = False
        state.new_attempt()
        try:
            async for message in receive:
                tag = message[0]
                if tag == EVENTS:
                    state.publish(message[1])
                elif tag == BARRIER:
                    state.publish(message[2])
                    await state.commit(message[3])  # before the worker proceeds
                    session.actor.ack.remote(call_id, message[1])
                elif tag == DONE:
                    state.publish(message[1])
                    finished = True
                    answer: AgentOutput | BaseModel = message[2]
                    return answer
                elif tag == FAILED:
                    state.publish(message[1])
                    finished = True
                    error: BaseException = message[2]
                    raise error
                else:  # "lost": the session broke
                    finished = True
                    raise _ActorLost(message[1])
            raise AssertionError("unreachable: a call ends with done, failed or lost")
        finally:
            if not finished:  # cancelled, or the budget ran out: stop the worker's call
                session.calls.pop(call_id, None)
                if session.lost is None:
                    session.actor.cancel.remote(call_id)


def _builtin_tools(pipeline: CompiledPipeline) -> dict[str, Tool]:
    """The pipeline's builtin tools, built here and pickled to the actors: a relative
    `root` is the orchestrator's working directory, as on the local executor, not the
    actor process's (a Ray worker's, the same for every run on the cluster)."""
    from ..tools.registry import builtin_tool

    specs = pipeline.spec.tools
    return {t.id: builtin_tool(t.id, dict(t.config)) for t in specs if t.type == "builtin"}


def _memo_view(ctx: AgentContext) -> MemoView | None:
    """What the worker needs of the run's memo for this invocation (None: no store)."""
    services = ctx.services
    memo = services.memo if services is not None else None
    if memo is None:
        return None
    agent, item, attempt = ctx.agent, ctx.item.id, ctx.attempt
    turns: dict[int, Any] = {}
    tools: dict[tuple[int, str], Any] = {}
    recorded = memo.recorded
    if recorded is not None:  # a resume: this invocation's recorded turns and tool results
        turn = 1
        while (found := memo.turn(agent, item, attempt, turn)) is not None:
            turns[turn] = found
            for call in (found.response or {}).get("tool_calls") or ():
                key = (memo.prefix + agent, item, attempt, turn, call["id"])
                result = recorded.tool_calls.get(key)
                if result is not None:
                    tools[turn, call["id"]] = result
            turn += 1
    return MemoView(turns, tools, memo.replay is not None)


class _Invocation:
    """One invocation across its attempts (a re-submission is another attempt): what
    its workers reported, published once, and the memo rows committed once."""

    def __init__(self, ctx: AgentContext) -> None:
        assert ctx.services is not None
        self.ctx = ctx
        self.services = ctx.services
        self.published: Counter[tuple[Any, ...]] = Counter()  # events and ops, all attempts
        self.seen: Counter[tuple[Any, ...]] = Counter()  # this attempt's
        self.turns: list[dict[str, Any]] = []  # `model_response` payloads, in order
        self.tool_results: list[dict[str, Any]] = []  # `tool_result` payloads, in order
        self.rows: set[tuple[Any, ...]] = set()  # memo rows committed: ("turn", n), ...

    def new_attempt(self) -> None:
        self.seen = Counter()

    def recorded(self) -> Recorded:
        return Recorded(tuple(self.turns), tuple(self.tool_results))

    def publish(self, events: list[EventTuple]) -> None:
        """Publish a burst on the run's hub and apply its `@` ops; what a lost attempt
        already published (the same events, counted) is skipped."""
        services, seen, published = self.services, self.seen, self.published
        hub = services.hub
        for kind, agent, item, attempt, payload in events:
            identity = (kind, agent, item, attempt, _frozen(payload))
            seen[identity] += 1
            if seen[identity] <= published[identity]:
                continue
            published[identity] += 1
            if kind[0] == "@":
                self._apply(kind, payload or {})
                continue
            member = EventKind(kind)
            hub.publish(member, agent=agent, item=item, attempt=attempt, payload=payload)
            if member is EventKind.MODEL_RESPONSE and payload is not None:
                self.turns.append(payload)
            elif member is EventKind.TOOL_RESULT and payload is not None:
                self.tool_results.append(payload)

    def _apply(self, op: str, payload: dict[str, Any]) -> None:
        ctx, services = self.ctx, self.services
        if op == "@charge":
            services.budget.charge(Usage.model_validate(payload))
            return
        memo = services.memo
        if memo is None:
            return
        agent, item, attempt = ctx.agent, ctx.item.id, ctx.attempt
        if op == "@served_turn":
            memo.served_turn()
        elif op == "@went_live":
            memo.went_live(agent, item, attempt, mismatch=bool(payload.get("mismatch")))
        elif op == "@tool_served":
            memo.tool(agent, item, attempt, int(payload["turn"]), str(payload["call_id"]))

    async def commit(self, op: tuple[Any, ...] | None) -> None:
        """Commit a barrier's memo row (once per invocation), or only the events so far."""
        memo = self.services.memo
        if op is None or memo is None:
            await self.services.hub.wait_committed()
            return
        ctx = self.ctx
        agent, item, attempt = ctx.agent, ctx.item.id, ctx.attempt
        if op[0] == "record_turn":
            _, turn, request, digest, result = op
            if ("turn", turn) not in self.rows:  # a re-submission's served turn: committed
                await memo.record_turn(agent, item, attempt, turn, request, digest, result)
                self.rows.add(("turn", turn))
        elif op[0] == "record_tool":
            _, turn, call_id, result = op
            if ("tool", turn, call_id) not in self.rows:
                await memo.record_tool(agent, item, attempt, turn, call_id, result)
                self.rows.add(("tool", turn, call_id))


class _ActorLost(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _pump(stream: Any, deliver: Callable[[Any], None]) -> None:
    """Read one actor's session on the bridge loop; a broken one delivers its reason."""
    try:
        async for ref in stream:
            deliver(await ref)
    except Exception as exc:  # the actor died, or a batch did not deserialize
        text = str(exc)
        deliver(f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")


async def _cancel_pumps() -> None:
    """Cancel every other task of the bridge loop and wait for them."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _frozen(value: Any) -> Any:
    """A hashable copy of a JSON value (for counting events already published)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value
