"""A scripted fake of the Anthropic Messages API: real HTTP and SSE on 127.0.0.1.

The real SDK talks to it exactly as to api.anthropic.com (set `base_url`). It
serves `POST /v1/messages` with and without `"stream": true`, sending the event
sequence the SDK's stream parser expects (checked against
anthropic/lib/streaming/_messages.py `accumulate_event` and
anthropic/_streaming.py): `message_start`, `content_block_start`,
`ping`, `content_block_delta` (`text_delta` / `input_json_delta`),
`content_block_stop`, `message_delta` (stop_reason, usage), `message_stop`.

Each request takes the next scripted reply (or asks a function of the request):
a message (`text_reply`, `tool_reply`, `Reply`), an HTTP error (`ErrorReply`,
with headers such as `retry-after-ms`), an `event: error` in the middle of a
stream (`StreamErrorReply`), or a hang (`HangReply`). Faults a broken network,
proxy or server produces: a stream that stops early, without `message_stop` or
inside a tool's JSON input (`CutStreamReply`); a 200 that is not an event
stream, such as a JSON or HTML page (`RawReply`); a stream that never ends
(`FloodReply`). Every request is recorded (`FakeAnthropic.requests`), so tests
assert what was sent.

Request log (`request_log=PATH`): each request is also appended to PATH as one
JSON line, flushed before the reply starts, so a test can count requests across
client processes it SIGKILLs: `{"n", "key", "client", "sha256", "stream"}`.
`client` is a digest of the credential (give each client process its own key
to tell them apart), `sha256` the digest of the canonical JSON body, and `key`
the invocation the request belongs to, `{"agent", "item", "attempt", "turn"}`,
or null. The API request carries no such key, so it is derived from the content:
agent, item and attempt from a line `agentflow-key: agent=A item=I attempt=N`
in the system prompt (a prompt template writes it as
`agentflow-key: agent={{ agent }} item={{ item_id }} attempt={{ attempt }}`), and
the turn as 1 + the number of assistant messages sent (each tool round and each
re-ask adds one, as the runtime's turn counter does). See `request_key`.

Prompt caching is accounted as the API documents it: the prefix tools -> system
-> messages up to a block with `cache_control` is cached once a response to it
begins (its first event, after the reply's `delay_s`; concurrent requests that
arrive before then write it too), if it holds at least `cache_min_tokens`
tokens (this fake counts one token per 4 characters of the blocks' JSON). A
later request whose prefix, up to any block boundary before its last
breakpoint, was cached reports it as `cache_read_input_tokens`; the marked
prefix beyond that is `cache_creation_input_tokens`. The scripted
`input_tokens` stand for the uncached rest, so they exclude both (a reply that
scripts cache tokens itself keeps them when the request caches nothing).

Usage:
    fake = FakeAnthropic([text_reply("hi")])
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(fake.serve)
        ...
        nursery.cancel_scope.cancel()
or `async with open_fake_anthropic([...]) as fake: fake.base_url`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from .limits import Admission, RateLimits

__all__ = [
    "CutStreamReply",
    "ErrorReply",
    "FakeAnthropic",
    "FloodReply",
    "HangReply",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "RequestKey",
    "Scripted",
    "StreamErrorReply",
    "open_fake_anthropic",
    "request_key",
    "text_reply",
    "tool_reply",
]

_ids = itertools.count(1)


@dataclass(frozen=True)
class Reply:
    """A successful message: API content blocks, stop reason and usage."""

    content: tuple[Mapping[str, Any], ...]
    stop_reason: str = "end_turn"
    usage: Mapping[str, int] = field(
        default_factory=lambda: {"input_tokens": 12, "output_tokens": 7}
    )
    model: str | None = None  # None: echo the request's model
    chunk_size: int = 6  # characters per text_delta / input_json_delta
    delay_s: float = 0.0  # pause before each stream event: a stream that trickles


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error with the API's error body, e.g. 429 with `retry-after-ms`."""

    status: int
    error_type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamErrorReply:
    """A 200 stream that sends `partial_text` and then `event: error` (e.g. overloaded)."""

    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    partial_text: str = "Partial answ"


