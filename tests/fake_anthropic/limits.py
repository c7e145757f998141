"""Rate limits for the fake Anthropic API, enforced as the real API documents them.

The API limits requests, input tokens and output tokens per minute with token
buckets: capacity is the per-minute limit and it refills continuously (not
reset at fixed intervals). Input tokens are the uncached ones (cache reads do
not count); output tokens are charged `max_tokens` when a request arrives and
the unused part is given back when its response ends. A request that does not
fit gets a 429 `rate_limit_error` with `retry-after` (whole seconds, rounded
up, as the API sends it) and is not counted. Every response, 429s included,
carries the `anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}
-{limit,remaining,reset}` headers; `reset` is the RFC 3339 time at which that
bucket would be full again, and `tokens-*` is the most restrictive of the two
token buckets.

Time can be scaled for tests: `period_s=6` makes the limits "per 6 seconds".
The clock is trio's, so the fake runs inside the test's trio run.

Usage: `FakeAnthropic(script, limits=RateLimits(requests=50, input_tokens=20_000,
period_s=6))`; then `limits.rejected` counts the 429s sent and `limits.admitted`
the requests let through.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

__all__ = ["Admission", "RateLimits"]


@dataclass
class _Bucket:
    name: str
    limit: float
    period_s: float
    level: float = 0.0
    updated: float = 0.0

    def refill(self, now: float) -> None:
        rate = self.limit / self.period_s
        self.level = min(self.limit, self.level + (now - self.updated) * rate)
        self.updated = now

    def seconds_until(self, amount: float, now: float) -> float:
        """How long until `amount` (at most the capacity) fits; 0 if it fits now."""
        needed = min(amount, self.limit)
        if self.level >= needed:
            return 0.0
        return (needed - self.level) * self.period_s / self.limit

    def reset_at(self, now: float) -> float:
        """The wall-clock time at which the bucket is full again."""
        full_in = max(0.0, self.limit - self.level) * self.period_s / self.limit
        return time.time() + full_in


@dataclass
class Admission:
    """The outcome of one request: the headers to send, and a 429 if it does not fit."""

    headers: dict[str, str]
    retry_after_s: float | None = None  # set: rejected with 429
    settle: Callable[[int], None] = field(default=lambda output_tokens: None)

    def apply(self, response: Any, usage: Mapping[str, Any] | None) -> None:
        """Add the headers to `response`; give back unused output tokens once it is sent."""
        response.headers.update(self.headers)
        if self.retry_after_s is not None:
            return
        from quart.wrappers.response import IterableBody

        output_tokens = int((usage or {}).get("output_tokens", 0))
        response.response = IterableBody(
            settle_after(response.response, lambda: self.settle(output_tokens))
        )


class RateLimits:
    """Requests / input tokens / output tokens per `period_s` (None: that one is unlimited).

    Args:
        requests, input_tokens, output_tokens: the limits per period.
        period_s: the period the limits count over (the real API: 60 s).
        send_headers: send the `anthropic-ratelimit-*` headers (False: only a 429's
            `retry-after`, as a proxy that strips headers would).
        enforce: reject with 429 when a request does not fit (False: let it through
            and only count it in `violations`).
    """

    def __init__(
        self,
        *,
        requests: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        period_s: float = 60.0,
        send_headers: bool = True,
        enforce: bool = True,
    ) -> None:
        self.period_s = period_s
        self.send_headers = send_headers
        self.enforce = enforce
        self._buckets: dict[str, _Bucket] = {}
        self._started = False
        for name, limit in (
            ("requests", requests),
            ("input-tokens", input_tokens),
            ("output-tokens", output_tokens),
        ):
            if limit is not None:
                self._buckets[name] = _Bucket(name, float(limit), period_s)
        self.admitted = 0  # requests let through (counted)
        self.rejected = 0  # 429s sent
        self.violations = 0  # requests that did not fit (with enforce=False: let through)
        # With enforce=False: by how much a bucket went below empty, at most (its units).
        self.overshoot: dict[str, float] = dict.fromkeys(self._buckets, 0.0)
        # (trio time, "admitted" | "rejected", input tokens) of each request, in arrival order
        self.log: list[tuple[float, str, int]] = []

    def admit(self, input_tokens: int, max_tokens: int) -> Admission:
        """Charge one arriving request, or refuse it (and charge nothing)."""
        now = trio.current_time()
        if not self._started:  # buckets start full
            self._started = True
            for bucket in self._buckets.values():
                bucket.level, bucket.updated = bucket.limit, now
        costs = {"requests": 1.0, "input-tokens": float(input_tokens)}
        costs["output-tokens"] = float(max_tokens)
        for bucket in self._buckets.values():
            bucket.refill(now)
        wait = max(
            (b.seconds_until(costs[b.name], now) for b in self._buckets.values()),
            default=0.0,
        )
        if wait > 0:
            self.violations += 1
            if self.enforce:
                self.rejected += 1
                self.log.append((now, "rejected", input_tokens))
                headers = self._headers(now)
                # `retry-after` in whole seconds as the API sends it, and the exact
                # wait as `retry-after-ms` (read first by the SDKs and by agentflow),
                # which a scaled period needs.
                headers["retry-after"] = str(max(1, math.ceil(wait)))
                headers["retry-after-ms"] = str(math.ceil(wait * 1000))
                return Admission(headers, retry_after_s=wait)
        for bucket in self._buckets.values():
            bucket.level -= costs[bucket.name]
            self.overshoot[bucket.name] = max(self.overshoot[bucket.name], -bucket.level)
        self.admitted += 1
        self.log.append((now, "admitted", input_tokens))
        output = self._buckets.get("output-tokens")

        def settle(output_tokens: int) -> None:
            if output is not None:  # give back what the answer did not use
                output.refill(trio.current_time())
                output.level = min(output.limit, output.level + max_tokens - output_tokens)

        return Admission(self._headers(now), settle=settle)

    def _headers(self, now: float) -> dict[str, str]:
        if not self.send_headers:
            return {}
        headers: dict[str, str] = {}
        for bucket in self._buckets.values():
            prefix = f"anthropic-ratelimit-{bucket.name}"
            headers[f"{prefix}-limit"] = str(int(bucket.limit))
            headers[f"{prefix}-remaining"] = str(max(0, math.floor(bucket.level)))
            headers[f"{prefix}-reset"] = _rfc3339(bucket.reset_at(now))
        tokens = [self._buckets[n] for n in ("input-tokens", "output-tokens") if n in self._buckets]
        if tokens:  # the most restrictive token limit currently in effect
            tightest = min(tokens, key=lambda b: b.level)
            for part in ("limit", "remaining", "reset"):
                headers[f"anthropic-ratelimit-tokens-{part}"] = headers[
                    f"anthropic-ratelimit-{tightest.name}-{part}"
                ]
        return headers


def _rfc3339(wall: float) -> str:
    stamp = datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


async def settle_after(body: Any, on_end: Callable[[], None]) -> AsyncIterator[bytes]:
    """`body` (a Quart response body) passed through; `on_end()` once it is sent or dropped."""
    try:
        async with body as opened:
            async for chunk in opened:
                yield chunk
    finally:
        on_end()
