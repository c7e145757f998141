"""Human steps: an agent a person answers (`human:` in the pipeline, docs/human.md).

A human agent's body asks; it never answers itself. It renders the question
(the agent's template, like a prompt) and raises `HumanAnswerNeeded`; the
dispatcher then publishes `human_requested` and parks the item (status
`waiting`, no `item_finished`) while every other item runs on, and a run left
with only waiting items ends with status `waiting`. `agentflow answer` (or
`POST /api/runs/<run>/answer`) validates a person's answer against the agent's
output model, records it as that invocation's `steps` row plus a
`human_answered` event, and resumes the run: the resumed dispatcher serves the
invocation from its `steps` row, so this body is not called again for it.

A run with no store (`--no-store`, a library run without a committer) has
nowhere to wait: the dispatcher fails the item with `HUMAN_NEEDS_STORE`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import trio
from pydantic import BaseModel, ValidationError

from ..agents import typed_agent_output
from ..errors import AgentflowError
from ..events.event import EventKind
from ..events.hub import EventHub
from .context import AgentContext

if TYPE_CHECKING:
    from ..store import RunRecord, RunStore

__all__ = [
    "HumanAnswerError",
    "HumanAnswerNeeded",
    "HumanStep",
    "answer_command",
    "answer_problems",
    "human_request",
    "human_steps",
    "record_answer",
    "run_human_step",
    "validated_answer",
]

_Answer = TypeVar("_Answer", bound=BaseModel)


class HumanAnswerNeeded(Exception):
    """Raised by a human agent's body: the invocation waits for a person's answer.

    The dispatcher turns it into a `human_requested` event and a waiting item;
    it is never a failure.
    """

    def __init__(self, agent: str, payload: dict[str, Any]) -> None:
        super().__init__(f"agent '{agent}' waits for a person's answer")
        self.agent = agent
        self.payload = payload


class HumanAnswerError(AgentflowError):
    """A person's answer does not fit the human agent's output shape (nothing recorded)."""


def human_request(ctx: AgentContext, output_model: type[BaseModel]) -> dict[str, Any]:
    """The `human_requested` payload: the rendered question, the answer's JSON Schema,
    the assignee (None when the pipeline names nobody), and on a QA retry the
    `feedback` issues that rejected the previous answer."""
    services = ctx.services
    if services is None:
        raise RuntimeError(f"agent '{ctx.agent}' is a human step: it runs only inside a run")
    spec = services.pipeline.spec.agent(ctx.agent)
    question = services.renderer().render(ctx.agent, ctx.prompt_variables())
    assignee = spec.human.assignee if spec.human is not None else None
    request: dict[str, Any] = {
        "question": question,
        "output_schema": output_model.model_json_schema(),
        "assignee": assignee,
    }
    if ctx.feedback:  # a QA agent rejected the previous answer: the person sees why
        request["feedback"] = [issue.model_dump(mode="json") for issue in ctx.feedback]
    return request


async def run_human_step(ctx: AgentContext, output_model: type[_Answer]) -> _Answer:
    """A human agent's body: ask (raise `HumanAnswerNeeded`); the answer comes by resume.

    Raises:
        HumanAnswerNeeded: always; the dispatcher parks the item.
    """
    raise HumanAnswerNeeded(ctx.agent, human_request(ctx, output_model))


def answer_problems(error: ValidationError) -> list[str]:
    """One line per problem of an answer: the field's dotted path and what is wrong."""
    lines: list[str] = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "the answer"
        if problem["type"] == "missing":
            lines.append(f"{where}: missing (the answer needs this field)")
        elif problem["type"] == "extra_forbidden":
            lines.append(f"{where}: not a field of this answer")
        else:
            lines.append(f"{where}: {problem['msg']} (got {problem.get('input')!r})")
    return lines


def validated_answer(agent: str, output_model: type[BaseModel], answer: object) -> BaseModel:
    """`answer` validated as `agent`'s output model.

    Raises:
        HumanAnswerError: it does not validate; the message names every bad field.
    """
    if not isinstance(answer, dict):
        raise HumanAnswerError(
            f"the answer for agent '{agent}' must be a JSON object with the fields "
            f"{', '.join(output_model.model_fields)}; got {type(answer).__name__}"
        )
    try:
        return output_model.model_validate(answer)
    except ValidationError as exc:
        problems = "; ".join(answer_problems(exc))
        raise HumanAnswerError(
            f"the answer does not fit the output of agent '{agent}' "
            f"({output_model.__name__}): {problems}"
        ) from None


@dataclass(frozen=True)
class HumanStep:
    """A human step a run asked and has not passed yet (from its committed events).

    `answered_by` is set once `agentflow answer` recorded an answer that no resume
    has used yet (`--no-resume`).
    """

    agent: str
    item: str
    attempt: int
    question: str
    assignee: str | None
    output_schema: dict[str, Any]
    answered_by: str | None = None


