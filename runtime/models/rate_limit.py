"""`RateLimiter`: paces model calls to the API's requests and tokens per minute.

Anthropic limits an API key's requests, input tokens and output tokens per
minute with token buckets that refill continuously, and says where each one
stands on every response (`anthropic-ratelimit-{requests,input-tokens,
output-tokens,tokens}-{limit,remaining,reset}`; `reset` is an RFC 3339 time).
One limiter is shared by every call of an `AnthropicModel` (so by every call
of a run, fan-outs included); it keeps the same buckets on this side:

- Before a request goes out it is charged 1 request, its input tokens as
  estimated from its characters (/ 3, the estimate prompt caching uses) and
  `max_tokens` output tokens (the API too charges `max_tokens` up front). If a
  bucket lacks room the call waits, in arrival order (FIFO), until the
  bucket's refill covers it; a call never waits while every bucket has room.
- A response's headers replace this side's view with the API's own: the
  `remaining` figures, less what this side sent that has not been answered
  yet (requests reach the API out of order, so the API may not have counted
  those; the next headers correct an over-count). So other clients of the same
  key are seen, and estimates are corrected.
- When a response ends, its actual usage is settled in the buckets no headers
  have described since it went out (a cap the API does not report, or an API
  that sends no headers): unused output tokens go back and the input estimate
  becomes the real count (cache reads are free: the API does not count them
  against the input limit). Where headers came, the API's next headers carry
  the same correction; crediting it here too would count it twice.
- A 429 with `retry-after` holds every call until then (a 529, the API's
  overall load, delays only its own retry); the refused request is not
  counted (it was not served).
- `max_requests_per_minute` / `max_tokens_per_minute` (input + output tokens)
  cap a key shared with others below what its headers allow.

Nothing deadlocks: a request larger than a bucket's whole capacity goes when
the bucket is full (and drives it below zero), every ticket is settled in a
`finally`, and a cancelled waiter leaves the queue. Time is trio's clock;
`period_s` (60: "per minute") is shorter only against a fake API whose limits
are scaled for tests.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import trio

from ..errors import AgentflowError
from ..usage import Usage

__all__ = [
    "BucketState",
    "RateLimiter",
    "RateTicket",
    "WaitCallback",
    "parse_rate_limit_headers",
]

PERIOD_S = 60.0
"""The API's limits are per minute."""

MAX_HOLD_S = 60.0
"""The longest one `retry-after` or `reset` may hold calls: a wrong header cannot stall a run."""

WaitCallback = Callable[[float, str], None]
"""`on_wait(wait_s, limit)`: a call waits about `wait_s` for `limit` (a bucket, "retry-after",
or "queue": behind calls that wait)."""

# Header family -> bucket name. `tokens-*` is the most restrictive token limit in
# effect: used only when the API sends no per-direction token headers.
_FAMILIES: Mapping[str, str] = {
    "requests": "requests",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
    "tokens": "tokens",
}


@dataclass(frozen=True, slots=True)
class BucketState:
    """One bucket as a response's headers describe it (None: that header was absent)."""

    limit: int | None
    remaining: int | None
    reset_in_s: float | None  # seconds from when the headers were read until it is full


def parse_rate_limit_headers(
    headers: Mapping[str, str], *, now_wall: float | None = None
) -> dict[str, BucketState]:
    """The `anthropic-ratelimit-*` buckets in `headers`, by bucket name.

    Buckets: "requests", "input_tokens", "output_tokens", and "tokens" only when
    neither per-direction token bucket is present. A malformed value counts as absent.
    """
    wall = time.time() if now_wall is None else now_wall
    states: dict[str, BucketState] = {}
    for family, name in _FAMILIES.items():
        prefix = f"anthropic-ratelimit-{family}-"
        limit = _int(headers.get(prefix + "limit"))
        remaining = _int(headers.get(prefix + "remaining"))
        reset = _reset_in(headers.get(prefix + "reset"), wall)
        if limit is None and remaining is None and reset is None:
            continue
        states[name] = BucketState(limit, remaining, reset)
    if "input_tokens" in states or "output_tokens" in states:
        states.pop("tokens", None)
    return states


