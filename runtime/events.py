"""`PipelineEvent`: the one record type of a run (audit log lines, UI stream, webhooks).

Each event carries the SHA-256 of the previous event's JSON line (`prev_hash`),
so an edited, reordered or truncated audit log is detectable
(`agentflow verify RUN.jsonl`), and the hash of the pipeline source it ran.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["EventKind", "PipelineEvent"]


class EventKind(enum.StrEnum):
    """Every kind of event; payload fields per kind are listed in docs/events.md."""

    RUN_STARTED = "run_started"  # pipeline, version, input, model, options
    RUN_FINISHED = "run_finished"  # status, final_state, usage, items summary
    RUN_CANCELLED = "run_cancelled"  # reason
    TRANSITION = "transition"  # from, to, trigger, noop
    TRANSITION_DEFERRED = "transition_deferred"  # to, trigger: a terminal move held for aggregation
    AGENT_STARTED = "agent_started"  # feedback (issues injected), upstream agent
    AGENT_COMPLETED = "agent_completed"  # text (truncated), items count, usage
    AGENT_FAILED = "agent_failed"  # error type, message
    QA_VERDICT = "qa_verdict"  # passed, issues
    RETRY_SCHEDULED = "retry_scheduled"  # qa, target, next_attempt, delay_ms, issues
    ITEM_CREATED = "item_created"  # parent, index, payload (truncated)
    ITEM_FINISHED = "item_finished"  # status: passed | failed | aborted | completed, gates
    ITEM_ABORTED = "item_aborted"  # reason
    AGGREGATION = "aggregation"  # strategy, passed, failed, aborted, decision, transition
    MODEL_REQUEST = "model_request"  # model, turn, tools offered, output kind
    MODEL_TEXT = "model_text"  # turn, text (a batch of streamed deltas)
    MODEL_RESPONSE = "model_response"  # turn, text, tool_calls, structured, usage, stop_reason
    MODEL_ERROR = "model_error"  # turn, error, retrying, delay_s
    TOOL_CALL = "tool_call"  # tool, call_id, input
    TOOL_RESULT = "tool_result"  # tool, call_id, output | error
    SINK_ERROR = "sink_error"  # sink, error, dropped
    BUDGET_EXCEEDED = "budget_exceeded"  # limit, spent
    WARNING = "warning"  # message


class PipelineEvent(BaseModel):
    """One structured record of something that happened in a run.

    `seq` is 0-based and gap-free within a run; `ts` is Unix time in seconds.
    `agent`, `item` and `attempt` are set when the event concerns one agent
    invocation on one work item.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    run_id: str
    seq: int
    ts: float
    kind: EventKind
    agent: str | None = None
    item: str | None = None
    attempt: int | None = None
    payload: dict[str, Any] = {}
    pipeline_hash: str = ""
    prev_hash: str = ""