@dataclass(frozen=True)
class HangReply:
    """Sleep `seconds` before answering (past the client's timeout), then 500."""

    seconds: float = 30.0


@dataclass(frozen=True)
class CutStreamReply:
    """A 200 stream of `reply` that ends early (the body just stops, as a dropped link would).

    `after_deltas`: stop after that many `content_block_delta` events, e.g. inside
    a tool's JSON input. None: send every event before the first one named `drop_from`.
    """

    reply: Reply
    after_deltas: int | None = None
    drop_from: str = "message_stop"


@dataclass(frozen=True)
class RawReply:
    """Any status, content type and body, e.g. a 200 JSON document or an HTML error page."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200


@dataclass(frozen=True)
class FloodReply:
    """A 200 stream that never finishes: `message_start`, then text deltas without end.

    `one_line`: instead, a single `data:` line that never ends (no event boundary
    at all). `max_chunks` bounds the server's work if a client never hangs up.
    """

    chunk_chars: int = 8192
    one_line: bool = False
    max_chunks: int = 20_000


Scripted = (
    Reply | ErrorReply | StreamErrorReply | HangReply | CutStreamReply | RawReply | FloodReply
)


KEY_MARKER = "agentflow-key:"


@dataclass(frozen=True)
class RequestKey:
    """The invocation and turn a request belongs to (the module says how it is derived)."""

    agent: str
    item: str
    attempt: int
    turn: int


def request_key(body: Mapping[str, Any]) -> RequestKey | None:
    """The key of a request whose system prompt has an `agentflow-key:` line, else None."""
    system = body.get("system")
    if isinstance(system, list):
        system = "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    if not isinstance(system, str):
        return None
    for line in system.splitlines():
        if line.startswith(KEY_MARKER):
            fields = dict(
                part.split("=", 1) for part in line[len(KEY_MARKER) :].split() if "=" in part
            )
            try:
                agent, item, attempt = fields["agent"], fields["item"], int(fields["attempt"])
            except (KeyError, ValueError):
                return None
            messages = body.get("messages") or []
            replies = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
            return RequestKey(agent, item, attempt, turn=1 + len(replies))
    return None


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake received: its path, lower-cased headers and JSON body."""

    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    @property
    def credential(self) -> str | None:
        """The key sent as `Authorization: Bearer` or `x-api-key`."""
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:]
        return self.headers.get("x-api-key")

    @property
    def key(self) -> RequestKey | None:
        """The invocation and turn this request belongs to, if its prompt says (`request_key`)."""
        return request_key(self.body)


def text_reply(text: str, **kwargs: Any) -> Reply:
    """A message with one text block."""
    return Reply(content=({"type": "text", "text": text},), **kwargs)