def _int(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _reset_in(raw: str | None, now_wall: float) -> float | None:
    if not raw:
        return None
    try:
        stamp = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return max(0.0, stamp.timestamp() - now_wall)


@dataclass(slots=True)
class _Bucket:
    """A token bucket: `limit` per period, refilling continuously, at `level` now."""

    name: str
    period_s: float
    configured: float | None = None  # the user's cap (max_*_per_minute)
    reported: float | None = None  # the API's limit, from headers
    level: float = math.inf  # unknown until a limit is known: no pacing
    updated: float = 0.0
    held_until: float = 0.0  # a limit-less bucket the API said is empty: its reset

    @property
    def limit(self) -> float | None:
        caps = [c for c in (self.configured, self.reported) if c is not None]
        return min(caps) if caps else None

    def refill(self, now: float) -> None:
        limit = self.limit
        if limit is not None and self.level < limit:
            self.level = min(limit, self.level + (now - self.updated) * limit / self.period_s)
        self.updated = now

    def wait_s(self, cost: float, now: float) -> float:
        """Seconds until `cost` fits (a cost above the capacity fits a full bucket)."""
        if self.held_until > now:
            return self.held_until - now
        limit = self.limit
        if limit is None:
            return 0.0
        needed = min(cost, limit)
        if self.level >= needed:
            return 0.0
        return (needed - self.level) * self.period_s / limit


@dataclass(eq=False, slots=True)
class RateTicket:
    """One request's charge, from `acquire` until `settle` (or `refused`)."""

    seq: int
    input_tokens: int
    max_tokens: int
    answered: bool = False  # its response's headers came back: the API counted it
    # Buckets whose view came from headers that counted this request: the API's
    # next headers, not `settle`, correct its estimates there.
    synced: set[str] = field(default_factory=set)

    def cost(self, bucket: str) -> float:
        if bucket == "requests":
            return 1.0
        if bucket == "input_tokens":
            return float(self.input_tokens)
        if bucket == "output_tokens":
            return float(self.max_tokens)
        return float(self.input_tokens + self.max_tokens)  # "tokens"


class RateLimiter:
    """Paces requests and tokens from the API's headers and the configured caps.

    Args:
        max_requests_per_minute: at most this many requests a minute (None: as
            the API's headers allow).
        max_tokens_per_minute: at most this many input + output tokens a minute.
        period_s: the period the limits count over (60; a scaled fake API's in tests).
        max_hold_s: the longest one `retry-after` or `reset` may hold calls.
    """

    def __init__(
        self,
        *,
        max_requests_per_minute: int | None = None,
        max_tokens_per_minute: int | None = None,
        period_s: float = PERIOD_S,
        max_hold_s: float = MAX_HOLD_S,
    ) -> None:
        for name, value in (
            ("max_requests_per_minute", max_requests_per_minute),
            ("max_tokens_per_minute", max_tokens_per_minute),
        ):
            if value is not None and value < 1:
                raise AgentflowError(f"{name}={value}: use 1 or more, or None for no cap")
        if not period_s > 0:
            raise AgentflowError(f"period_s={period_s}: use a positive number of seconds")
        self.period_s = period_s
        self.max_hold_s = max_hold_s
        self.max_requests_per_minute = max_requests_per_minute
        self.max_tokens_per_minute = max_tokens_per_minute
        self._buckets: dict[str, _Bucket] = {}
        # Every limit counts over `period_s`: a minute, except against a scaled fake API.
        if max_requests_per_minute is not None:
            self._bucket("requests").configured = float(max_requests_per_minute)
        if max_tokens_per_minute is not None:
            self._bucket("tokens").configured = float(max_tokens_per_minute)
        for bucket in self._buckets.values():
            bucket.level = bucket.limit or math.inf
        self._seq = itertools.count()
        self._in_flight: dict[int, RateTicket] = {}
        self._held_until = 0.0  # retry-after: every call waits until then
        self._queue = trio.Lock()  # FIFO: waiting calls go in arrival order
        self._changed = trio.Event()  # set when headers or a settle may make room
        self.waits = 0  # calls that waited
        self.refusals = 0  # 429/529 responses seen

    def _bucket(self, name: str) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(name, self.period_s)
        return bucket

    @property
    def in_flight(self) -> int:
        """Requests charged and not settled yet."""
        return len(self._in_flight)

    @property
    def paces(self) -> bool:
        """Whether any limit is known (configured, or from headers)."""
        return any(b.limit is not None or b.held_until for b in self._buckets.values())

    def wait_s(self, input_tokens: int, max_tokens: int) -> tuple[float, str]:
        """How long a request of this size would wait now, and for which limit."""
        probe = RateTicket(-1, input_tokens, max_tokens)
        return self._wait(probe, trio.current_time())

    def _wait(self, ticket: RateTicket, now: float) -> tuple[float, str]:
        wait, limit = self._held_until - now, "retry-after"
        for bucket in self._buckets.values():
            bucket.refill(now)
            needed = bucket.wait_s(ticket.cost(bucket.name), now)
            if needed > wait:
                wait, limit = needed, bucket.name
        return wait, limit

    async def acquire(
        self, *, input_tokens: int, max_tokens: int, on_wait: WaitCallback | None = None
    ) -> RateTicket:
        """Wait until the request fits every limit, charge it, and return its ticket.

        The caller must `settle` (or `refused`) the ticket, in a `finally`.
        """
        ticket = RateTicket(0, max(0, input_tokens), max(0, max_tokens))
        wait, limit = self._wait(ticket, trio.current_time())
        if wait <= 0 and not self._queue.locked():  # room, and nobody waits before it
            return self._charge(ticket)
        self.waits += 1
        if on_wait is not None:  # behind a waiting call: at least as long as it alone needs
            on_wait(max(0.0, wait), limit if wait > 0 else "queue")
        async with self._queue:
            while True:
                wait, limit = self._wait(ticket, trio.current_time())
                if wait <= 0:
                    break
                self._changed = trio.Event()
                with trio.move_on_after(wait):
                    await self._changed.wait()
            return self._charge(ticket)

    def _charge(self, ticket: RateTicket) -> RateTicket:
        ticket.seq = next(self._seq)
        for bucket in self._buckets.values():
            bucket.level -= ticket.cost(bucket.name)
        self._in_flight[ticket.seq] = ticket
        return ticket

    def observe(self, ticket: RateTicket, headers: Mapping[str, str]) -> None:
        """The API answered `ticket`'s request with `headers`: take its view of the limits."""
        ticket.answered = True
        states = parse_rate_limit_headers(headers)
        if not states:
            return
        now = trio.current_time()
        # Requests reach the API out of order: any request not answered yet may
        # not have been counted, whenever it was sent.
        unseen = [t for t in self._in_flight.values() if not t.answered]
        for name, state in states.items():
            self._sync(self._bucket(name), state, unseen, now)
        for other in self._in_flight.values():
            if other.answered:
                other.synced.update(states)
        self._wake()

    def _sync(
        self, bucket: _Bucket, state: BucketState, unseen: Iterable[RateTicket], now: float
    ) -> None:
        bucket.refill(now)
        if state.limit is not None and state.limit > 0:
            bucket.reported = float(state.limit)
        if state.remaining is None:
            return
        view = state.remaining - sum(t.cost(bucket.name) for t in unseen)
        limit = bucket.limit
        if limit is None:  # no limit to refill by: an empty bucket waits for its reset
            if state.remaining == 0 and state.reset_in_s is not None:
                bucket.held_until = now + min(state.reset_in_s, self.max_hold_s)
            return
        bucket.held_until = 0.0
        if bucket.configured is not None and bucket.configured < (bucket.reported or math.inf):
            bucket.level = min(bucket.level, view)  # our share of the key is the tighter cap
        else:
            bucket.level = min(view, limit)
        bucket.updated = now

    def refused(
        self, ticket: RateTicket, headers: Mapping[str, str], retry_after_s: float | None
    ) -> None:
        """The API refused `ticket`'s request (429/529): it was not counted; hold every call
        for `retry_after_s`, and take the headers' view."""
        self.refusals += 1
        if self._in_flight.pop(ticket.seq, None) is not None:
            for bucket in self._buckets.values():
                bucket.level += ticket.cost(bucket.name)
        now = trio.current_time()
        if retry_after_s is not None and retry_after_s > 0:
            self._held_until = max(self._held_until, now + min(retry_after_s, self.max_hold_s))
        self._in_flight[ticket.seq] = ticket  # as the reference point of its headers
        try:
            self.observe(ticket, headers)
        finally:
            del self._in_flight[ticket.seq]
        self._wake()

    def settle(self, ticket: RateTicket, usage: Usage | None) -> None:
        """`ticket`'s call ended: with `usage`, replace the estimates by what it used;
        None (it failed): give back its output tokens, keep the rest charged.

        Only in buckets no headers have described since the request went out: the
        API gives back what an answer did not use when the answer ends, and its next
        headers say so; crediting it here as well would count it twice."""
        if self._in_flight.pop(ticket.seq, None) is None:
            return  # refused, or settled already
        used_input = ticket.input_tokens
        used_output = 0
        if usage is not None:
            used_input = usage.input_tokens + usage.cache_creation_input_tokens
            used_output = usage.output_tokens
        now = trio.current_time()
        for bucket in self._buckets.values():
            if bucket.name in ticket.synced:
                continue
            bucket.refill(now)
            back = 0.0
            if bucket.name in ("output_tokens", "tokens"):
                back += ticket.max_tokens - used_output
            if bucket.name in ("input_tokens", "tokens"):
                back += ticket.input_tokens - used_input
            if back:
                limit = bucket.limit
                level = bucket.level + back
                bucket.level = level if limit is None else min(limit, level)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
