"""`run_default_agent` / `run_typed_agent`: run one agent from its prompt on the run's model.

The runner owns the conversation: it renders the system prompt, builds the
user message, loops model turns while the model asks for tools, validates the
structured answer QA, fan-out and typed (`output:`) agents must give, and emits one event per
model request, streamed-text batch, response, tool call and tool result. The
`model_response` payload is the replay cassette format.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..agents import AgentOutput, QAVerdict, WorkItems
from ..errors import AgentflowError, ModelError, OutputValidationError, ToolError
from ..events.event import EventKind
from ..events.hub import EventHub
from ..models.base import (
    STRUCTURED_TOOL_NAMES,
    AnswerKind,
    ModelRequest,
    ModelTurn,
    OutputKind,
    ToolCall,
    ToolSchema,
    accepts_keyword,
)
from ..models.conversation import assistant_message, structured_error_result
from ..models.redaction import RedactingTextSink, SecretRedactor
from ..pipeline import CompiledPipeline
from ..spec import STRUCTURED_REASKS, AgentSpec
from ..tools.base import Tool
from ..usage import Usage
from .context import AgentContext
from .memo import Memo, recorded_turn, request_digest, request_record
from .run_services import RunServices

__all__ = ["output_kind", "run_default_agent", "run_typed_agent", "user_message"]

_Typed = TypeVar("_Typed", bound=BaseModel)
_Answer = TypeVar("_Answer")

_FLUSH_BYTES = 2048
_FLUSH_SECONDS = 0.2
_EARLY_ANSWER = (
    "Not recorded: this answer came with other tool calls. Read their results, then "
    "submit your final {kind} again."
)


def output_kind(pipeline: CompiledPipeline, agent: AgentSpec) -> OutputKind:
    """ "verdict" for QA agents (`on_fail` or a gate), "items" for fan-out agents, else "text"."""
    return pipeline.spec.output_kind(agent)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def user_message(ctx: AgentContext, kind: AnswerKind = "text") -> str:
    """The plain-text user turn: input or upstream output, the work item, the feedback."""
    if ctx.upstream is None:
        parts = [f"Input:\n{_as_text(ctx.input)}"]
    else:
        parts = [f"Output of the previous step:\n{ctx.upstream.text}"]
    if ctx.item.parent is not None:
        parts.append(f"Work item {ctx.item.id}:\n{_as_text(ctx.item.payload)}")
    if ctx.feedback:
        lines = ["A reviewer found these issues in your previous attempt; fix every one:"]
        for issue in ctx.feedback:
            line = f"- [{issue.severity}] {issue.message}"
            if issue.location:
                line += f" (at {issue.location})"
            if issue.suggestion:
                line += f" Suggestion: {issue.suggestion}"
            lines.append(line)
        parts.append("\n".join(lines))
    if kind != "text":
        parts.append(f"Answer by calling the `{STRUCTURED_TOOL_NAMES[kind]}` tool.")
    return "\n\n".join(parts)


class _TextBatcher:
    """Collects streamed deltas into `model_text` events (every ~200 ms or 2 KB)."""

    def __init__(self, hub: EventHub, ctx: AgentContext, turn: int) -> None:
        self._hub, self._ctx, self._turn = hub, ctx, turn
        self._parts: list[str] = []
        self._size = 0
        self._last = time.monotonic()

    def add(self, delta: str) -> None:
        self._parts.append(delta)
        self._size += len(delta)
        now = time.monotonic()
        if self._size >= _FLUSH_BYTES or now - self._last >= _FLUSH_SECONDS:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._parts:
            ctx = self._ctx
            self._hub.emit(
                EventKind.MODEL_TEXT,
                agent=ctx.agent,
                item=ctx.item.id,
                attempt=ctx.attempt,
                payload={"turn": self._turn, "text": "".join(self._parts)},
            )
            self._parts, self._size = [], 0
        self._last = time.monotonic() if now is None else now


def _response_payload(turn: int, result: ModelTurn) -> dict[str, Any]:
    return {
        "turn": turn,
        "text": result.text,
        "tool_calls": [
            {"id": c.id, "name": c.name, "input": dict(c.input)} for c in result.tool_calls
        ],
        "structured": dict(result.structured) if result.structured is not None else None,
        "usage": result.usage.model_dump(),
        "stop_reason": result.stop_reason,
        "model": result.model,
    }


def _model_errors(
    ctx: AgentContext,
    hub: EventHub,
    turn: int,
    batcher: _TextBatcher,
    scrubbed: RedactingTextSink | None,
) -> tuple[Callable[[str, int, float], None], Callable[[ModelError], None]]:
    """`on_retry` for the model, and the reporter of a final failure: both emit `model_error`.

    `attempt` in the payload is the try of this model call that failed (1 = the
    first); the turn's agent attempt is the event's own `attempt` field. Text the
    scrubbing stream still holds back belongs to the failed try and is dropped.
    """
    tries = 0

    def emit(error: str, attempt: int, retrying: bool, delay_s: float | None) -> None:
        if scrubbed is not None:
            scrubbed.discard()
        batcher.flush()
        payload = {
            "turn": turn,
            "error": error,
            "retrying": retrying,
            "delay_s": delay_s,
            "attempt": attempt,
        }
        hub.emit(
            EventKind.MODEL_ERROR,
            agent=ctx.agent,
            item=ctx.item.id,
            attempt=ctx.attempt,
            payload=payload,
        )

    def on_retry(error: str, attempt: int, delay_s: float) -> None:
        nonlocal tries
        tries = attempt
        emit(error, attempt, True, round(delay_s, 3))

    def on_failure(exc: ModelError) -> None:
        emit(str(exc), tries + 1, False, None)

    return on_retry, on_failure


def _rate_limit_waits(ctx: AgentContext, hub: EventHub, turn: int) -> Callable[[float, str], None]:
    """`on_wait` for the model: a call held by the rate limits emits `rate_limited`."""

    def on_wait(wait_s: float, limit: str) -> None:
        payload = {"turn": turn, "limit": limit, "wait_s": round(wait_s, 3)}
        hub.emit(
            EventKind.RATE_LIMITED,
            agent=ctx.agent,
            item=ctx.item.id,
            attempt=ctx.attempt,
            payload=payload,
        )

    return on_wait


def _request_payload(request: ModelRequest) -> dict[str, Any]:
    return {
        "turn": request.turn,
        "model": request.model,
        "tools": [t.name for t in request.tools],
        "output": request.output,
        "messages": len(request.messages),
    }


async def _model_turn(ctx: AgentContext, services: RunServices, request: ModelRequest) -> ModelTurn:
    """One model turn; with a run store, its answer is committed before the agent sees it,
    and a resume serves a recorded turn (same key, same request) instead of calling the
    model (`engine/memo.py`)."""
    memo = services.memo
    if memo is None:
        return await _call_model(ctx, services, request)
    agent, item, attempt = ctx.agent, ctx.item.id, ctx.attempt
    record = services.redactor.value(request_record(request))
    digest = request_digest(record)
    recorded = memo.turn(agent, item, attempt, request.turn)
    if recorded is not None and recorded.request_hash == digest:
        hub = services.hub  # the turn's events were committed: the replay filter eats them
        hub.emit(
            EventKind.MODEL_REQUEST,
            agent=agent,
            item=item,
            attempt=attempt,
            payload=_request_payload(request),
        )
        result = recorded_turn(recorded.response)
        hub.emit(
            EventKind.MODEL_RESPONSE,
            agent=agent,
            item=item,
            attempt=attempt,
            payload=_response_payload(request.turn, result),
        )
        memo.served_turn()  # its usage is in the run's budget already
        return result
    if memo.replay is not None:  # from here this invocation's turns and tools are live
        # A resumed run may be over its budget already (the budget stopped it): no
        # call is paid for only to stop again. Charging nothing checks the limits.
        services.budget.charge(Usage())
        memo.went_live(agent, item, attempt, mismatch=recorded is not None)

    async def commit(result: ModelTurn) -> None:
        await memo.record_turn(agent, item, attempt, request.turn, record, digest, result)

    return await _call_model(ctx, services, request, commit)


async def _call_model(
    ctx: AgentContext,
    services: RunServices,
    request: ModelRequest,
    commit: Callable[[ModelTurn], Awaitable[None]] | None = None,
) -> ModelTurn:
    hub = services.hub
    agent, item, attempt = ctx.agent, ctx.item.id, ctx.attempt
    hub.emit(
        EventKind.MODEL_REQUEST,
        agent=agent,
        item=item,
        attempt=attempt,
        payload=_request_payload(request),
    )
    batcher = _TextBatcher(hub, ctx, request.turn)
    model = services.model
    # Any model's answer (replay, dry-run, yours) is scrubbed of the run's secrets
    # it does not scrub itself before it becomes an event, streamed text across
    # batch boundaries included (AnthropicModel scrubs its own: nothing left here).
    redactor = services.answer_redactor
    scrubbed = redactor.stream(batcher.add) if redactor.secrets else None
    on_text = scrubbed if scrubbed is not None else batcher.add
    on_retry, on_failure = _model_errors(ctx, hub, request.turn, batcher, scrubbed)
    result: ModelTurn
    try:
        async with services.model_limiter:
            if accepts_keyword(model, "on_retry"):
                complete: Any = model.complete
                callbacks: dict[str, Any] = {"on_retry": on_retry}
                if accepts_keyword(model, "on_wait"):  # a rate limiter holds the call
                    callbacks["on_wait"] = _rate_limit_waits(ctx, hub, request.turn)
                result = await complete(request, on_text, **callbacks)
            else:
                result = await model.complete(request, on_text)
    except ModelError as exc:
        on_failure(exc)
        raise
    finally:
        if scrubbed is not None:
            scrubbed.flush()
        batcher.flush()
    result = redactor.turn(result)
    hub.emit(
        EventKind.MODEL_RESPONSE,
        agent=agent,
        item=item,
        attempt=attempt,
        payload=_response_payload(request.turn, result),
    )
    if commit is not None:  # commit before proceed: the answer, before the agent sees it
        await commit(result)
    services.budget.charge(result.usage)
    return result


async def _run_tools(
    ctx: AgentContext,
    hub: EventHub,
    tools: Mapping[str, Tool],
    calls: Sequence[ToolCall],
    redactor: SecretRedactor,
    memo: Memo | None = None,
    turn: int = 0,
) -> dict[str, Any]:
    """Execute the turn's tool calls in order; return the user turn of tool_result blocks.

    A tool's output or error is scrubbed of the run's secrets before it becomes an
    event or goes back to the model: a tool may read the environment (a
    filesystem root of `/proc/self`, a shell tool), and the log is forever.
    """
    agent, item, attempt = ctx.agent, ctx.item.id, ctx.attempt
    blocks: list[dict[str, Any]] = []
    for call in calls:
        hub.emit(
            EventKind.TOOL_CALL,
            agent=agent,
            item=item,
            attempt=attempt,
            payload={"tool": call.name, "call_id": call.id, "input": dict(call.input)},
        )
        tool = tools.get(call.name)
        error: str | None = None
        output: Any = None
        recorded = None if memo is None else memo.tool(agent, item, attempt, turn, call.id)
        if recorded is not None:  # a resume: the recorded result; the tool does not run again
            error, output = recorded.get("error"), recorded.get("output")
        elif tool is None:
            error = f"unknown tool '{call.name}'; this agent may call: {', '.join(tools) or 'none'}"
        else:
            try:
                output = redactor.value(await tool.execute(call.input))
            except ToolError as exc:
                error = redactor.text(str(exc))
        payload: dict[str, Any] = {"tool": call.name, "call_id": call.id}
        if error is None:
            payload["output"] = output
            content = output if isinstance(output, str) else json.dumps(output, default=str)
        else:
            payload["error"] = error
            content = error
        hub.emit(EventKind.TOOL_RESULT, agent=agent, item=item, attempt=attempt, payload=payload)
        if memo is not None and recorded is None:  # commit before proceed: before the model
            done = {"output": output} if error is None else {"error": error}
            await memo.record_tool(agent, item, attempt, turn, call.id, done)
        blocks.append(
            {
                "type": "tool_result",
                "tool_use_id": call.id,
                "content": content,
                "is_error": error is not None,
            }
        )
    return {"role": "user", "content": blocks}


def _structured_output(kind: OutputKind, result: ModelTurn, usage: Usage) -> AgentOutput:
    """Validate the turn's structured answer; raises ValidationError or ValueError."""
    if result.structured is None:
        raise ValueError(f"the model answered without calling `{STRUCTURED_TOOL_NAMES[kind]}`")
    if kind == "verdict":
        verdict = QAVerdict.model_validate(result.structured)
        return AgentOutput(
            passed=verdict.passed,
            issues=verdict.issues,
            text=verdict.summary or result.text,
            usage=usage,
        )
    work = WorkItems.model_validate(result.structured)
    return AgentOutput(text=result.text, items=list(work.items), usage=usage)


