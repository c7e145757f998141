"""`run_pipeline`: run a compiled pipeline on trio and return its `RunResult`.

The run owns (or is given) an `EventHub`, builds the run services, lets the
`Dispatcher` walk the work items, then settles the state machine and builds
the `RunResult` (`run_result.py`: the aggregation's move, or the deferred
terminal request; docs/semantics.md, "How a run ends"). Cancellation still
writes `run_cancelled` and `run_finished` before propagating; the hub drains
its sinks under a shield (or, when every sink is synchronous, closes them
without awaiting: `EventHub.open_inline`/`close_inline`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import trio
from pydantic import ValidationError

from ..errors import AgentflowError, InvalidTransition, PipelineDefinitionError
from ..events.event import EventKind
from ..events.hub import AuditLogError, EventHub
from ..events.run_ids import new_run_id
from ..events.sink import LogSink
from ..models.base import Model, ModelRequest, ModelTurn, TextSink
from ..pipeline import CompiledPipeline
from ..sinks.file import FileSink
from ..tools.base import Tool
from .dispatcher import Dispatcher, json_problem
from .governor import RetryGovernor
from .invocation import InvocationExecutor
from .memo import run_memo
from .plan import Handler, resolve_handlers, runs_default_body
from .run_result import ItemOutcome, RunResult, finish_run, run_status, settle, with_audit_outcome
from .run_result import ItemStatus as ItemStatus  # re-exported: their home until run_result.py
from .run_result import RunStatus as RunStatus
from .run_services import RunBudget, RunServices, ToolTable

__all__ = [
    "ItemOutcome",
    "RunInputError",
    "RunOptions",
    "RunResult",
    "run_pipeline",
    "validated_input",
]

_T = TypeVar("_T")
_RUN_STARTED = EventKind.RUN_STARTED  # Enum member lookups cost ~0.7 us each on 3.11


class RunInputError(AgentflowError):
    """Raised before a run starts when its input cannot be recorded in the event log."""


@dataclass(frozen=True)
class RunOptions:
    """Per-run settings that override the pipeline's defaults."""

    run_id: str | None = None  # default: "run-" + 12 hex chars
    max_concurrency: int | None = None  # overrides defaults.max_concurrency, not per-dispatch
    backoff_scale: float = 1.0  # multiplies backoff_ms (tests use 0)
    seed: int | None = None  # seeds the retry jitter
    max_cost_usd: float | None = None
    max_total_tokens: int | None = None
    keep_history: bool = False  # the hub keeps every event in memory (the UI needs it)
    # concurrent model calls, run-wide (None: only the dispatch limits bound them)
    max_model_calls: int | None = None
    # JSONL audit log path: a new file per run, which replaces the path's previous file as
    # the run starts (a run that cannot start leaves it); only when run_pipeline owns the hub
    audit_log: str | os.PathLike[str] | None = None
    # where handlers run (None: awaited in this process); `agentflow.runtime.executors`
    executor: InvocationExecutor | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise PipelineDefinitionError(
                f"RunOptions(max_concurrency={self.max_concurrency}): use 1 or more, "
                "or None for the pipeline's own limit"
            )
        if self.max_model_calls is not None and self.max_model_calls < 1:
            raise PipelineDefinitionError(
                f"RunOptions(max_model_calls={self.max_model_calls}): use 1 or more "
                "(the number of model calls the run may make at once)"
            )
        for name in ("max_cost_usd", "max_total_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise PipelineDefinitionError(
                    f"RunOptions({name}={value}): a budget cannot be negative; use 0 or more, "
                    "or None for the pipeline's defaults"
                )


class _NoModel:
    """Stands in when run_pipeline got no model: fails the run on the first model call."""

    name = "none"

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        raise PipelineDefinitionError(
            f"agent '{request.agent}' runs from its prompt and needs a model, but run_pipeline "
            "got model=None; pass a model (AnthropicModel for live runs, ReplayModel(path) or "
            "DryRunModel() offline) or override the agent with a handler"
        )


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_cancellation(e) for e in exc.exceptions)
    return isinstance(exc, trio.Cancelled | KeyboardInterrupt)


def _stop_when_the_audit_log_fails(engine: Dispatcher) -> None:
    """A run whose audit log cannot be written ends at once, as an error: it must not go
    on calling models and tools with no record (the hub calls this at the first failed
    audit write; `finish_run` unhooks it)."""
    hub = engine.hub

    def stop() -> None:
        failure = hub.audit_failure
        assert failure is not None  # the hub sets it before calling
        engine.end_run(
            AuditLogError(
                f"audit log {failure.where} could not be written: {failure.reason}; the run stops"
            )
        )

    hub.on_audit_failure = stop


