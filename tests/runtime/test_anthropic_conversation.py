"""conversation_problems: the Messages API's conversation rules, each shown to be caught."""

from __future__ import annotations

from typing import Any

import pytest

from agentflow.runtime.models.conversation import conversation_problems


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def use(call_id: str, name: str = "adder") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {"a": 1}}


def result(call_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": "3", "is_error": False}


def test_a_tool_loop_conversation_is_valid() -> None:
    messages = [
        user(text("add 1 and 2")),
        assistant(text("Adding."), use("c1"), use("c2")),
        user(result("c1"), result("c2"), text("and now?")),
        assistant(use("c3", "submit_verdict")),
        user({**result("c3"), "is_error": True}),
    ]
    assert conversation_problems(messages) == []
    assert conversation_problems([{"role": "user", "content": "plain string"}]) == []


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([], "the conversation is empty"),
        ([assistant(text("hi"))], "role is 'assistant', expected 'user'"),
        ([user(text("a")), user(text("b"))], "roles alternate"),
        ([user(text("a")), assistant(text("b"))], "must end with a user turn"),
        ([user(text("   "))], "empty or whitespace-only"),
        ([{"role": "user", "content": []}], "non-empty string or list"),
        ([{"role": "user", "content": ""}], "empty string"),
        ([user(use("c1"))], "tool_use block in a user turn"),
        ([user(text("a")), assistant(use("c1")), user(text("b"))], "'c1' of the previous turn"),
        ([user(result("c9"))], "which the previous turn did not use"),
        (
            [user(text("a")), assistant(use("c1")), user(text("b"), result("c1"))],
            "must come before any other block",
        ),
        (
            [
                user(text("a")),
                assistant(use("c1")),
                user(result("c1")),
                assistant(use("c1")),
                user(result("c1")),
            ],
            "'c1' is used twice",
        ),
        ([user(text("a")), assistant({**use("c1"), "input": "x"}), user(result("c1"))], "object"),
        ([user({"type": "video"})], "unknown block type 'video'"),
    ],
)
def test_each_rule_is_enforced(messages: list[dict[str, Any]], problem: str) -> None:
    problems = conversation_problems(messages)
    assert any(problem in p for p in problems), problems