def tool_reply(
    name: str,
    tool_input: Any,
    *,
    text: str = "",
    tool_id: str | None = None,
    **kwargs: Any,
) -> Reply:
    """A message that calls tool `name` (after optional text); stop_reason "tool_use"."""
    blocks: list[Mapping[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks.append(
        {
            "type": "tool_use",
            "id": tool_id or f"toolu_fake_{next(_ids):04d}",
            "name": name,
            "input": tool_input,
        }
    )
    kwargs.setdefault("stop_reason", "tool_use")
    return Reply(content=tuple(blocks), **kwargs)


class FakeAnthropic:
    """The fake server. `script` is a sequence of replies or a function of the request.

    Args:
        script: replies served in order, or `f(recorded_request) -> reply`.
        expected_key: if set, any other credential gets a 401 authentication_error
            whose message echoes the credential (so tests prove the client scrubs it).
        cache_min_tokens: the shortest prefix the fake caches (the module says how).
        count_input_tokens: report `input_tokens` as the request's own length (as
            this fake counts tokens) less what was read from or written to the
            cache, instead of the scripted number.
        request_log: append each request to this file as a JSON line (the module
            says what a line holds).
        limits: requests / input / output tokens per period, enforced with 429s and
            `anthropic-ratelimit-*` headers as the real API does (`limits.py`).
    """

    def __init__(
        self,
        script: Iterable[Scripted] | Callable[[RecordedRequest], Scripted] = (),
        *,
        expected_key: str | None = None,
        cache_min_tokens: int = 1024,
        count_input_tokens: bool = False,
        request_log: str | os.PathLike[str] | None = None,
        limits: RateLimits | None = None,
    ) -> None:
        self.request_log = request_log
        self.limits = limits  # rate limits enforced with the real headers (limits.py)
        self.cache_min_tokens = cache_min_tokens
        self.count_input_tokens = count_input_tokens
        self.cached_prefixes: set[str] = set()  # digests of cached prefixes
        self._script_fn = script if callable(script) else None
        self._queue: deque[Scripted] = deque() if callable(script) else deque(script)
        self.expected_key = expected_key
        self.requests: list[RecordedRequest] = []  # appended in arrival order
        self.base_url = ""  # set once serving
        self.app = self._make_app()

    def add(self, *replies: Scripted) -> None:
        """Append replies to the script."""
        self._queue.extend(replies)

    @property
    def remaining(self) -> int:
        """Scripted replies not yet served."""
        return len(self._queue)

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve on a free 127.0.0.1 port until cancelled; `nursery.start` returns the base URL."""
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 0.1
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, self.app, config))
            self.base_url = str(binds[0])
            task_status.started(self.base_url)

    def _next_reply(self, recorded: RecordedRequest) -> Scripted:
        if self._script_fn is not None:
            return self._script_fn(recorded)
        if not self._queue:
            return ErrorReply(400, "invalid_request_error", "fake anthropic: the script is empty")
        return self._queue.popleft()

    def _make_app(self) -> QuartTrio:
        app = QuartTrio("fake_anthropic")

        @app.post("/v1/messages")
        async def messages() -> Response:
            body = await request.get_json(force=True)
            headers = {k.lower(): v for k, v in request.headers.items()}
            recorded = RecordedRequest(path=request.path, headers=headers, body=body)
            self.requests.append(recorded)
            admission: Admission | None = None
            if self.request_log is not None:
                self._log_request(recorded)
            if not recorded.credential or (
                self.expected_key is not None and recorded.credential != self.expected_key
            ):
                reply: Scripted = ErrorReply(
                    401, "authentication_error", f"invalid x-api-key: {recorded.credential}"
                )
            else:
                admission = self._admit(body)
                if admission is not None and admission.retry_after_s is not None:
                    reply = ErrorReply(429, "rate_limit_error", "rate limited", admission.headers)
                else:
                    reply = self._next_reply(recorded)
            cache_usage: dict[str, int] = {}
            written: list[str] = []
            if isinstance(reply, Reply):
                cache_usage, written = self._account_cache(body)
                if self.count_input_tokens:
                    boundaries = _prefix_boundaries(body)
                    total = boundaries[-1][1] if boundaries else 0
                    cached = sum(cache_usage.values())
                    cache_usage = {**cache_usage, "input_tokens": total - cached}
            response = await _respond(reply, body, cache_usage, partial(self._cache, written))
            if admission is not None:
                admission.apply(response, reply.usage if isinstance(reply, Reply) else None)
            return response

        return app

    def _admit(self, body: Mapping[str, Any]) -> Admission | None:
        """Charge the request to the rate limits (None: no limits); input excludes cache reads."""
        if self.limits is None:
            return None
        boundaries = _prefix_boundaries(body)
        total = boundaries[-1][1] if boundaries else 0
        read = self._account_cache(body)[0].get("cache_read_input_tokens", 0)
        return self.limits.admit(total - read, int(body.get("max_tokens") or 0))

    def _log_request(self, recorded: RecordedRequest) -> None:
        """Append one line for `recorded` to the request log (the module says what it holds)."""
        key = recorded.key
        credential = (recorded.credential or "").encode()
        canonical = json.dumps(recorded.body, sort_keys=True, separators=(",", ":"))
        line = {
            "n": len(self.requests) - 1,
            "key": None if key is None else asdict(key),
            "client": hashlib.sha256(credential).hexdigest()[:16],
            "sha256": hashlib.sha256(canonical.encode()).hexdigest(),
            "stream": bool(recorded.body.get("stream")),
        }
        assert self.request_log is not None
        with open(self.request_log, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
            log.flush()

    def _cache(self, digests: Iterable[str]) -> None:
        """A response began: the prefixes it wrote are readable from now on."""
        self.cached_prefixes.update(digests)

    def _account_cache(self, body: Mapping[str, Any]) -> tuple[dict[str, int], list[str]]:
        """Cache read and write tokens of `body`, and the prefixes it writes (see the module)."""
        boundaries = _prefix_boundaries(body)
        marked = [i for i, (_, _, breakpoint) in enumerate(boundaries) if breakpoint]
        if not marked:
            return {}, []
        last = marked[-1]
        read = 0
        for digest, tokens, _ in boundaries[: last + 1]:
            if digest in self.cached_prefixes:
                read = max(read, tokens)
        written = 0
        digests: list[str] = []
        for i in marked:
            digest, tokens, _ = boundaries[i]
            if tokens >= self.cache_min_tokens and tokens > read:
                digests.append(digest)
                written = max(written, tokens - read)
        if not read and not written:
            return {}, []
        usage = {"cache_read_input_tokens": read, "cache_creation_input_tokens": written}
        return usage, digests


def _prefix_boundaries(body: Mapping[str, Any]) -> list[tuple[str, int, bool]]:
    """(digest, tokens, marked) of the prefix up to each block, tools -> system -> messages."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, str) and system:
        blocks.append({"type": "text", "text": system})
    elif isinstance(system, list):
        blocks.extend(system)
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for block in content or []:
            blocks.append({"role": message.get("role"), **block})
    digest = hashlib.sha256(str(body.get("model")).encode())
    chars = 0
    out: list[tuple[str, int, bool]] = []
    for block in blocks:
        marked = isinstance(block, dict) and "cache_control" in block
        plain = {k: v for k, v in block.items() if k != "cache_control"} if marked else block
        text = json.dumps(plain, sort_keys=True)
        digest.update(text.encode())
        chars += len(text)
        out.append((digest.hexdigest(), chars // 4, marked))
    return out


async def _respond(
    reply: Scripted,
    body: Mapping[str, Any],
    cache_usage: Mapping[str, int] | None = None,
    on_begin: Callable[[], None] | None = None,
) -> Response:
    if isinstance(reply, HangReply):
        await trio.sleep(reply.seconds)
        reply = ErrorReply(500, "api_error", "fake anthropic: hang ended")
    if isinstance(reply, ErrorReply):
        return _error_response(reply)
    if isinstance(reply, RawReply):
        return Response(reply.body, reply.status, {"content-type": reply.content_type})
    if isinstance(reply, FloodReply):
        return Response(_flood(reply, body), 200, {"content-type": "text/event-stream"})
    if isinstance(reply, CutStreamReply):
        events = _cut(_stream_events(reply.reply, body), reply)
        return Response(_sse(events), 200, {"content-type": "text/event-stream"})
    if not body.get("stream"):
        if isinstance(reply, StreamErrorReply):
            return _error_response(ErrorReply(529, reply.error_type, reply.message))
        if on_begin is not None:
            on_begin()
        return Response(
            json.dumps(_message(reply, body, cache_usage)),
            200,
            {"content-type": "application/json"},
        )
    return Response(
        _sse(
            _stream_events(reply, body, cache_usage),
            reply.delay_s if isinstance(reply, Reply) else 0.0,
            on_begin,
        ),
        200,
        {"content-type": "text/event-stream", "cache-control": "no-cache"},
    )


def _error_response(reply: ErrorReply) -> Response:
    request_id = f"req_fake_{next(_ids):06d}"
    payload = {
        "type": "error",
        "error": {"type": reply.error_type, "message": reply.message},
        "request_id": request_id,
    }
    headers = {"content-type": "application/json", "request-id": request_id, **reply.headers}
    return Response(json.dumps(payload), reply.status, headers)


def _message(
    reply: Reply, body: Mapping[str, Any], cache_usage: Mapping[str, int] | None = None
) -> dict[str, Any]:
    return {
        "id": f"msg_fake_{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": reply.model or body.get("model", "claude-fake"),
        "content": [dict(block) for block in reply.content],
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            **reply.usage,
            **(cache_usage or {}),
        },
    }


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))] or [""]


