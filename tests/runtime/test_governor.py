"""RetryGovernor: attempt counting and backoff with jitter."""

from __future__ import annotations

import pytest

from agentflow.runtime.engine.governor import RetryGovernor
from agentflow.runtime.spec import PipelineSpec

from .test_engine_fakes import hello_spec


def governor(**kwargs: object) -> RetryGovernor:
    return RetryGovernor(PipelineSpec.model_validate(hello_spec()), **kwargs)  # type: ignore[arg-type]


def test_max_attempts_per_agent_and_default() -> None:
    g = governor()
    assert g.max_attempts("reviewer_agent") == 2  # its own retry
    assert g.max_attempts("writer_agent") == 3  # defaults.retry


def test_failures_counted_per_agent_and_item() -> None:
    g = governor()
    assert g.record_failure("reviewer_agent", "item-1") is True
    assert g.record_failure("reviewer_agent", "item-2") is True  # another item: own count
    assert g.record_failure("reviewer_agent", "item-1") is False  # 2 of 2: exhausted
    assert (g.failures("reviewer_agent", "item-1"), g.failures("reviewer_agent", "item-2")) == (
        2,
        1,
    )
    assert g.failures("reviewer_agent", "item-3") == 0


def test_backoff_is_exponential_with_bounded_jitter() -> None:
    g = governor(seed=1)
    for attempt in (1, 2, 3, 4):
        base = 0.2 * 2 ** (attempt - 1)
        delays = [g.next_delay("reviewer_agent", attempt) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert max(delays) - min(delays) > base * 0.3  # it really jitters


def test_seeded_jitter_is_reproducible_and_scale_applies() -> None:
    a = [governor(seed=3).next_delay("reviewer_agent", 2) for _ in range(2)]
    assert a[0] == a[1]
    assert governor(seed=3, backoff_scale=0.5).next_delay("reviewer_agent", 2) == pytest.approx(
        a[0] / 2
    )
    assert governor(backoff_scale=0).next_delay("reviewer_agent", 5) == 0.0
