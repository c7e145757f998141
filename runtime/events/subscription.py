"""`Subscription`: one live view of an `EventHub` (the UI's WebSocket clients).

Each subscriber gets the hub's history (if kept), then live events, from its own
bounded buffer; one that falls behind is marked `overflowed` and its iteration
ends, so the consumer can resync. Subscribers never slow the hub's `emit`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import cast

import trio

from .event import PipelineEvent

__all__ = ["Entry", "Subscription"]

Entry = tuple[PipelineEvent | None, str]
"""(event, line); the event is None when no consumer needed the object (`EventHub.publish`)."""


class Subscription:
    """An async iterator of `(event, line)`: the hub's history, then live events.

    Iteration ends when the hub closes (after the buffered events) or when this
    subscriber falls more than `max_buffer` events behind; then `overflowed` is
    True and the consumer should resync (e.g. reconnect and replay the history).
    """

    def __init__(
        self,
        history: Sequence[Entry] | None,
        subscribers: set[Subscription],
        max_buffer: int,
        *,
        source_closed: bool = False,
    ) -> None:
        """Subscribe to a hub's events.

        Args:
            history: the hub's kept (event, line) list (None when it keeps none),
                read up to its length now.
            subscribers: the hub's live set; the hub pushes to it and this
                subscription leaves it when closed or overflowed.
            max_buffer: how far behind the live events this subscriber may fall.
            source_closed: the hub is already closed (no live event will come).
        """
        self._subscribers = subscribers
        self.max_buffer = max_buffer
        # Invariant: True once the hub closed (`_end`); iteration ends after the buffer.
        self._source_closed = source_closed
        history = history or ()
        # Invariant: history[_hist_index:_hist_end] is still to be yielded, before `_live`.
        self._history = history
        self._hist_index = 0
        self._hist_end = len(history)
        self._live: deque[Entry] = deque()
        self._wakeup = trio.Event()
        self._waiting = False
        self.overflowed = False
        self.closed = False

    def _push(self, entry: Entry) -> None:
        if len(self._live) >= self.max_buffer:
            self.overflowed = True
            self._live.clear()
            self._subscribers.discard(self)
        else:
            self._live.append(entry)
        self._wake()

    def _end(self) -> None:
        """The hub closed: end the iteration once the buffered events are out."""
        self._source_closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiting:
            self._waiting = False
            self._wakeup.set()

    def close(self) -> None:
        """Stop receiving events; iteration ends after what is already buffered."""
        self.closed = True
        self._subscribers.discard(self)
        self._wake()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[PipelineEvent, str]:
        # The hub builds every event while it keeps history or has subscribers.
        return cast(tuple[PipelineEvent, str], await self._next())

    async def _next(self) -> Entry:
        while True:
            if self.overflowed:
                raise StopAsyncIteration
            if self._hist_index < self._hist_end:
                entry = self._history[self._hist_index]
                self._hist_index += 1
                await trio.lowlevel.checkpoint()
                return entry
            if self._live:
                await trio.lowlevel.checkpoint()
                if self._live:  # an overflow at the checkpoint dropped the buffer
                    return self._live.popleft()
                continue
            if self.closed or self._source_closed:
                raise StopAsyncIteration
            self._wakeup = trio.Event()
            self._waiting = True
            await self._wakeup.wait()
