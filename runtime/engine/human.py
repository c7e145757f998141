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

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import AgentflowError
from .context import AgentContext

__all__ = [
    "HumanAnswerError",
    "HumanAnswerNeeded",
    "answer_problems",
    "human_request",
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
    the assignee (None when the pipeline names nobody)."""
    services = ctx.services
    if services is None:
        raise RuntimeError(f"agent '{ctx.agent}' is a human step: it runs only inside a run")
    spec = services.pipeline.spec.agent(ctx.agent)
    question = services.renderer().render(ctx.agent, ctx.prompt_variables())
    assignee = spec.human.assignee if spec.human is not None else None
    return {
        "question": question,
        "output_schema": output_model.model_json_schema(),
        "assignee": assignee,
    }


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
            f"the answer does not fit agent '{agent}''s output ({output_model.__name__}): "
            f"{problems}"
        ) from None