def _stream_events(
    reply: Reply | StreamErrorReply,
    body: Mapping[str, Any],
    cache_usage: Mapping[str, int] | None = None,
) -> Iterable[tuple[str, dict[str, Any]]]:
    """The (event name, data) sequence of a streamed message."""
    answer = reply if isinstance(reply, Reply) else text_reply(reply.partial_text)
    full = _message(answer, body, cache_usage)
    usage = full["usage"]
    start = {
        **full,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 1},
    }
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    size = reply.chunk_size if isinstance(reply, Reply) else 4
    for index, block in enumerate(full["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _chunks(block["text"], size)]
        else:
            opening = {**block, "input": {}}
            raw = json.dumps(block["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": part} for part in _chunks(raw, size)
            ]
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": opening,
            },
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        if isinstance(reply, StreamErrorReply):
            error = {"type": reply.error_type, "message": reply.message}
            yield "error", {"type": "error", "error": error}
            return
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": full["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _cut(
    events: Iterable[tuple[str, dict[str, Any]]], cut: CutStreamReply
) -> Iterable[tuple[str, dict[str, Any]]]:
    deltas = 0
    for name, data in events:
        if cut.after_deltas is None and name == cut.drop_from:
            return
        yield name, data
        if name == "content_block_delta":
            deltas += 1
            if deltas == cut.after_deltas:
                return


async def _flood(reply: FloodReply, body: Mapping[str, Any]) -> AsyncIterator[bytes]:
    start = dict(next(iter(_stream_events(text_reply(""), body)))[1])
    yield f"event: message_start\ndata: {json.dumps(start)}\n\n".encode()
    if reply.one_line:
        yield b"event: content_block_delta\ndata: "
    else:
        block: dict[str, Any] = {"type": "text", "text": ""}
        opening = {"type": "content_block_start", "index": 0, "content_block": block}
        yield f"event: content_block_start\ndata: {json.dumps(opening)}\n\n".encode()
    text = "x" * reply.chunk_chars
    text_delta: dict[str, Any] = {"type": "text_delta", "text": text}
    delta = {"type": "content_block_delta", "index": 0, "delta": text_delta}
    event = f"event: content_block_delta\ndata: {json.dumps(delta)}\n\n".encode()
    for _ in range(reply.max_chunks):
        yield text.encode() if reply.one_line else event
        await trio.lowlevel.checkpoint()


async def _sse(
    events: Iterable[tuple[str, dict[str, Any]]],
    delay_s: float = 0.0,
    on_begin: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    # Event k is due `k * delay_s` after the stream starts: a busy server sends the
    # next one sooner instead of adding its lateness to every later event.
    due = trio.current_time()
    for name, data in events:
        if delay_s:
            due += delay_s
            await trio.sleep_until(due)
        if on_begin is not None:  # the first event: the response begins
            on_begin()
            on_begin = None
        yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        await trio.lowlevel.checkpoint()


@asynccontextmanager
async def open_fake_anthropic(
    script: Iterable[Scripted] | Callable[[RecordedRequest], Scripted] = (),
    *,
    expected_key: str | None = None,
    cache_min_tokens: int = 1024,
    count_input_tokens: bool = False,
    request_log: str | os.PathLike[str] | None = None,
    limits: RateLimits | None = None,
) -> AsyncIterator[FakeAnthropic]:
    """Run a FakeAnthropic for the duration of the block; `fake.base_url` is set."""
    fake = FakeAnthropic(
        script,
        expected_key=expected_key,
        cache_min_tokens=cache_min_tokens,
        count_input_tokens=count_input_tokens,
        request_log=request_log,
        limits=limits,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        try:
            yield fake
        finally:
            nursery.cancel_scope.cancel()
