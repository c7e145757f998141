"""Resume a run from the run store: `resume_run` (docs/resume.md).

A resume re-executes the run from item `main` with the memos the store holds
(DURABLE.md "Resume"; the lead's design, s17): invocations whose output is in
`steps` return it without calling their handler, model turns and tool results
come from `model_calls` / `tool_calls`, and the events already committed are
consumed by a replay filter instead of being published again. The first step
with no memo goes live. The log's hash chain continues after a `run_resumed`
event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import CannotStartError
from ..events.sink import LogSink
from ..models.base import Model
from ..pipeline import CompiledPipeline
from ..tools.base import Tool

if TYPE_CHECKING:
    from ..store import RunStore
    from .run_result import RunResult
    from .runner import RunOptions

__all__ = ["RESUMABLE", "ResumeRefused", "resume_run"]

RESUMABLE = frozenset({"running", "cancelled", "error", "waiting"})
"""The run statuses a resume accepts (`passed`, `failed`, `completed` are final)."""


class ResumeRefused(CannotStartError):
    """The run cannot be resumed: it finished, its pipeline's source changed, or a live
    process owns it. The message says which and what to do; `agentflow resume` exits 2."""


async def resume_run(
    compiled: CompiledPipeline,
    store: RunStore,
    run_id: str,
    *,
    handlers: object,
    model: Model | None,
    tools: Mapping[str, Tool] | None = None,
    sinks: Sequence[LogSink] = (),
    options: RunOptions | None = None,
    allow_changed: bool = False,
    force: bool = False,
) -> RunResult:
    """Continue run `run_id` of `compiled` from what `store` recorded, to its end.

    Args:
        compiled: the pipeline the run ran (its source hash must match the run's unless
            `allow_changed`).
        store: the run store holding the run.
        run_id: the run's id.
        handlers, model, tools, sinks: as for `run_pipeline`.
        options: as for `run_pipeline`; `run_id` and `audit_log` are the run's own.
        allow_changed: resume even though the pipeline's source changed.
        force: resume a `running` run whose owner still looks alive.

    Raises:
        ResumeRefused: the run finished, its source changed, or a live process owns it.
        RunNotFoundError: no such run in the store.
    """
    raise NotImplementedError("resume_run is being built (helper R, session 17)")