def _agent_tools(services: RunServices, agent: AgentSpec) -> dict[str, Tool]:
    return {tool_id: services.tools[tool_id] for tool_id in agent.tools}


def _reask(
    agent: str, kind: AnswerKind, result: ModelTurn, exc: Exception, reasks: int
) -> list[dict[str, Any]]:
    """The turns that ask again for a structured answer; raises after `STRUCTURED_REASKS`."""
    tool = STRUCTURED_TOOL_NAMES[kind]
    if reasks > STRUCTURED_REASKS:
        raise OutputValidationError(
            f"agent '{agent}' gave an invalid {kind} twice: {exc}. Make its prompt "
            f"ask for the `{tool}` tool and its schema"
        ) from exc
    reask = (
        f"Your answer could not be used: {exc}. Answer again by calling the "
        f"`{tool}` tool with input that matches its schema."
    )
    answer = structured_error_result(result, reask) or [{"type": "text", "text": reask}]
    return [assistant_message(result, kind), {"role": "user", "content": answer}]


def _services(ctx: AgentContext) -> RunServices:
    if ctx.services is None:
        raise AgentflowError(
            "run_default_agent needs a context built by the runtime (ctx.services is None); "
            "run the agent through agentflow.runtime.run_pipeline"
        )
    return ctx.services