_STEP_KINDS = ("human_requested", "human_answered", "agent_completed", "agent_failed")


def human_steps(store: RunStore, run_id: str) -> list[HumanStep]:
    """The run's open human steps, oldest first: each `human_requested` whose invocation
    has no `agent_completed` / `agent_failed` after it."""
    steps: dict[tuple[str, str, int], HumanStep] = {}
    for line in store.lines(run_id, kinds=_STEP_KINDS):
        event = json.loads(line)
        key = (str(event.get("agent")), str(event.get("item")), int(event.get("attempt") or 0))
        payload = event.get("payload") or {}
        kind = event.get("kind")
        if kind == "human_requested":
            steps[key] = HumanStep(
                key[0],
                key[1],
                key[2],
                str(payload.get("question", "")),
                payload.get("assignee"),
                payload.get("output_schema") or {},
            )
        elif kind == "human_answered" and key in steps:
            step = steps[key]
            steps[key] = HumanStep(**{**step.__dict__, "answered_by": str(payload.get("by"))})
        elif key in steps:
            del steps[key]
    return list(steps.values())


def answer_command(run_id: str, step: HumanStep) -> str:
    """The command that answers `step` of run `run_id`."""
    return f"agentflow answer {run_id} --item {step.item} --agent {step.agent} @answer.json"


async def record_answer(
    store: RunStore,
    run_id: str,
    answer_models: Mapping[str, type[BaseModel]],
    *,
    item: str,
    agent: str,
    answer: object,
    by: str,
) -> HumanStep:
    """Validate a person's answer to an open human step of a `waiting` run and commit
    it: the invocation's `steps` row and a `human_answered` event (payload: by, answer),
    in one transaction, under a new lease epoch. The run stays `waiting` until resumed.

    Raises:
        HumanAnswerError: the run is not waiting, no open step matches (the message lists
            the open ones), or the answer does not fit the output (nothing recorded).
        RunNotFoundError: no such run.
    """
    record = store.run(run_id)
    run_id = record.id
    if record.status != "waiting":
        raise HumanAnswerError(
            f"run {run_id} is not waiting for a person (its status is {record.status})"
        )
    steps = human_steps(store, run_id)
    step = next((s for s in steps if s.agent == agent and s.item == item), None)
    if step is None:
        listed = "; ".join(f"--item {s.item} --agent {s.agent}" for s in steps) or "none"
        raise HumanAnswerError(
            f"run {run_id} has no open human step of agent '{agent}' on item '{item}' "
            f"(open: {listed})"
        )
    if step.answered_by is not None:
        raise HumanAnswerError(
            f"agent '{agent}' on item '{item}' of run {run_id} is answered already (by "
            f"{step.answered_by}); resume the run: agentflow resume {run_id}"
        )
    model = answer_models.get(agent)
    if model is None:
        raise HumanAnswerError(f"agent '{agent}' is not a human step of this pipeline")
    typed = validated_answer(agent, model, answer)
    output = typed_agent_output(typed).model_dump(mode="json")
    await _commit_answer(store, record, step, output, by)
    return HumanStep(**{**step.__dict__, "answered_by": by})


async def _commit_answer(
    store: RunStore, record: RunRecord, step: HumanStep, output: dict[str, Any], by: str
) -> None:
    from ..store import LeaseLostError, step_row

    run_id, pipeline_hash, last_seq = record.id, record.source_hash, record.last_seq
    last_line = next(iter(store.lines(run_id, after=last_seq - 1)), None)
    if last_line is None:
        raise HumanAnswerError(f"run {run_id} has no committed events to answer after")
    try:  # only if no one took the run over since it was read (compare and swap)
        committer = await store.take_over(run_id, expect_epoch=record.epoch)
    except LeaseLostError:
        raise HumanAnswerError(
            f"run {run_id} was answered by another process or resumed meanwhile (its lease "
            "changed hands after it was read); nothing recorded. See agentflow show "
            f"{run_id}"
        ) from None
    hub = EventHub(run_id=run_id, pipeline_hash=pipeline_hash)
    hub.commit_to(committer)
    hub.continue_chain(last_seq + 1, hashlib.sha256(last_line.encode()).hexdigest())
    row = step_row(step.agent, step.item, step.attempt, output, last_seq + 1)
    stored = trio.Event()
    failures: list[BaseException] = []

    def committed(error: BaseException | None) -> None:
        if error is not None:
            failures.append(error)
        stored.set()

    async with hub.running():
        hub.publish(
            EventKind.HUMAN_ANSWERED,
            agent=step.agent,
            item=step.item,
            attempt=step.attempt,
            payload={"by": by, "answer": output["data"]},
        )
        hub.after_submitted(lambda: committer.submit_memo(row, committed))
        await stored.wait()
        await hub.wait_committed()
    failure = failures[0] if failures else hub.commit_failure
    if failure is not None:
        raise failure
