"""Secrets a model knows (its API key) never leave it: not in text, tool input or errors.

A model may echo its own key (a prompt injection asks it to; a tool result
showed it). Whatever a model returns becomes events, the audit log, a
cassette and the UI, so the model object scrubs its secrets from everything
it hands back. Streamed text is scrubbed across delta boundaries: a key split
over two deltas (or over two `model_text` batches) is held back until it can
be seen whole (`RedactingTextSink`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .base import ModelTurn, TextSink, ToolCall

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "RedactingTextSink",
    "SecretRedactor",
    "model_secrets",
]

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8
"""Shorter values are test stand-ins, not secrets; replacing them would mangle text ("k")."""


def model_secrets(model: object) -> tuple[str, ...]:
    """The secrets a run must keep out of its events: the model's own (`secrets`
    attribute, if it has one) and the Anthropic credentials in the environment."""
    own: tuple[str, ...] = tuple(getattr(model, "secrets", ()) or ())
    env = (os.environ.get("ANTHROPIC_API_KEY"), os.environ.get("ANTHROPIC_AUTH_TOKEN"))
    return own + tuple(value for value in env if value)


class SecretRedactor:
    """Replaces each of `secrets` (at least `MIN_SECRET_LENGTH` long) with `[redacted]`."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret containing another is replaced whole.
        self.secrets: tuple[str, ...] = tuple(sorted(unique, key=len, reverse=True))

    def text(self, text: str) -> str:
        """`text` without any secret."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it (keys included) redacted."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def turn(self, turn: ModelTurn) -> ModelTurn:
        """`turn` with its text, tool calls and structured answer redacted."""
        if not self.secrets:
            return turn
        calls = tuple(
            ToolCall(id=self.text(c.id), name=self.text(c.name), input=self.value(c.input))
            for c in turn.tool_calls
        )
        structured = None if turn.structured is None else self.value(turn.structured)
        return ModelTurn(
            text=self.text(turn.text),
            tool_calls=calls,
            structured=structured,
            usage=turn.usage,
            stop_reason=self.text(turn.stop_reason),
            model=self.text(turn.model),
            structured_call_id=(
                None if turn.structured_call_id is None else self.text(turn.structured_call_id)
            ),
        )

    def stream(self, sink: TextSink) -> RedactingTextSink:
        """A text sink that passes redacted deltas on to `sink`."""
        return RedactingTextSink(self, sink)


class RedactingTextSink:
    """Streams text to `sink` with secrets removed, even when one spans several deltas.

    After each delta, the longest end of the text that is the beginning of a
    secret is held back (a secret may be arriving); everything before it is
    sent. `flush()` sends what is held when the stream is complete,
    `discard()` drops it when the attempt failed.
    """

    def __init__(self, redactor: SecretRedactor, sink: TextSink) -> None:
        self._redactor = redactor
        self._sink = sink
        # Invariant: holds no whole secret, only a proper prefix of one.
        self._pending = ""

    def __call__(self, delta: str) -> None:
        if not self._redactor.secrets:
            if delta:
                self._sink(delta)
            return
        text = self._redactor.text(self._pending + delta)
        cut = len(text) - self._secret_start(text)
        self._pending = text[cut:]
        if cut:
            self._sink(text[:cut])

    def _secret_start(self, text: str) -> int:
        """The length of the longest end of `text` that begins some secret."""
        longest = 0
        for secret in self._redactor.secrets:
            for size in range(min(len(secret) - 1, len(text)), longest, -1):
                if text.endswith(secret[:size]):
                    longest = size
                    break
        return longest

    def flush(self) -> None:
        """Send what is held back: the stream ended, no secret can continue it."""
        pending, self._pending = self._pending, ""
        if pending:
            self._sink(pending)

    def discard(self) -> None:
        """Drop what is held back (the attempt failed; its text is void)."""
        self._pending = ""
