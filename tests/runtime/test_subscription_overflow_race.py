"""A subscription that overflows while its reader is at the checkpoint between seeing
an event buffered and taking it ends the iteration (`overflowed`); it does not crash the
reader. The UI's feeder (UiSource.run) renews its subscription on overflow, and died
with an IndexError when a 200,000-event run overflowed it at that moment
(bench/bench_ui.py)."""

from __future__ import annotations

import outcome
import pytest

from agentflow.runtime.events.event import EventKind
from agentflow.runtime.events.hub import EventHub


async def test_overflow_during_the_readers_checkpoint_ends_the_iteration() -> None:
    hub = EventHub(run_id="run-overflow")
    subscription = hub.subscribe(max_buffer=2)
    hub.emit(EventKind.RUN_STARTED, payload={})
    # Step the reader by hand: it sees the buffered event and yields at its checkpoint.
    step = subscription.__anext__()
    step.send(None)
    for _ in range(5):  # meanwhile more than max_buffer arrive: the buffer is dropped
        hub.emit(EventKind.WARNING, payload={"message": "x"})
    assert subscription.overflowed
    with pytest.raises(StopAsyncIteration):
        step.send(outcome.Value(None))  # the checkpoint returns
