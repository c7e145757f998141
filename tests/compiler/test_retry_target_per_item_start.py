"""A QA agent's retry target must be upstream of it on every kind of work item it runs on.

A QA agent that runs both on an item its entry path reaches and as the first agent of a
fan-out's child items could name a target upstream only on the first: on a child item the
retry then ran the target there for the first time, which fanned out again, and the run
never ended (found by the bounds helper's random pipelines).
"""

from __future__ import annotations

from pathlib import Path

from .v2_helpers import compile_text, errors, line_of

NEVER_ENDS = """\
name: fo2
defaults:
  retry: {max_attempts: 2, backoff_ms: 0}
agents:
  - id: a0
    prompt: p.md
    dispatch:
      strategy: route
      cases: {c0: a2, c1: abort, c2: a3}
  - id: a2
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [a4, a5]}
  - id: a3
    prompt: p.md
    dispatch: {strategy: parallel_fan_out, target: a4}
  - id: a5
    prompt: p.md
  - id: a4
    prompt: p.md
    on_fail: {action: feedback_and_retry, target: a0}
"""


def test_a_retry_target_missing_on_a_child_item_is_an_error(tmp_path: Path) -> None:
    found = errors(NEVER_ENDS, tmp_path)
    line = line_of(NEVER_ENDS, "target: a0}")
    assert any(
        f"v.yaml:{line}:" in e
        and "on_fail target 'a0' is not upstream of 'a4' on the child items of fan-out 'a3'" in e
        for e in found
    ), found


UPSTREAM_EVERYWHERE = """\
name: fo3
defaults:
  retry: {max_attempts: 2, backoff_ms: 0}
agents:
  - id: a0
    prompt: p.md
    dispatch:
      strategy: route
      cases: {c0: a2, c1: abort, c2: a3}
  - id: a2
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [writer, a5]}
  - id: a3
    prompt: p.md
    dispatch: {strategy: parallel_fan_out, target: writer}
  - id: a5
    prompt: p.md
  - id: writer
    prompt: p.md
    dispatch: {strategy: sequential, target: a4}
  - id: a4
    prompt: p.md
    on_fail: {action: feedback_and_retry, target: writer}
"""


def test_a_retry_target_upstream_on_every_item_compiles(tmp_path: Path) -> None:
    compile_text(UPSTREAM_EVERYWHERE, tmp_path)
