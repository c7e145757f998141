"""`RetryGovernor`: counts QA failures per (agent, work item) and paces retries.

A QA agent's `retry.max_attempts` (else `defaults.retry.max_attempts`) is the
number of times the work it checks may be produced for one item, the first
attempt included: with `max_attempts: 2`, the first failing verdict schedules a
retry and the second aborts the item. Delays grow exponentially with full
jitter so parallel items do not retry in lock-step (docs/semantics.md).
"""

from __future__ import annotations

import random

from ..spec import MAX_BACKOFF_MS, PipelineSpec, RetrySpec

__all__ = ["RetryGovernor"]


class RetryGovernor:
    """Attempt bookkeeping and backoff for a run's QA feedback loops.

    Args:
        spec: the pipeline, for each agent's retry policy.
        backoff_scale: multiplies every delay (tests and benchmarks use 0).
        seed: seeds the jitter RNG so a run's delays are reproducible.
    """

    def __init__(self, spec: PipelineSpec, *, backoff_scale: float = 1.0, seed: int | None = None):
        default = spec.defaults.retry
        self._policy: dict[str, RetrySpec] = {a.id: a.retry or default for a in spec.agents}
        self._default = default
        self._scale = backoff_scale
        self._seed = seed
        self._rng: random.Random | None = None  # made on first use: seeding from urandom is slow
        # Invariant: (qa agent, item id) -> failing verdicts counted so far, >= 1 when present.
        self._failures: dict[tuple[str, str], int] = {}

    def max_attempts(self, agent: str) -> int:
        """How many attempts the QA loop of `agent` allows per item."""
        return self._policy.get(agent, self._default).max_attempts

    def failures(self, agent: str, item: str) -> int:
        """Failing verdicts of `agent` on `item` counted so far."""
        return self._failures.get((agent, item), 0)

    def record_failure(self, agent: str, item: str) -> bool:
        """Count one failing verdict; True if the loop may retry, False if exhausted."""
        key = (agent, item)
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        return count < self.max_attempts(agent)

    def next_delay(self, agent: str, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based) of `agent`'s loop.

        backoff_ms * 2**(attempt-1), capped at `MAX_BACKOFF_MS` (ten minutes),
        times a uniform jitter in [0.5, 1.0], times the run's backoff scale.
        """
        base_ms: int = self._policy.get(agent, self._default).backoff_ms
        if base_ms == 0 or self._scale == 0:
            return 0.0
        if self._rng is None:
            self._rng = random.Random(self._seed)
        jitter: float = self._rng.uniform(0.5, 1.0)
        wait_ms = min(base_ms * 2.0 ** (attempt - 1), MAX_BACKOFF_MS)
        return wait_ms * jitter * self._scale / 1000.0
