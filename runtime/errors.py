"""The exception tree of agentflow's runtime and compiler.

AgentflowError                  root: catch this to catch anything agentflow raises
├── PipelineDefinitionError     a compiled pipeline is inconsistent (e.g. an unknown agent)
├── InvalidTransition           a move that the pipeline's TRANSITIONS table does not allow
├── ToolError                   a tool failed; the message is sent back to the model
│   └── PathEscapeError         the filesystem tool refused a path outside its root
├── ModelError                  a model call failed after its retries
│   ├── ModelRequestRejected    the API refused the request for good (auth, bad request)
│   └── CassetteMissError       offline replay has no recorded response for a call
├── OutputValidationError       an agent's structured output did not validate
├── BudgetExceededError         the run's cost or token budget was spent
└── RunAbortedError             the run was ended (cancelled, or an abort policy)
"""

from __future__ import annotations

__all__ = [
    "AgentflowError",
    "BudgetExceededError",
    "CannotStartError",
    "CassetteMissError",
    "InvalidTransition",
    "ModelError",
    "ModelRequestRejected",
    "OutputValidationError",
    "PathEscapeError",
    "PipelineDefinitionError",
    "RunAbortedError",
    "ToolError",
]


class AgentflowError(Exception):
    """Root of every exception agentflow raises on purpose."""


class CannotStartError(AgentflowError):
    """A command could not start: a bad argument, a missing or invalid file, a busy port,
    a log in use. Nothing ran and no file was changed; the `agentflow` CLI exits 2."""


class PipelineDefinitionError(AgentflowError):
    """Raised when a compiled pipeline is inconsistent with itself or with its handlers."""


class InvalidTransition(AgentflowError):
    """Raised when a trigger has no entry for the current state in TRANSITIONS."""

    def __init__(self, state: str, trigger: str, agent: str | None) -> None:
        self.state = state
        self.trigger = trigger
        self.agent = agent
        who = f" (fired by agent '{agent}')" if agent else ""
        super().__init__(
            f"invalid transition: trigger '{trigger}'{who} is not allowed in state '{state}'. "
            "Only the moves listed in the pipeline's TRANSITIONS table are legal; "
            "a terminal state has no way out."
        )


class ToolError(AgentflowError):
    """Raised by a tool when it cannot do what it was asked; the text goes back to the model."""


class PathEscapeError(ToolError):
    """Raised when a filesystem tool path would leave the tool's root directory."""


class ModelError(AgentflowError):
    """Raised when a model call fails after the retries its policy allows."""


class ModelRequestRejected(ModelError):
    """Raised when the model API rejects a request in a way no retry can fix (401, 400, ...)."""


class CassetteMissError(ModelError):
    """Raised when offline replay has no recorded response for (agent, item, attempt, turn)."""


class OutputValidationError(AgentflowError):
    """Raised when an agent's structured output (QA verdict, work items) fails validation."""


class BudgetExceededError(AgentflowError):
    """Raised when a run has spent its `max_cost_usd` or `max_total_tokens` budget."""


class RunAbortedError(AgentflowError):
    """Raised when a run is ended early, by cancellation or by an abort policy."""
