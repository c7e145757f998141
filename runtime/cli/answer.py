"""`agentflow answer RUN --item I --agent A (@FILE | JSON) [--by NAME] [--no-resume]`.

Records a person's answer to a waiting run's human step (docs/human.md): the
answer is validated against the agent's output model (the pipeline's generated
`HUMAN_ANSWERS`); a bad answer is exit 2 with every bad field named, and nothing
is recorded. A good one becomes the invocation's `steps` row plus a
`human_answered` event, committed under a new lease epoch; then the run resumes
(`agentflow resume RUN`) unless `--no-resume`.

`AnswerService` is the same for the UI server's `POST /api/runs/<run>/answer`
(`ui/answer_endpoint.py`): it records, then resumes in this process.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio
from pydantic import BaseModel

from ..engine.human import HumanAnswerError, HumanStep, record_answer
from ..errors import CannotStartError
from ..store import RunNotFoundError, RunRecord, RunStore
from .compiled_loader import compile_and_import
from .store_options import open_store_for_reading

__all__ = ["AnswerRefused", "AnswerService", "add_answer_parser", "cmd_answer", "read_answer"]

Resume = Callable[[Sequence[str]], int]
"""Runs `agentflow resume ...` with these arguments and returns its exit status."""


class AnswerRefused(CannotStartError):
    """The answer was not recorded: bad JSON, no such run or open step, or an answer that
    does not fit the agent's output (exit 2)."""


def add_answer_parser(sub: Any, store_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """The `answer` subcommand's arguments."""
    answer = sub.add_parser(
        "answer",
        help="answer a waiting run's human step, then resume the run",
        description=(
            "Record a person's answer to a human step of a waiting run (see `agentflow "
            "show RUN` for what it waits for), validated against the agent's output; then "
            "resume the run. Exit 2, with nothing recorded, when the answer does not fit."
        ),
    )
    answer.add_argument("run", help="the run id (or a prefix naming one run)")
    answer.add_argument("answer", help="the answer: a JSON object, or @FILE holding one")
    answer.add_argument("--item", required=True, help="the work item that waits (e.g. main)")
    answer.add_argument("--agent", required=True, help="the human agent that asked")
    answer.add_argument("--by", help="who answers (default: $USER)")
    answer.add_argument(
        "--no-resume", action="store_true", help="only record the answer; resume later"
    )
    answer.add_argument("--no-ui", action="store_true", help="resume without the web UI")
    answer.add_argument("--json", action="store_true", help="resume printing JSON events")
    answer.add_argument("--quiet", action="store_true", help="resume printing only the summary")
    store_options(answer)


def read_answer(text: str) -> object:
    """The answer given on the command line: JSON text, or `@FILE` holding JSON.

    Raises:
        AnswerRefused: the file cannot be read, or the text is not JSON (line/column named).
    """
    where = "the answer"
    if text.startswith("@"):
        path = Path(text[1:])
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AnswerRefused(f"answer file {path}: cannot read it: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerRefused(
            f"{where}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}; give a JSON object such "
            'as \'{"approved": true, "comment": "ok"}\' or @answer.json'
        ) from None


def default_answerer() -> str:
    """Who answers when `--by` is not given: $USER, else the login name, else `unknown`."""
    name = os.environ.get("USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


class AnswerService:
    """Validates and records answers to one store's waiting runs (the CLI and the UI).

    `resume` runs `agentflow resume` in this process; None: never resume.
    """

    def __init__(self, store: RunStore, store_arguments: Sequence[str], resume: Resume | None):
        self.store = store
        self.store_arguments = tuple(store_arguments)
        self.resume = resume

    def answer_models(self, record: RunRecord) -> Mapping[str, type[BaseModel]]:
        """The run's pipeline's answer models (its generated `HUMAN_ANSWERS`).

        Raises:
            AnswerRefused: the run recorded no pipeline path, or the pipeline changed.
        """
        if not record.pipeline_path:
            raise AnswerRefused(f"run {record.id} recorded no pipeline file to check answers by")
        module = compile_and_import(record.pipeline_path)
        compiled = module.compiled
        if compiled.source_sha256 != record.source_hash:
            raise AnswerRefused(
                f"pipeline {record.pipeline_path} changed since run {record.id} started; an "
                "answer is checked against the pipeline the run used: restore that version"
            )
        humans = {agent.id for agent in compiled.spec.agents if agent.human is not None}
        return {a: m for a, m in compiled.output_models.items() if a in humans}

    async def record(
        self, run_id: str, *, item: str, agent: str, answer: object, by: str
    ) -> tuple[RunRecord, HumanStep]:
        """Validate and commit the answer.

        Raises:
            AnswerRefused: nothing was recorded; the message says why.
        """
        try:
            record = self.store.run(run_id)
        except RunNotFoundError as exc:
            raise AnswerRefused(str(exc)) from None
        models = await trio.to_thread.run_sync(self.answer_models, record)
        try:
            step = await record_answer(
                self.store, record.id, models, item=item, agent=agent, answer=answer, by=by
            )
        except HumanAnswerError as exc:
            raise AnswerRefused(str(exc)) from None
        return record, step

    def resume_arguments(self, run_id: str, extra: Sequence[str] = ()) -> list[str]:
        return ["resume", run_id, *self.store_arguments, *extra]

    async def answer(
        self, run_id: str, *, item: str, agent: str, answer: object, by: str
    ) -> dict[str, Any]:
        """The UI's `AnswerBackend`: record, then resume the run in this process (in a
        worker thread with its own trio loop, as `agentflow resume --no-ui --quiet`).

        Raises:
            AnswerRejected: nothing was recorded (`status`: the HTTP status to reply).
        """
        from ..ui.answer_endpoint import AnswerRejected as Rejected

        try:
            record, step = await self.record(run_id, item=item, agent=agent, answer=answer, by=by)
        except AnswerRefused as exc:
            message = str(exc)
            status = (
                404 if message.startswith("no run ") or "names several runs" in message
                else 422 if "does not fit" in message or "not a human step" in message
                else 409
            )  # fmt: skip
            raise Rejected(status, message) from None
        resume = self.resume
        if resume is not None:
            arguments = self.resume_arguments(record.id, ["--no-ui", "--quiet"])
            trio.lowlevel.spawn_system_task(
                trio.to_thread.run_sync, resume, arguments, name=f"resume {record.id}"
            )
        return {
            "run": record.id,
            "agent": step.agent,
            "item": step.item,
            "attempt": step.attempt,
            "by": by,
            "resuming": resume is not None,
        }


def cmd_answer(args: argparse.Namespace, resume: Resume) -> int:
    """`agentflow answer`: record the answer, then `resume(["resume", RUN, ...])`."""
    answer = read_answer(args.answer)
    store = open_store_for_reading(args)
    store_arguments = ["--store", args.store] if args.store else []
    try:
        service = AnswerService(store, store_arguments, resume)
        by = args.by or default_answerer()
        record, step = trio.run(
            lambda: service.record(args.run, item=args.item, agent=args.agent, answer=answer, by=by)
        )
    finally:
        store.close()
    print(
        f"answer recorded: run {record.id}, agent {step.agent} on item {step.item} "
        f"(attempt {step.attempt}), by {by}"
    )
    if args.no_resume:
        print(f"resume it with: agentflow resume {record.id}")
        return 0
    chosen = ("no_ui", "json", "quiet")
    flags = [f"--{name.replace('_', '-')}" for name in chosen if getattr(args, name)]
    return resume(service.resume_arguments(record.id, flags))
