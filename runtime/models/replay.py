"""`ReplayModel`: offline answers from a recorded cassette (no network, no API key).

A cassette is JSONL. Each `model_response` line is one recorded model turn,
keyed by (agent, item, attempt, turn); lines of any other kind are skipped, so
a run's own audit log is a cassette. Hand-written lines may leave out run_id,
seq, ts and the hashes: only `kind`, `agent`, `item`, `attempt` and `payload`
are read. The payload is what the agent runner records:

    {"turn": 1, "text": "...", "tool_calls": [{"id", "name", "input"}],
     "structured": {...} | null, "usage": {"input_tokens", "output_tokens", ...},
     "stop_reason": "end_turn", "model": "claude-sonnet-4-6"}

The recorded text is streamed to `on_text` in a few chunks, so the UI shows it
arriving; token usage is replayed as recorded. Everything else in the run (the
engine, tools, state machine, events) is real.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio
from pydantic import ValidationError

from ..errors import CassetteMissError, ModelError
from ..usage import Usage
from .base import ModelRequest, ModelTurn, TextSink, ToolCall

__all__ = ["CassetteKey", "ReplayModel", "load_cassette"]

CassetteKey = tuple[str, str, int, int]
"""(agent, item, attempt, turn)."""

_USAGE_FIELDS = frozenset(Usage.model_fields)
_CHUNKS = 4


def _key_text(key: CassetteKey) -> str:
    agent, item, attempt, turn = key
    return f"agent={agent} item={item} attempt={attempt} turn={turn}"


def _parse_line(path: Path, number: int, line: str) -> tuple[CassetteKey, dict[str, Any]] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{path}:{number}: the cassette line is not JSON ({exc.msg}); "
            "each line must be one JSON event"
        ) from None
    if not isinstance(record, dict) or record.get("kind") != "model_response":
        return None
    payload = record.get("payload")
    agent, item, attempt = record.get("agent"), record.get("item"), record.get("attempt")
    turn = payload.get("turn") if isinstance(payload, dict) else None
    if not (
        isinstance(payload, dict)
        and isinstance(agent, str)
        and isinstance(item, str)
        and isinstance(attempt, int)
        and isinstance(turn, int)
    ):
        raise ModelError(
            f"{path}:{number}: a model_response line needs string 'agent' and 'item', "
            "integer 'attempt', and a 'payload' object with an integer 'turn'"
        )
    return (agent, item, attempt, turn), payload


def load_cassette(path: str | Path) -> dict[CassetteKey, dict[str, Any]]:
    """Read a cassette: {(agent, item, attempt, turn): model_response payload}.

    The first recording of a key wins.

    Raises:
        ModelError: the file cannot be read, or a line is malformed (not JSON,
            no key, or a payload that is not a valid turn: bad `tool_calls`,
            `usage`, ...), naming the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(
            f"cannot read the replay cassette {path}: {exc.strerror}. Record one with "
            "`agentflow run --record CASSETTE` and ANTHROPIC_API_KEY set"
        ) from None
    entries: dict[CassetteKey, dict[str, Any]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            parsed = _parse_line(path, number, line)
            if parsed is not None and parsed[0] not in entries:
                _check_turn(path, number, *parsed)
                entries[parsed[0]] = parsed[1]
    return entries


def _check_turn(path: Path, number: int, key: CassetteKey, payload: Mapping[str, Any]) -> None:
    """Build the turn once at load, so a malformed entry fails here, naming its line."""
    try:
        _turn_from(payload)
    except ValidationError as exc:
        problem = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
        )
    except KeyError as exc:
        problem = f"a tool call has no {exc} field"
    except (TypeError, ValueError, AttributeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        return
    raise ModelError(
        f"{path}:{number}: the model_response for {_key_text(key)} is malformed ({problem}); "
        "'tool_calls' must be a list of {id, name, input} objects and 'usage' an object of "
        "token counts. Fix the line, or record the cassette again with --record"
    )


def _chunks(text: str, count: int = _CHUNKS) -> list[str]:
    """Split text into about `count` pieces at spaces (joined, they give the text back)."""
    if len(text) < 2 * count:
        return [text] if text else []
    size = len(text) // count
    pieces, start = [], 0
    while start < len(text):
        end = text.find(" ", start + size)
        end = len(text) if end == -1 else end + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def _turn_from(payload: Mapping[str, Any]) -> ModelTurn:
    calls = tuple(
        ToolCall(id=str(c["id"]), name=str(c["name"]), input=dict(c.get("input") or {}))
        for c in payload.get("tool_calls") or ()
    )
    usage_raw = payload.get("usage") or {}
    usage = Usage(**{k: v for k, v in usage_raw.items() if k in _USAGE_FIELDS})
    structured = payload.get("structured")
    return ModelTurn(
        text=str(payload.get("text") or ""),
        tool_calls=calls,
        structured=dict(structured) if isinstance(structured, dict) else None,
        usage=usage,
        stop_reason=str(payload.get("stop_reason") or "end_turn"),
        model=str(payload.get("model") or ""),
    )


class ReplayModel:
    """Answers each turn from a cassette; raises `CassetteMissError` when none is recorded."""

    name = "replay"

    def __init__(self, cassette: str | Path) -> None:
        self.path = Path(cassette)
        # Invariant: read once at construction; never changes.
        self.entries = load_cassette(self.path)

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        """Replay the recorded turn for (agent, item, attempt, turn).

        Raises:
            CassetteMissError: nothing is recorded for this call.
        """
        key: CassetteKey = (request.agent, request.item, request.attempt, request.turn)
        payload = self.entries.get(key)
        if payload is None:
            raise self._miss(key)
        turn = _turn_from(payload)
        for piece in _chunks(turn.text):
            if on_text is not None:
                on_text(piece)
            await trio.lowlevel.checkpoint()
        if not turn.text:
            await trio.lowlevel.checkpoint()
        return turn

    def nearest(self, key: CassetteKey, limit: int = 3) -> list[CassetteKey]:
        """The recorded keys most like `key` (same agent first, then item, attempt, turn)."""
        agent, item, attempt, turn = key

        def distance(other: CassetteKey) -> tuple[int, int, int, int]:
            return (
                other[0] != agent,
                other[1] != item,
                abs(other[2] - attempt),
                abs(other[3] - turn),
            )

        return sorted(self.entries, key=distance)[:limit]

    def _miss(self, key: CassetteKey) -> CassetteMissError:
        near = self.nearest(key)
        recorded = "; ".join(_key_text(k) for k in near) if near else "none: the cassette is empty"
        return CassetteMissError(
            f"offline replay: cassette {self.path} has no recorded model response for "
            f"{_key_text(key)} (nearest recorded: {recorded}). The run took a path the "
            "recording did not; record a new cassette from a live run with "
            "`agentflow run PIPELINE --record CASSETTE` and ANTHROPIC_API_KEY set"
        )
