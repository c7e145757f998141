"""`WebhookSink`: POSTs events to an HTTP endpoint, in batches, with retries.

Batching: the hub hands the sink up to `max_batch` (100) buffered events at once
and each POST carries them as one JSON array of event objects, in seq order
(`Content-Type: application/json`). A quiet run posts one event per request; a
burst (a 1,000-item fan-out) costs tens of requests, not thousands. The body is
the events' canonical lines joined, so nothing is serialised twice.

Failures: connection errors, timeouts, 408/429 and 5xx responses are retried
`retries` times with exponential backoff (`backoff_s * 2**n`, jittered); other
4xx responses fail at once. A batch that still fails raises
`WebhookDeliveryError`, which the hub records as a `sink_error` event; after
several consecutive failures the hub disables the sink. The POSTs run in the
sink's pump task, so a down or slow endpoint never slows the run: events wait
in the sink's bounded buffer (oldest dropped, and counted, when it is full).
Delivery is at-least-once: a batch interrupted at shutdown may be sent again.

Secrets: a webhook URL often carries credentials (`user:pass@`, `?token=`).
Error messages, which become `sink_error` events in the audit log and the UI,
name the endpoint only as scheme://host:port/path (`redacted_url`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import httpx
import trio

from ..errors import AgentflowError
from ..events.event import PipelineEvent

__all__ = ["WebhookDeliveryError", "WebhookSink", "redacted_url"]

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def redacted_url(url: str) -> str:
    """`url` as scheme://host:port/path: no user info, query or fragment."""
    try:
        parsed = httpx.URL(url)
        if not parsed.scheme or not parsed.host:
            return "<invalid webhook URL>"
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        port = f":{parsed.port}" if parsed.port is not None else ""
        return f"{parsed.scheme}://{host}{port}{parsed.path}"
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<unparseable webhook URL>"


def _secrets_of(url: str) -> list[str]:
    """The parts of `url` that must not appear in a message, longest first."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return [url]
    parts = [url, parsed.userinfo.decode(errors="replace"), parsed.query.decode(errors="replace")]
    parts += [parsed.username, parsed.password or "", parsed.fragment]
    parts += [value for _, value in parsed.params.multi_items()]
    return sorted((p for p in parts if len(p) >= 3), key=len, reverse=True)


class WebhookDeliveryError(AgentflowError):
    """Raised by `WebhookSink` when a batch could not be delivered after its retries."""


class WebhookSink:
    """POSTs batches of events (a JSON array) to `url`."""

    audit = False
    max_batch = 100

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        *,
        backoff_s: float = 0.5,
        name: str = "webhook",
    ) -> None:
        self.url = url
        self._shown_url = redacted_url(url)  # what messages may show
        self._secrets = _secrets_of(url)
        self.name = name
        self.headers = {"content-type": "application/json", **dict(headers or {})}
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.posts = 0  # successful POSTs (for tests and stats)
        # Invariant: created on the first POST (inside trio), closed by aclose().
        self._client: httpx.AsyncClient | None = None

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        await self.emit_batch([(event, line)])

    async def emit_batch(self, batch: Sequence[tuple[PipelineEvent, str]]) -> None:
        """POST the batch; retry transient failures.

        Raises:
            WebhookDeliveryError: still failing after `retries` retries, or a 4xx.
        """
        body = ("[" + ",".join(line for _, line in batch) + "]").encode()
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        problem = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            attempts += 1
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                await trio.sleep(random.uniform(delay / 2, delay))
            try:
                response = await self._client.post(self.url, content=body, headers=self.headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {self._scrub(str(exc))}"
                continue
            if response.status_code < 300:
                self.posts += 1
                return
            problem = f"HTTP {response.status_code}"
            if response.status_code not in _RETRY_STATUS:
                break
        raise WebhookDeliveryError(
            f"webhook {self._shown_url} did not accept {len(batch)} events ({problem}, "
            f"{attempts} attempts); check that the endpoint is up and accepts "
            "a POST of a JSON array"
        )

    def _scrub(self, text: str) -> str:
        """`text` with the URL's credentials and query replaced (httpx may quote the URL)."""
        text = text.replace(self.url, self._shown_url)
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