async def run_default_agent(ctx: AgentContext) -> AgentOutput:
    """Run `ctx.agent` from its prompt on the run's model, with its tools.

    Raises:
        AgentflowError: the model asked for tools in more than `max_tool_rounds` turns.
        OutputValidationError: a QA/fan-out agent's structured answer did not
            validate, even after one re-ask with the validation error.
        ModelError: the model call failed (after the model's own retries).
        BudgetExceededError: this turn took the run over its budget.
    """
    services = _services(ctx)
    kind = output_kind(services.pipeline, ctx.spec)

    def answer(result: ModelTurn, usage: Usage) -> AgentOutput:
        if kind == "text":
            return AgentOutput(text=result.text, usage=usage)
        return _structured_output(kind, result, usage)

    return await _converse(ctx, services, kind, None, answer)


async def run_typed_agent(ctx: AgentContext, output_model: type[_Typed]) -> _Typed:
    """Run `ctx.agent` from its prompt; its answer is an `output_model` instance.

    The model answers through a forced `submit_output` tool whose input schema is
    `output_model`'s JSON schema; the input is validated into `output_model`, with
    one re-ask carrying the validation error. Usage is charged per model call.

    Raises:
        OutputValidationError: the answer did not validate, even after one re-ask.
        AgentflowError, ModelError, BudgetExceededError: as `run_default_agent`.
    """
    services = _services(ctx)
    schema = output_model.model_json_schema()

    def answer(result: ModelTurn, usage: Usage) -> _Typed:
        if result.structured is None:
            raise ValueError("the model answered without calling `submit_output`")
        return output_model.model_validate(dict(result.structured))

    return await _converse(ctx, services, "output", schema, answer)


