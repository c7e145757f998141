"""Agent conversations: the model-turn builders, and the Messages API's rules.

`assistant_message` and `structured_error_result` build the turns the agent
runner appends; `conversation_problems` says whether a `messages` list is
valid for the Anthropic Messages API. The runner builds each agent's
conversation itself (user turn, model turns, tool results, re-asks). The
real API refuses a conversation that breaks its rules with a 400, which a fake
server or a replay would never notice, so the rules are written down here and
checked in tests against every request the fake Anthropic server records:

* the conversation is non-empty, starts and ends with a `user` turn, and the
  roles alternate;
* a turn's content is a non-empty string or a non-empty list of blocks, and no
  text block is empty or whitespace-only;
* `tool_use` blocks appear only in assistant turns, with a unique id, a name
  and an object input; `tool_result` blocks only in user turns;
* the user turn after an assistant turn with `tool_use` blocks answers every
  one of them with a `tool_result`, and those blocks come first in the turn;
  a `tool_result` never answers an id the previous assistant turn did not use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .base import STRUCTURED_TOOL_NAMES, AnswerKind, ModelTurn

__all__ = ["assistant_message", "conversation_problems", "structured_error_result"]

_ROLES = ("user", "assistant")


def _blocks(message: Mapping[str, Any], where: str, problems: list[str]) -> list[Mapping[str, Any]]:
    """The message's content as blocks (a string is one text block), noting malformed content."""
    content = message.get("content")
    if isinstance(content, str):
        if not content.strip():
            problems.append(f"{where}: content is an empty string")
        return [{"type": "text", "text": content}]
    if not isinstance(content, Sequence) or not content:
        problems.append(f"{where}: content must be a non-empty string or list of blocks")
        return []
    blocks = [block for block in content if isinstance(block, Mapping)]
    if len(blocks) != len(content):
        problems.append(f"{where}: every content block must be an object")
    return blocks


def _check_block(
    block: Mapping[str, Any], role: str, where: str, seen_ids: set[str], problems: list[str]
) -> None:
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: text block is empty or whitespace-only")
    elif kind == "tool_use":
        if role != "assistant":
            problems.append(f"{where}: tool_use block in a {role} turn")
        call_id = block.get("id")
        if not isinstance(call_id, str) or not call_id:
            problems.append(f"{where}: tool_use block without an id")
        elif call_id in seen_ids:
            problems.append(f"{where}: tool_use id {call_id!r} is used twice")
        else:
            seen_ids.add(call_id)
        if not isinstance(block.get("name"), str) or not block.get("name"):
            problems.append(f"{where}: tool_use block without a name")
        if not isinstance(block.get("input"), Mapping):
            problems.append(f"{where}: tool_use input must be an object")
    elif kind == "tool_result":
        if role != "user":
            problems.append(f"{where}: tool_result block in a {role} turn")
    elif kind not in ("image", "document", "thinking", "redacted_thinking"):
        problems.append(f"{where}: unknown block type {kind!r}")


def _check_answers(
    pending: list[str], blocks: list[Mapping[str, Any]], where: str, problems: list[str]
) -> None:
    """The user turn `blocks` must answer exactly the tool_use ids `pending`, results first."""
    kinds = [block.get("type") for block in blocks]
    results = [block for block in blocks if block.get("type") == "tool_result"]
    if results and kinds[: len(results)] != ["tool_result"] * len(results):
        problems.append(f"{where}: tool_result blocks must come before any other block")
    answered = [str(block.get("tool_use_id")) for block in results]
    for call_id in pending:
        if call_id not in answered:
            problems.append(
                f"{where}: tool_use {call_id!r} of the previous turn has no tool_result"
            )
    for call_id in answered:
        if call_id not in pending:
            problems.append(
                f"{where}: tool_result for {call_id!r}, which the previous turn did not use"
            )
    if len(set(answered)) != len(answered):
        problems.append(f"{where}: a tool_use is answered by more than one tool_result")


def conversation_problems(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every way `messages` breaks the Messages API's conversation rules (empty: valid).

    Each problem names the message index ("messages[3]") and, where it helps,
    the block index, in the order found.
    """
    problems: list[str] = []
    if not messages:
        return ["messages: the conversation is empty"]
    seen_ids: set[str] = set()
    pending: list[str] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        expected = _ROLES[index % 2]
        if role != expected:
            problems.append(f"{where}: role is {role!r}, expected {expected!r} (roles alternate)")
        blocks = _blocks(message, where, problems)
        for number, block in enumerate(blocks):
            _check_block(block, str(role), f"{where}.content[{number}]", seen_ids, problems)
        if role == "user":
            _check_answers(pending, blocks, where, problems)
        pending = [
            str(block.get("id"))
            for block in blocks
            if role == "assistant" and block.get("type") == "tool_use"
        ]
    if messages[-1].get("role") != "user":
        problems.append("messages: the conversation must end with a user turn")
    return problems


def assistant_message(result: ModelTurn, kind: AnswerKind) -> dict[str, Any]:
    """The model's turn as the conversation records it.

    A structured answer with a `structured_call_id` is kept as the tool_use it
    was (so the next user turn must answer it with a tool_result); one without
    (replay, a user's model) is echoed as text, which needs no answer.
    """
    blocks: list[dict[str, Any]] = []
    if result.text.strip():
        blocks.append({"type": "text", "text": result.text})
    structured, tool = result.structured, STRUCTURED_TOOL_NAMES.get(kind)
    if structured is not None and tool is not None and result.structured_call_id is None:
        submitted = json.dumps(dict(structured), default=str)
        blocks.append({"type": "text", "text": f"[{tool}: {submitted}]"})
    for call in result.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.input)}
        )
    if structured is not None and tool is not None and result.structured_call_id is not None:
        blocks.append(
            {
                "type": "tool_use",
                "id": result.structured_call_id,
                "name": tool,
                "input": dict(structured),
            }
        )
    if not blocks:
        blocks.append({"type": "text", "text": "(no answer)"})
    return {"role": "assistant", "content": blocks}


def structured_error_result(result: ModelTurn, message: str) -> list[dict[str, Any]]:
    """The tool_result (an error) that answers the turn's structured tool_use, if it had one."""
    if result.structured is None or result.structured_call_id is None:
        return []
    return [
        {
            "type": "tool_result",
            "tool_use_id": result.structured_call_id,
            "content": message,
            "is_error": True,
        }
    ]
