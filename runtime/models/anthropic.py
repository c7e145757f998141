"""`AnthropicModel`: live Claude through the official SDK's `AsyncAnthropic`, on trio.

One `complete()` is one streamed Messages API call (`messages.stream`): text
deltas go to `on_text` as they arrive, the final message becomes a `ModelTurn`
with token usage and cost. The runner owns the conversation and tool loop.

Retries are done here, not by the SDK (the client is built with
`max_retries=0`), so that every retry is visible: each one calls `on_retry`,
which the runner turns into a `model_error` event. Retried: 408, 409, 429,
5xx and 529 (honouring `retry-after-ms` / `retry-after`), connection errors and
timeouts, and an `event: error` in the middle of a stream (e.g. overloaded),
which the SDK itself would never retry. Not retried: 400, 401, 403, 404, 413,
422 (`ModelRequestRejected`, with the API's own message).

Timeouts: the SDK's `timeout` bounds each socket read, so a stream that
trickles one event at a time would never time out. Each attempt therefore also
runs under `trio.fail_after(timeout_s)`, a deadline on the whole call, and
hitting it counts as a timeout like the SDK's (retried, then `ModelError`).

An answer is only taken whole. The SDK accepts a stream that just stops: its
last snapshot (no stop reason, a tool's JSON input cut in the middle) would
pass for the answer. So a stream must start with `message_start`, finish
every content block it opens, carry a stop reason and end with
`message_stop`; otherwise the attempt is a transport fault and is retried,
and nothing of it (no tool call) reaches the runner. An answer that stopped at
`max_tokens` with a tool call in it is refused (`ModelError`, not retried: the
same request would stop there again), since that call's input may be cut off.
A 200 whose body is not an event stream (a JSON document, a proxy's HTML
page) is retried too, with a message naming its content type and first
bytes. One response may hold at most `max_response_bytes` (32 MiB by
default; the largest real answer, 128,000 tokens each in its own event, is
about 17 MB): the client asks for an uncompressed body and counts its bytes
as they arrive, so a server that streams without end is cut off with a
`ModelError` (not retried: the next try would be as large). A compressed
body is refused, as it cannot be counted.

Secrets: the API key (and any other secret the model holds: a key in the
environment, a password in the base URL) never appears in an exception,
callback argument, streamed delta or returned turn (`redaction.py`): error
messages are scrubbed and SDK exceptions are not chained; text deltas,
tool inputs and structured answers the model returns are scrubbed too, a key
split across deltas included, before they become events.

`import anthropic` costs about a second, so it is imported when a client is
opened, never at module import.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from ..errors import AgentflowError, ModelError, ModelRequestRejected
from ..usage import Usage
from .base import STRUCTURED_TOOL_NAMES, ModelRequest, ModelTurn, TextSink, ToolCall, ToolSchema
from .pricing import PriceTable
from .rate_limit import RateLimiter, RateTicket, WaitCallback
from .redaction import RedactingTextSink, SecretRedactor
from .structured import structured_tool, structured_tool_choice

if TYPE_CHECKING:
    import httpx2
    from anthropic import AsyncAnthropic
    from anthropic.lib.streaming import AsyncMessageStream
    from anthropic.types import Message
    from anthropic.types import Usage as MessageUsage

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AnthropicModel",
    "RetryCallback",
    "build_message_params",
    "cacheable_prefix_key",
    "min_cacheable_tokens",
]

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""The most bytes one response may hold (see the module docstring)."""

RetryCallback = Callable[[str, int, float], None]
"""`on_retry(error, attempt, delay_s)`: a call failed and will be retried after `delay_s`."""

_REJECTED_STATUSES = frozenset({400, 401, 403, 404, 413, 422})
_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_RETRYABLE_STREAM_ERRORS = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)
_REJECTION_HINTS: Mapping[int, str] = {
    401: "check ANTHROPIC_API_KEY (or run offline with --model replay)",
    403: "the API key is not allowed to do this; check its workspace and permissions",
    404: "check the model name and the base URL (ANTHROPIC_BASE_URL / defaults.base_url)",
    413: "the request is too large; shorten the prompt or the conversation",
}