async def _execute(
    pipeline: CompiledPipeline, engine: Dispatcher, budget: RunBudget, started: dict[str, Any]
) -> RunResult:
    hub = engine.hub
    _stop_when_the_audit_log_fails(engine)
    hub.publish(_RUN_STARTED, payload=started)
    try:
        await engine.run()
    except BaseException as exc:
        if _is_cancellation(exc):
            hub.publish(EventKind.RUN_CANCELLED, payload={"reason": "cancelled"})
            finish_run(pipeline, engine, budget, "cancelled", "cancelled")
        else:
            finish_run(pipeline, engine, budget, "error", f"internal error: {exc!r}")
        hub.flush()
        raise
    if engine.fatal is None:
        try:
            settle(pipeline, engine)
        except InvalidTransition as exc:
            engine.end_run(exc)
    status, reason = run_status(engine, budget)
    await _record_output(engine, status)
    result = finish_run(pipeline, engine, budget, status, reason)
    hub.flush()  # a caller's hub (the UI) may stay open after the run
    return with_audit_outcome(result, hub)


async def _record_output(engine: Dispatcher, status: str) -> None:
    """With a run store: commit the run's final output (its main item's, what `agentflow
    output RUN` prints) before `run_finished`, so no reader ever sees a finished run
    without it, and a process killed between the two leaves neither (the resume then
    finishes the run, output and all). A waiting run has no final output yet."""
    hub = engine.hub
    record = getattr(hub.committer, "record_output", None)
    if record is None or status == "waiting" or not engine.items or hub.commit_failure:
        return
    with trio.CancelScope(shield=True):  # run_finished still follows a cancel here
        try:
            await record(str(engine.items[0].output))
        except Exception as exc:  # the store failed: the run ends as an audit failure
            hub.report_commit_failure(exc)


def _model_agents(pipeline: CompiledPipeline, agent_id: str) -> list[str]:
    """The agents that call the model when `agent_id` runs its default body: itself, or for
    a sub-pipeline agent its child's agents that run from a prompt (`team.writer`), none
    when they are all handlers."""
    agent = pipeline.spec.agent(agent_id)
    if agent.human is not None:
        return []  # a person answers it
    if agent.handler is not None:  # DefaultHandlers calls its function: no model
        return []
    child = pipeline.children.get(agent_id)
    if agent.pipeline is None or child is None:
        return [agent_id]
    return [
        f"{agent_id}.{name}"
        for inner in child.spec.agents
        if inner.handler is None
        for name in _model_agents(child, inner.id)
    ]


# (id(pipeline), handler class) -> (pipeline, `_prompt_agents`): per-run setup that depends
# only on the pipeline and the handler class. The identity check guards a reused id.
_PROMPT_AGENTS: dict[tuple[int, type], tuple[CompiledPipeline, list[str]]] = {}


def _prompt_agents(
    pipeline: CompiledPipeline, handlers: object, handler_map: Mapping[str, Handler]
) -> list[str]:
    """The agents that call the model (`_model_agents`) because their handler is the
    default body; cached per pipeline and handler class when the handler object cannot
    shadow its class's methods (no instance attributes, no `__getattr__`)."""
    cls = type(handlers)
    cacheable = not getattr(handlers, "__dict__", True) and not hasattr(cls, "__getattr__")
    key = (id(pipeline), cls)
    cached = _PROMPT_AGENTS.get(key) if cacheable else None
    if cached is not None and cached[0] is pipeline:
        return cached[1]
    agents = [
        name
        for agent, run in handler_map.items()
        if runs_default_body(run)
        for name in _model_agents(pipeline, agent)
    ]
    if cacheable:
        if len(_PROMPT_AGENTS) >= 64:
            _PROMPT_AGENTS.clear()
        _PROMPT_AGENTS[key] = (pipeline, agents)
    return agents


def _given(option: _T | None, default: _T) -> _T:
    """The run option if set (0 included), else the pipeline default."""
    return default if option is None else option


