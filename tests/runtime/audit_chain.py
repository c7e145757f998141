"""`chained(path)`: the hash chain alone, for tests of hand-made hub logs that are no run
(`verify_log` also wants a run's `run_finished` agreeing with its events, and the seal)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agentflow.runtime.events.event import PipelineEvent


def chained(path: Path) -> bool:
    """True when seq runs 0, 1, 2, ... and each prev_hash is the SHA-256 of the line before."""
    prev = ""
    for seq, line in enumerate(path.read_bytes().splitlines()):
        event = PipelineEvent.model_validate_json(line)
        if (event.seq, event.prev_hash) != (seq, prev):
            return False
        prev = hashlib.sha256(line).hexdigest()
    return True