_CACHE_WARM_S = 270.0
"""How long a prefix counts as cached after its last use (the cache keeps it 5 minutes)."""
_MAX_WARM_PREFIXES = 1024
"""Past this many remembered prefixes, expired ones are forgotten."""


class _IncompleteAnswer(Exception):
    """The response was not one whole Messages API event stream (a transport fault)."""


class _ResponseRefused(Exception):
    """The response cannot be taken at all: too large, or a body that cannot be measured."""


@dataclass(frozen=True, slots=True)
class _Failure:
    """A classified failed attempt: the error to raise, and whether/when to retry."""

    error: ModelError
    retryable: bool
    retry_after_s: float | None = None


def build_message_params(request: ModelRequest, *, prompt_caching: bool = True) -> dict[str, Any]:
    """The keyword arguments of `messages.stream` for one request.

    The structured-output tool is appended for "verdict"/"items"/"output" requests and
    chosen as described in `structured_tool_choice`. `temperature` is sent
    only when set, through `extra_body` (SDK 2.x no longer has the argument).
    With `prompt_caching`, cache breakpoints are marked as `_mark_cache_breakpoints` says.
    """
    tools = [_tool_param(tool) for tool in request.tools]
    has_other_tools = bool(tools)
    if request.output != "text":
        tools.append(_tool_param(structured_tool(request.output, request.output_schema)))
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [dict(message) for message in request.messages],
    }
    if request.system:
        params["system"] = request.system
    if tools:
        params["tools"] = tools
    choice = structured_tool_choice(request.output, has_other_tools=has_other_tools)
    if choice is not None:
        params["tool_choice"] = choice
    if request.temperature is not None:
        params["extra_body"] = {"temperature": request.temperature}
    if prompt_caching:
        _mark_cache_breakpoints(params)
    return params


EPHEMERAL: Mapping[str, str] = {"type": "ephemeral"}
"""A 5-minute cache breakpoint (`cache_control`)."""

