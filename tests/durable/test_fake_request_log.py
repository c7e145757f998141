"""The fake Anthropic server's request log: one flushed JSON line a request, keyed by
agent/item/attempt/turn, telling client processes apart by their credential."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx

from tests.fake_anthropic.server import RequestKey, open_fake_anthropic, request_key, text_reply

MARKED = "agentflow-key: agent=worker item=item-3 attempt=2\nAnswer the work item."


def _body(system: Any, assistant_turns: int = 0) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for n in range(assistant_turns):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"a{n}"}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": f"u{n}"}]})
    return {"model": "claude-haiku-4-5", "max_tokens": 64, "system": system, "messages": messages}


def test_the_key_comes_from_the_marker_line_and_the_turn_from_the_assistant_messages() -> None:
    assert request_key(_body(MARKED)) == RequestKey("worker", "item-3", 2, 1)
    assert request_key(_body(MARKED, assistant_turns=2)) == RequestKey("worker", "item-3", 2, 3)


def test_a_system_prompt_in_blocks_with_cache_control_has_the_same_key() -> None:
    blocks = [{"type": "text", "text": MARKED, "cache_control": {"type": "ephemeral"}}]
    assert request_key(_body(blocks)) == RequestKey("worker", "item-3", 2, 1)


def test_no_marker_or_a_broken_one_has_no_key() -> None:
    assert request_key(_body("Answer the work item.")) is None
    assert request_key(_body("agentflow-key: agent=worker item=item-3 attempt=two")) is None
    assert request_key(_body("agentflow-key: agent=worker attempt=1")) is None
    assert request_key({"messages": []}) is None


async def test_each_request_is_one_flushed_line_naming_its_key_and_client(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    async with (
        open_fake_anthropic(lambda _: text_reply("ok"), request_log=log) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as client,
    ):
        for api_key, body in (
            ("sk-ant-first", _body(MARKED)),
            ("sk-ant-second", _body(MARKED, assistant_turns=1)),
            ("sk-ant-second", {**_body("no key here"), "stream": True}),
        ):
            response = await client.post("/v1/messages", json=body, headers={"x-api-key": api_key})
            assert response.status_code == 200
        # read while the server still runs: every line is already on disk
        lines = [json.loads(line) for line in log.read_text().splitlines()]

    def client_of(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    assert [(line["n"], line["client"], line["key"], line["stream"]) for line in lines] == [
        (0, client_of("sk-ant-first"), {"agent": "worker", "item": "item-3", "attempt": 2, "turn": 1}, False),  # noqa: E501
        (1, client_of("sk-ant-second"), {"agent": "worker", "item": "item-3", "attempt": 2, "turn": 2}, False),  # noqa: E501
        (2, client_of("sk-ant-second"), None, True),
    ]  # fmt: skip
    assert lines[0]["sha256"] != lines[1]["sha256"]
    canonical = json.dumps(_body(MARKED), sort_keys=True, separators=(",", ":"))
    assert lines[0]["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert "sk-ant" not in log.read_text()  # the log never holds a credential
