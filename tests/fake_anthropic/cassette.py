"""Script a FakeAnthropic from a replay cassette, so a live run can be compared with replay.

Replies come out in the cassette's line order, which is the order the run made
its calls when the pipeline runs its agents one at a time (hello-world). The
structured answer goes back as a call of the structured-output tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentflow.runtime.models.base import STRUCTURED_TOOL_NAMES
from agentflow.runtime.models.replay import load_cassette

from .server import Reply

__all__ = ["replies_from_cassette"]


def replies_from_cassette(path: Path) -> list[Reply]:
    """One Reply per recorded model turn, in file order."""
    return [_reply(payload) for payload in load_cassette(path).values()]


def _reply(payload: dict[str, Any]) -> Reply:
    blocks: list[dict[str, Any]] = []
    if payload.get("text"):
        blocks.append({"type": "text", "text": payload["text"]})
    for call in payload.get("tool_calls") or ():
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["input"]}
        )
    structured = payload.get("structured")
    if structured is not None:
        name = (
            STRUCTURED_TOOL_NAMES["verdict"]
            if "passed" in structured
            else STRUCTURED_TOOL_NAMES["items"]
        )
        blocks.append(
            {"type": "tool_use", "id": f"toolu_s{len(blocks)}", "name": name, "input": structured}
        )
    usage = payload.get("usage") or {}
    tokens = {
        k: int(usage.get(k, 0))
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    }
    return Reply(
        content=tuple(blocks),
        stop_reason=str(payload.get("stop_reason") or "end_turn"),
        usage=tokens,
        model=payload.get("model") or None,
    )