# The shortest prefix Anthropic caches, by model-name prefix (longest match wins);
# a shorter prefix marked for caching is simply not cached.
_MIN_CACHEABLE_TOKENS: Mapping[str, int] = {
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
_DEFAULT_MIN_CACHEABLE_TOKENS = 1024
# Characters per token, on the low side (English prose averages about 3.5-4), so a
# prefix near the minimum is rather marked (free when too short) than missed.
_CHARS_PER_TOKEN = 3.0


def min_cacheable_tokens(model: str) -> int:
    """The shortest prompt prefix, in tokens, that `model` caches."""
    matches = [prefix for prefix in _MIN_CACHEABLE_TOKENS if model.startswith(prefix)]
    if not matches:
        return _DEFAULT_MIN_CACHEABLE_TOKENS
    return _MIN_CACHEABLE_TOKENS[max(matches, key=len)]


def _estimated_tokens(*parts: Any) -> int:
    return int(len(json.dumps(parts, default=str)) / _CHARS_PER_TOKEN)


def _mark_cache_breakpoints(params: dict[str, Any]) -> None:
    """Mark `params` for prompt caching where a cache can form (in place).

    The API caches the prefix tools -> system -> messages up to a block carrying
    `cache_control`. Two breakpoints at most:
    - the end of the fixed prefix: the system prompt (which also covers the tools
      before it), or the last tool when there is no system prompt. Every request
      of an agent (every item of a fan-out, every turn) shares it.
    - the end of the conversation, from the second message on (a tool loop):
      the next turn resends it all and reads it back.
    A part is marked only when the prefix it ends is estimated long enough for
    the model to cache, so short prompts go out exactly as without caching.
    """
    minimum = min_cacheable_tokens(str(params["model"]))
    tools: list[dict[str, Any]] = params.get("tools", [])
    system: str | None = params.get("system")
    if _estimated_tokens(tools, system) >= minimum:
        if system:
            params["system"] = [{"type": "text", "text": system, "cache_control": dict(EPHEMERAL)}]
        elif tools:
            tools[-1] = {**tools[-1], "cache_control": dict(EPHEMERAL)}
    messages: list[dict[str, Any]] = params["messages"]
    if len(messages) > 1 and _estimated_tokens(tools, system, messages) >= minimum:
        messages[-1] = _with_breakpoint_at_end(messages[-1])


def _with_breakpoint_at_end(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `message` whose last content block carries `cache_control`."""
    content = message.get("content")
    if isinstance(content, str):
        blocks: list[Any] = [{"type": "text", "text": content}]
    elif isinstance(content, list | tuple) and content:
        blocks = list(content)
    else:
        return dict(message)
    if not isinstance(blocks[-1], Mapping):
        return dict(message)
    blocks[-1] = {**blocks[-1], "cache_control": dict(EPHEMERAL)}
    return {**message, "content": blocks}


def cacheable_prefix_key(params: Mapping[str, Any]) -> str | None:
    """A digest of the fixed prefix marked for caching (model, tools, system), else None."""
    system = params.get("system")
    tools = params.get("tools") or []
    marked = (isinstance(system, list) and any("cache_control" in b for b in system)) or any(
        "cache_control" in tool for tool in tools
    )
    if not marked:
        return None
    text = json.dumps([params["model"], tools, system], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _tool_param(tool: ToolSchema) -> dict[str, Any]:
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": dict(tool.input_schema),
    }


class AnthropicModel:
    """The live Claude model. Use it as `async with AnthropicModel() as model:`.

    Args:
        api_key: defaults to $ANTHROPIC_API_KEY.
        base_url: defaults to $ANTHROPIC_BASE_URL, then https://api.anthropic.com.
        max_retries: retries per call after the first attempt (0 disables them).
        timeout_s: the client's default timeout; each request's `timeout_s` wins.
        prices: the price table for `Usage.cost_usd` (default: PriceTable.default()).
        on_retry: called before each retry; `complete(on_retry=...)` overrides it.
        backoff_base_s, backoff_max_s: exponential backoff (with jitter) when the
            API gives no `retry-after`; the n-th retry waits about base * 2**(n-1).
        max_retry_after_s: the longest `retry-after` honoured; longer waits are capped.
        max_response_bytes: the most bytes one response may hold; more is a ModelError.
        prompt_caching: mark requests for Anthropic's 5-minute prompt cache (see
            `_mark_cache_breakpoints`), and send the first call of a new cached prefix
            ahead of concurrent calls sharing it, so they read the cache it writes.
        max_requests_per_minute, max_tokens_per_minute: caps for a key shared with
            others (tokens: input + output), below what the API's headers allow.
        rate_limiter: the limiter pacing every call (`rate_limit.py`); give several
            models one limiter to share a key's limits. Default: a new one with the caps.

    Raises:
        ModelError: no API key was given and $ANTHROPIC_API_KEY is not set, or both
            `rate_limiter` and a cap were given.
    """

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 3,
        timeout_s: float = 120.0,
        prices: PriceTable | None = None,
        on_retry: RetryCallback | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        max_retry_after_s: float = 60.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        prompt_caching: bool = True,
        max_requests_per_minute: int | None = None,
        max_tokens_per_minute: int | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ModelError(
                "no Anthropic API key: set ANTHROPIC_API_KEY (or pass api_key=...), "
                "or run offline with the replay model (--model replay)"
            )
        self._api_key = key  # never printed: see _redactor and __repr__
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
        self._redactor = SecretRedactor(
            [
                key,
                os.environ.get("ANTHROPIC_API_KEY"),
                os.environ.get("ANTHROPIC_AUTH_TOKEN"),
                _url_password(self.base_url),
            ]
        )
        self.max_response_bytes = max_response_bytes
        self.max_retries = max(0, max_retries)
        self.timeout_s = timeout_s
        self.prices = prices if prices is not None else PriceTable.default()
        self.on_retry = on_retry
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.prompt_caching = prompt_caching
        capped = max_requests_per_minute is not None or max_tokens_per_minute is not None
        if rate_limiter is not None and capped:
            raise ModelError(
                "give AnthropicModel either rate_limiter= or max_requests_per_minute= / "
                "max_tokens_per_minute=, not both (set the caps on the limiter)"
            )
        self.rate_limiter = rate_limiter or RateLimiter(
            max_requests_per_minute=max_requests_per_minute,
            max_tokens_per_minute=max_tokens_per_minute,
        )
        # Cached prefixes (cacheable_prefix_key) whose cache a response has begun
        # to use, with when; and the first calls of prefixes not cached yet.
        self._warm_prefixes: dict[str, float] = {}
        self._warming_prefixes: dict[str, trio.Event] = {}
        # Set between open() and aclose(); None means closed.
        self._client: AsyncAnthropic | None = None

    def __repr__(self) -> str:
        return f"AnthropicModel(base_url={self.base_url!r}, max_retries={self.max_retries})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What this model scrubs from its answers; the run scrubs tool results too."""
        return self._redactor.secrets

    async def open(self) -> None:
        """Create the SDK client (imports `anthropic`); idempotent."""
        if self._client is not None:
            return
        import httpx2
        from anthropic import AsyncAnthropic, DefaultAsyncHttpxClient

        limit = self.max_response_bytes

        async def cap_body(response: httpx2.Response) -> None:
            if isinstance(response.stream, httpx2.AsyncByteStream):
                response.stream = _capped_stream(response.stream, limit, response.headers)

        self._client = AsyncAnthropic(
            api_key=self._api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout_s,
            # Uncompressed, so the bytes counted are the bytes kept.
            default_headers={"Accept-Encoding": "identity"},
            http_client=DefaultAsyncHttpxClient(
                timeout=self.timeout_s, event_hooks={"response": [cap_body]}
            ),
        )

    async def aclose(self) -> None:
        """Close the SDK client and its connections; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> AnthropicModel:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def complete(
        self,
        request: ModelRequest,
        on_text: TextSink | None = None,
        *,
        on_retry: RetryCallback | None = None,
        on_wait: WaitCallback | None = None,
    ) -> ModelTurn:
        """Answer one turn, streaming text deltas to `on_text`; retries as the module says.

        Text streamed by an attempt that then fails is not taken back: the
        retry's `on_retry` call tells the listener to discard it. Each attempt
        first waits for room under the rate limits (`rate_limiter`); `on_wait`
        hears of an attempt that has to wait.

        Raises:
            ModelRequestRejected: the API refused the request (4xx); not retried.
            ModelError: the call still failed after `max_retries` retries.
        """
        await self.open()
        params = build_message_params(request, prompt_caching=self.prompt_caching)
        prefix = cacheable_prefix_key(params) if self.prompt_caching else None
        leading = await self._await_cached_prefix(prefix)
        try:
            return await self._complete(request, params, on_text, on_retry, on_wait, leading)
        finally:
            if leading is not None:
                self._give_up_lead(leading)

    async def _await_cached_prefix(self, prefix: str | None) -> str | None:
        """Wait while another call writes `prefix`'s cache; return `prefix` if this call must.

        Anthropic makes a cache entry readable only once the response that writes
        it has begun, so N concurrent calls sharing a new prefix would all write
        it (N x 1.25 of its input price). The first goes alone; the rest wait for
        its response to begin (or fail: then one of them leads), then read.
        """
        if prefix is None:
            return None
        while True:
            now = trio.current_time()
            warm_at = self._warm_prefixes.get(prefix)
            if warm_at is not None and now - warm_at < _CACHE_WARM_S:
                self._warm_prefixes[prefix] = now  # a read refreshes the cache's lifetime
                return None
            pending = self._warming_prefixes.get(prefix)
            if pending is None:
                self._warming_prefixes[prefix] = trio.Event()
                return prefix
            await pending.wait()

    def _response_began(self, prefix: str) -> None:
        """The leading call's response began: its prefix is cached; release the waiters."""
        now = trio.current_time()
        if len(self._warm_prefixes) >= _MAX_WARM_PREFIXES:  # forget expired prefixes
            self._warm_prefixes = {
                key: at for key, at in self._warm_prefixes.items() if now - at < _CACHE_WARM_S
            }
        self._warm_prefixes[prefix] = now
        self._give_up_lead(prefix)

    def _give_up_lead(self, prefix: str) -> None:
        """Release the calls waiting on `prefix`; if it is not cached, one of them leads."""
        event = self._warming_prefixes.pop(prefix, None)
        if event is not None:
            event.set()

    async def _complete(
        self,
        request: ModelRequest,
        params: Mapping[str, Any],
        on_text: TextSink | None,
        on_retry: RetryCallback | None,
        on_wait: WaitCallback | None,
        leading: str | None,
    ) -> ModelTurn:
        notify = on_retry if on_retry is not None else self.on_retry
        began = (lambda: self._response_began(leading)) if leading is not None else None
        limiter = self.rate_limiter
        input_tokens = _estimated_tokens(
            params.get("tools"), params.get("system"), params["messages"]
        )
        retries = 0
        while True:
            failure: _Failure | None = None
            sink = self._redactor.stream(on_text) if on_text is not None else None
            ticket = await limiter.acquire(
                input_tokens=input_tokens, max_tokens=request.max_tokens, on_wait=on_wait
            )
            usage: Usage | None = None
            try:
                with trio.fail_after(request.timeout_s):
                    message = await self._stream_once(
                        params, request.timeout_s, sink, began, ticket
                    )
                usage = _limited_usage(message.usage)
            except Exception as exc:  # TooSlowError included: see the module docstring
                failure = self._classify(exc, request)
                self._note_refusal(ticket, exc, failure)
            finally:
                limiter.settle(ticket, usage)
            if failure is None:
                if sink is not None:
                    sink.flush()
                return self._redactor.turn(self._to_turn(message, request))
            if sink is not None:
                sink.discard()
            if began is not None and leading is not None:
                # No response began: let the waiting calls go (one leads) rather than
                # hold them through this call's retries and backoff.
                self._give_up_lead(leading)
                began = None
            if not failure.retryable or retries >= self.max_retries:
                # Raised outside the `except`: no __context__ chains the SDK error
                # (whose request and body could carry the key) to ours.
                raise failure.error
            retries += 1
            delay = self._retry_delay(retries, failure.retry_after_s)
            if notify is not None:
                notify(str(failure.error), retries, delay)
            await trio.sleep(delay)

    async def _stream_once(
        self,
        params: Mapping[str, Any],
        timeout_s: float,
        on_text: RedactingTextSink | None,
        on_began: Callable[[], None] | None = None,
        ticket: RateTicket | None = None,
    ) -> Message:
        """One attempt: the whole answer, or `_IncompleteAnswer` (see the module docstring)."""
        client = self._client
        if client is None:
            raise AgentflowError("AnthropicModel was closed; use it inside `async with`")
        async with client.messages.stream(**params, timeout=timeout_s) as stream:
            if ticket is not None:
                self.rate_limiter.observe(ticket, stream.response.headers)
            await _require_event_stream(stream)
            started = stopped = False
            open_blocks: set[int] = set()
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    if on_text is not None and event.delta.text:
                        on_text(event.delta.text)
                elif event.type == "message_start":
                    started = True
                    if on_began is not None:
                        on_began()
                elif event.type == "content_block_start":
                    open_blocks.add(event.index)
                elif event.type == "content_block_stop":
                    open_blocks.discard(event.index)
                elif event.type == "message_stop":
                    stopped = True
                    if ticket is not None:  # at once: no headers of a later response first
                        usage = stream.current_message_snapshot.usage
                        self.rate_limiter.settle(ticket, _limited_usage(usage))
            if not started:
                raise _IncompleteAnswer("the event stream held no message (no message_start)")
            if open_blocks:
                raise _IncompleteAnswer(
                    f"the stream ended inside content block {min(open_blocks)} "
                    "(no content_block_stop): the answer was cut off"
                )
            if not stopped:
                raise _IncompleteAnswer(
                    "the stream ended before message_stop: the answer was cut off"
                )
            message = await stream.get_final_message()
            if message.stop_reason is None:
                raise _IncompleteAnswer("the answer has no stop_reason (no message_delta)")
            if message.stop_reason == "max_tokens" and any(
                block.type == "tool_use" for block in message.content
            ):
                raise _ResponseRefused(
                    f"the answer reached max_tokens ({params.get('max_tokens')}) inside a tool "
                    "call, so the tool's input may be cut off; it was not run. Raise the "
                    "agent's max_tokens"
                )
            return message

    def _note_refusal(self, ticket: RateTicket, exc: Exception, failure: _Failure) -> None:
        """Tell the rate limiter what an HTTP error's headers say; a 429/529 was not counted.

        A 429's `retry-after` holds every call (the key's limit is reached for all of
        them); a 529's only delays its own retry (see `_complete`)."""
        import anthropic

        if not isinstance(exc, anthropic.APIStatusError) or exc.status_code == 200:
            return
        headers = exc.response.headers
        if exc.status_code == 429:  # this key's limits: every call holds for retry-after
            self.rate_limiter.refused(ticket, headers, failure.retry_after_s)
        elif exc.status_code == 529:  # the API is overloaded: only this call backs off
            self.rate_limiter.refused(ticket, headers, None)
        else:
            self.rate_limiter.observe(ticket, headers)

    def _retry_delay(self, retry: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None and retry_after_s > 0:
            return min(retry_after_s, self.max_retry_after_s)
        ceiling = min(self.backoff_base_s * 2.0 ** (retry - 1), self.backoff_max_s)
        return ceiling * random.uniform(0.75, 1.0)

    def _scrub(self, text: str) -> str:
        return self._redactor.text(text)

    def _classify(self, exc: Exception, request: ModelRequest) -> _Failure:
        """Turn any exception of one attempt into the ModelError to raise, and a retry plan."""
        import anthropic
        import httpx2

        where = f"model call ({request.model}, agent {request.agent}, turn {request.turn})"
        if isinstance(exc, _IncompleteAnswer):
            msg = f"{where} failed: {exc}; the partial answer was discarded"
            return _Failure(ModelError(self._scrub(msg)), retryable=True)
        if isinstance(exc, _ResponseRefused):
            return _Failure(ModelError(self._scrub(f"{where} failed: {exc}")), retryable=False)
        timeouts = (anthropic.APITimeoutError, httpx2.TimeoutException, trio.TooSlowError)
        if isinstance(exc, timeouts):
            msg = f"{where} timed out after {request.timeout_s:g}s"
            return _Failure(ModelError(self._scrub(msg)), retryable=True)
        if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            msg = f"{where} failed: cannot reach {self.base_url} ({type(exc).__name__}: {exc})"
            return _Failure(ModelError(self._scrub(msg)), retryable=True)
        if isinstance(exc, anthropic.APIStatusError):
            return self._classify_status(exc, where)
        msg = f"{where} failed: {type(exc).__name__}: {exc}"
        return _Failure(ModelError(self._scrub(msg)), retryable=False)

    def _classify_status(self, exc: Any, where: str) -> _Failure:
        status: int = exc.status_code
        kind: str = exc.type or "error"
        detail = exc.api_message or exc.message
        request_id = f", request id {exc.request_id}" if exc.request_id else ""
        if status == 200:  # an `event: error` in the middle of a stream
            msg = f"{where}: stream interrupted by {kind}: {detail}{request_id}"
            retryable = kind in _RETRYABLE_STREAM_ERRORS
            return _Failure(ModelError(self._scrub(msg)), retryable=retryable)
        should_retry = exc.response.headers.get("x-should-retry")
        if status in _REJECTED_STATUSES and should_retry != "true":
            hint = _REJECTION_HINTS.get(status, "fix the request; retrying will not help")
            msg = (
                f"Anthropic API rejected the {where} ({status} {kind}): "
                f"{detail}{request_id}. Fix: {hint}"
            )
            return _Failure(ModelRequestRejected(self._scrub(msg)), retryable=False)
        retryable = status in _RETRYABLE_STATUSES or status >= 500
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        msg = f"{where} failed with HTTP {status} {kind}: {detail}{request_id}"
        return _Failure(
            ModelError(self._scrub(msg)),
            retryable=retryable,
            retry_after_s=_retry_after(exc.response.headers),
        )

    def _to_turn(self, message: Message, request: ModelRequest) -> ModelTurn:
        """Map the final message's content blocks to a ModelTurn (structured tool split out)."""
        structured_name = STRUCTURED_TOOL_NAMES.get(request.output)
        texts: list[str] = []
        calls: list[ToolCall] = []
        structured: Mapping[str, Any] | None = None
        structured_id: str | None = None
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                tool_input = _as_mapping(block.input)
                if block.name == structured_name and structured is None:
                    structured, structured_id = tool_input, block.id
                else:
                    calls.append(ToolCall(id=block.id, name=block.name, input=tool_input))
        model = message.model or request.model
        usage = Usage(
            input_tokens=message.usage.input_tokens or 0,
            output_tokens=message.usage.output_tokens or 0,
            cache_creation_input_tokens=message.usage.cache_creation_input_tokens or 0,
            cache_read_input_tokens=message.usage.cache_read_input_tokens or 0,
            model_calls=1,
        )
        usage = usage.model_copy(update={"cost_usd": self.prices.cost_usd(model, usage)})
        return ModelTurn(
            text="".join(texts),
            tool_calls=tuple(calls),
            structured=structured,
            usage=usage,
            stop_reason=message.stop_reason or "end_turn",  # never None: see _stream_once
            model=model,
            structured_call_id=structured_id,
        )


async def _require_event_stream(stream: AsyncMessageStream[Any]) -> None:
    """Raise `_IncompleteAnswer` naming what came back if a 200 is not an event stream."""
    response = stream.response
    content_type = response.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == "text/event-stream":
        return
    head = b""
    async with aclosing(response.aiter_bytes()) as chunks:
        async for chunk in chunks:
            head += chunk
            if len(head) >= _SHOWN_BYTES:
                break
    shown = head[:_SHOWN_BYTES].decode("utf-8", errors="replace")
    shown = shown.encode("ascii", errors="backslashreplace").decode("ascii")
    raise _IncompleteAnswer(
        f"the API answered HTTP {response.status_code} with content-type "
        f"{content_type or 'none'!r} instead of an event stream (text/event-stream); "
        f"the body begins {shown!r}. Check the base URL (a proxy or a wrong host answers like this)"
    )


_SHOWN_BYTES = 200


def _capped_stream(
    inner: httpx2.AsyncByteStream, limit: int, headers: Mapping[str, str]
) -> httpx2.AsyncByteStream:
    """`inner`, raising `_ResponseRefused` past `limit` bytes or if the body is compressed."""
    import httpx2

    encoding = headers.get("content-encoding", "identity").strip().lower()

    class CappedStream(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            if encoding not in ("", "identity"):
                raise _ResponseRefused(
                    f"the API sent a {encoding}-compressed body although none was asked "
                    "for; its size cannot be checked, so it is refused"
                )
            received = 0
            async for chunk in inner:
                received += len(chunk)
                if received > limit:
                    raise _ResponseRefused(
                        f"the response passed the {limit}-byte limit (max_response_bytes) "
                        "and was cut off; a server that streams without end answers like this"
                    )
                yield chunk

        async def aclose(self) -> None:
            await inner.aclose()

    return CappedStream()


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _as_mapping(value: object) -> Mapping[str, Any]:
    """A tool input as a mapping; a non-object input is kept, raw, under "input"."""
    if isinstance(value, Mapping):
        return dict(value)
    return {"input": value}


def _limited_usage(usage: MessageUsage) -> Usage:
    """What a response counts against the rate limits (cache reads are not counted)."""
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds), if given."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return float(raw) * scale
        except ValueError:
            continue
    return None