def _build_engine(
    pipeline: CompiledPipeline,
    handlers: dict[str, Handler],
    hub: EventHub,
    model: Model | None,
    tools: Mapping[str, Tool] | None,
    options: RunOptions,
    run_input: object,
) -> tuple[Dispatcher, RunBudget]:
    """The run's services (budget, tools, model limiter), governor and dispatcher."""
    defaults = pipeline.spec.defaults
    budget = RunBudget(
        hub,
        max_cost_usd=_given(options.max_cost_usd, defaults.max_cost_usd),
        max_total_tokens=_given(options.max_total_tokens, defaults.max_total_tokens),
    )
    services = RunServices(
        pipeline=pipeline,
        model=model if model is not None else _NoModel(),
        tools=ToolTable(pipeline, tools),
        hub=hub,
        model_limiter=trio.CapacityLimiter(_given(options.max_model_calls, math.inf)),
        budget=budget,
        backoff_scale=options.backoff_scale,
        seed=options.seed,
        max_concurrency=options.max_concurrency,
        memo=run_memo(hub, functools.partial(setattr, budget, "usage")),
    )
    governor = RetryGovernor(pipeline.spec, backoff_scale=options.backoff_scale, seed=options.seed)
    engine = Dispatcher(
        pipeline,
        handlers,
        services,
        governor,
        run_id=hub.run_id,
        input=run_input,
        max_concurrency=_given(options.max_concurrency, defaults.max_concurrency),
        executor=options.executor,
    )
    return engine, budget


def _field_path(location: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)[1:]


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validated_input(pipeline: CompiledPipeline, run_input: object) -> object:
    """The run input checked against the pipeline's `input:` shape, as JSON data.

    Without `input:` the input is returned as given. With it, the input (a dict, or
    an instance of the input model) is validated and returned as the model's JSON
    dump, optional fields included (None when absent).

    Raises:
        RunInputError: the input does not match the shape; the message names each field.
    """
    input_model = pipeline.input_model
    if input_model is None:
        return run_input
    if isinstance(run_input, input_model):
        return run_input.model_dump(mode="json")
    fields = ", ".join(input_model.model_fields) or "none"
    if isinstance(run_input, Mapping) and not isinstance(run_input, dict):
        run_input = dict(run_input)  # run() is typed to take any Mapping
    if not isinstance(run_input, dict):
        shown = "text" if isinstance(run_input, str) else type(run_input).__name__
        raise RunInputError(
            f"the run input must be a JSON object with the fields of the pipeline's `input:` "
            f"({fields}); got {shown}. Pass a dict or the input model (on the command "
            f"line: --input '{{\"field\": ...}}')"
        )
    try:
        validated = input_model.model_validate(run_input)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{_field_path(error['loc']) or '(input)'}': {error['msg']}"
            + (f" (got {_shown(error['input'])})" if error["type"] != "missing" else "")
            for error in exc.errors(include_url=False)
        )
        raise RunInputError(
            f"the run input does not match the pipeline's `input:` ({fields}): {problems}"
        ) from None
    bad = _non_finite(validated.model_dump())
    if bad is not None:
        raise RunInputError(
            f"the run input does not match the pipeline's `input:` ({fields}): field "
            f"'{bad}': NaN or an infinity is not a number the audit log can record"
        )
    return validated.model_dump(mode="json")