async def _converse(
    ctx: AgentContext,
    services: RunServices,
    kind: AnswerKind,
    schema: Mapping[str, Any] | None,
    answer: Callable[[ModelTurn, Usage], _Answer],
) -> _Answer:
    """The agent's conversation: model turns, tool rounds, and re-asks until `answer` accepts.

    `answer` turns the final turn (no tool calls) into the agent's result; a
    ValidationError or ValueError from it re-asks once for a structured `kind`.
    """
    defaults, agent = services.pipeline.spec.defaults, ctx.spec
    tools = _agent_tools(services, agent)
    request = functools.partial(
        ModelRequest, agent=ctx.agent, item=ctx.item.id, attempt=ctx.attempt,
        model=agent.model or defaults.model,
        max_tokens=agent.max_tokens or defaults.max_tokens,
        system=services.renderer().render(ctx.agent, ctx.prompt_variables()),
        tools=tuple(ToolSchema(t_id, t.description, t.input_schema) for t_id, t in tools.items()),
        output=kind,
        temperature=defaults.temperature if agent.temperature is None else agent.temperature,
        timeout_s=defaults.timeout_s,
        output_schema=schema,
        dispatch=agent.dispatch,
    )  # fmt: skip
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": user_message(ctx, kind)}]}
    ]
    max_rounds = agent.max_tool_rounds or defaults.max_tool_rounds
    usage, rounds, reasks, turn = Usage(), 0, 0, 0
    while True:
        turn += 1
        result = await _model_turn(ctx, services, request(turn=turn, messages=tuple(messages)))
        usage = usage + result.usage
        if result.tool_calls:
            rounds += 1
            if rounds > max_rounds:
                raise AgentflowError(
                    f"agent '{ctx.agent}' asked for tools in more than {max_rounds} rounds "
                    f"(max_tool_rounds); raise max_tool_rounds for it, or change its prompt "
                    "so it needs fewer tool calls"
                )
            messages.append(assistant_message(result, kind))
            results = await _run_tools(
                ctx, services.hub, tools, result.tool_calls, services.redactor, services.memo, turn
            )
            results["content"] += structured_error_result(result, _EARLY_ANSWER.format(kind=kind))
            messages.append(results)
        elif kind == "text":
            return answer(result, usage)
        else:
            try:
                return answer(result, usage)
            except (ValidationError, ValueError) as exc:
                reasks += 1
                messages += _reask(ctx.agent, kind, result, exc, reasks)