def _non_finite(value: object, path: str = "") -> str | None:
    """The dotted path of the first NaN/infinite float in `value` (JSON would write null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(input)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _non_finite(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _check_call(run_input: object, hub: EventHub | None, options: RunOptions) -> None:
    """Refuse, before any event, a run whose input or options cannot work."""
    problem = json_problem(run_input)
    if problem is not None:
        raise RunInputError(
            f"the run input must be JSON-serialisable (text, numbers, lists, dicts): "
            f"{problem}. Convert it before the run (e.g. to a dict or a string)"
        )
    if hub is not None and options.audit_log is not None:
        raise PipelineDefinitionError(
            f"RunOptions(audit_log={options.audit_log!r}) with a caller's hub: run_pipeline "
            "writes the audit log only on a hub it owns. Add the FileSink to your hub "
            "(EventHub(sinks=[FileSink(path)])) or drop hub="
        )


def _check_executor(pipeline: CompiledPipeline, options: RunOptions) -> None:
    """Refuse to run `executor: ray` agents here silently: the caller passes an executor."""
    if options.executor is not None:
        return
    fallback = pipeline.spec.defaults.executor
    remote = [a.id for a in pipeline.spec.agents if (a.executor or fallback) == "ray"]
    if remote:
        raise PipelineDefinitionError(
            f"agents {', '.join(remote)} say executor: ray (their own or defaults.executor), "
            "and run_pipeline got no executor: pass RunOptions(executor=RayExecutor(...)) "
            "(agentflow.runtime.executors.ray_executor; agentflow run does it for you), or "
            "RunOptions(executor=LocalExecutor()) to run them in this process"
        )


async def run_pipeline(
    pipeline: CompiledPipeline,
    input: object,
    *,
    handlers: object,
    model: Model | None = None,
    tools: Mapping[str, Tool] | None = None,
    sinks: Sequence[LogSink] = (),
    hub: EventHub | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Run `pipeline` on `input` and return how it went.

    Args:
        pipeline: the compiled pipeline (a generated module's `PIPELINE`).
        input: the run input (text or JSON); `ctx.input` and item `main`'s payload.
            With an `input:` shape: a dict (or the generated `PipelineInput`) that
            matches it; the run sees it as JSON data, optional fields filled in.
        handlers: an object with one async method per agent id; None runs every
            agent from its prompt (`run_default_agent`).
        model: the model default agents call. None: if an agent runs its default
            body, live Claude (an AnthropicModel configured by the pipeline, opened
            and closed by this run) when $ANTHROPIC_API_KEY is set, else the run
            fails before it starts (NoModelError).
        tools: tool instances by id, over the pipeline's plugins and builtins.
        sinks: where events go when `hub` is None (run_pipeline then runs its own hub).
        hub: a hub the caller runs (`async with hub.running()`), e.g. shared with the UI.
            Closing it writes the log's `log_sealed` line; then
            `with_audit_outcome(result, hub)` tells whether the audit log held.
        options: per-run overrides.

    A run whose audit log cannot be written stops and returns status `error` (the
    reason names the log, the cause and how many events it holds).

    Raises:
        PipelineDefinitionError: `handlers` lacks a method for an agent, or
            `options.audit_log` is set together with `hub`.
        RunInputError: `input` is not JSON-serialisable, or does not match the
            pipeline's `input:` shape (`validated_input`).
        NoModelError: model=None, an agent needs a model, and no key is set.
        trio.Cancelled: the run was cancelled (after `run_cancelled`/`run_finished`).
    """
    options = options or RunOptions()
    input = validated_input(pipeline, input)
    _check_call(input, hub, options)
    _check_executor(pipeline, options)
    handler_map = resolve_handlers(pipeline, handlers)
    if model is None:
        from ..models.factory import model_for_run

        auto = model_for_run(pipeline, _prompt_agents(pipeline, handlers, handler_map))
        if auto is not None:
            async with auto:  # the run owns the client: closed when the run ends
                return await run_pipeline(
                    pipeline, input, handlers=handlers, model=auto, tools=tools,
                    sinks=sinks, hub=hub, options=options,
                )  # fmt: skip
    own_hub = hub is None
    audit: FileSink | None = None
    try:
        if hub is None:
            if options.audit_log is not None:
                # One run per audit log, as `agentflow run` writes it: a new file, which
                # takes the path's place once the run starts (never the old one emptied).
                audit = FileSink(options.audit_log, replace=True)
                sinks = (audit, *sinks)
            hub = EventHub(
                run_id=options.run_id or new_run_id(),
                pipeline_hash=pipeline.source_sha256,
                sinks=sinks,
                keep_history=options.keep_history,
            )
        engine, budget = _build_engine(pipeline, handler_map, hub, model, tools, options, input)
    except BaseException:
        if audit is not None:  # the run cannot start: its new file goes, the old log stays
            audit.close()
        raise
    if audit is not None:
        audit.install()
    started = {
        "pipeline": pipeline.spec.name,
        "version": pipeline.spec.version,
        "prompts_sha256": pipeline.prompts_sha256,
        "input": input,
        "model": model.name if model is not None else None,
        "entry": pipeline.spec.entry_agent,
        "options": {"max_concurrency": options.max_concurrency, "seed": options.seed},
    }
    if not own_hub:  # the caller closes (and seals) its hub: see `with_audit_outcome`
        return await _execute(pipeline, engine, budget, started)
    if hub.runs_inline:  # only synchronous sinks (the audit FileSink): no task, no shield
        hub.open_inline()
        try:
            result = await _execute(pipeline, engine, budget, started)
        finally:
            hub.close_inline()
    else:
        async with hub.running():  # drains the sinks under a shield, even when cancelled
            result = await _execute(pipeline, engine, budget, started)
    return with_audit_outcome(result, hub)  # the seal's write, too, may have failed
