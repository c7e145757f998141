"""The API key never reaches an event, the audit log or a cassette, even when the model echoes it.

The fake Anthropic server plays a model that repeats its key: in text split
across many SSE deltas and across a `model_text` batch boundary (the runner
batches 2 KB), in a tool's input and in a verdict. Whatever the model returns
is scrubbed by the model object before the runner sees it.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest
import trio

from agentflow.runtime.events.event import EventKind
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.redaction import REDACTED, SecretRedactor
from tests.fake_anthropic.server import (
    RecordedRequest,
    Reply,
    Scripted,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)
from tests.runtime.test_anthropic_e2e import HELLO, PASS, HelloScript, run_hello
from tests.runtime.test_anthropic_e2e import KEY as E2E_KEY
from tests.runtime.test_anthropic_model import READ_TOOL, make_request

# The key `run_hello` gives its model: the key the model knows is the key it must scrub.
KEY = E2E_KEY
# 2045 characters, then the key: the runner's 2048-character batch ends inside it.
FILLER = "".join(f"word{i} " for i in range(400))[:2045]
ECHO_TEXT = f"{FILLER}{KEY} was my key."
REDACTED_TEXT = f"{FILLER}{REDACTED} was my key."


def test_a_redacting_stream_gives_the_redacted_text_however_the_deltas_fall() -> None:
    redactor = SecretRedactor([KEY])
    text = f"ab {KEY} cd sk-ant- {KEY}{KEY} s"
    expected = redactor.text(text)
    assert KEY not in expected
    for first, second in itertools.combinations(range(len(text) + 1), 2):
        out: list[str] = []
        sink = redactor.stream(out.append)
        for piece in (text[:first], text[first:second], text[second:]):
            sink(piece)
        sink.flush()
        assert "".join(out) == expected, (first, second)
        assert all(KEY not in piece for piece in out)


def test_text_that_only_looks_like_the_start_of_a_key_is_not_held_forever() -> None:
    out: list[str] = []
    sink = SecretRedactor([KEY]).stream(out.append)
    sink("an answer ending in sk-ant")
    assert "".join(out) == "an answer ending in "  # the rest might become the key
    sink(" and then more")
    assert "".join(out) == "an answer ending in sk-ant and then more"


def test_short_values_are_not_treated_as_secrets() -> None:
    redactor = SecretRedactor(["k", "", None, "1234567"])
    assert redactor.secrets == ()
    assert redactor.text("key 1234567") == "key 1234567"


async def test_the_model_scrubs_an_echoed_key_from_deltas_text_tool_input_and_verdicts() -> None:
    echo = Reply(
        content=(
            {"type": "text", "text": ECHO_TEXT},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "read_file",
                "input": {"path": f"keys/{KEY}.txt", KEY: [KEY, {"nested": KEY}]},
            },
        ),
        stop_reason="tool_use",
        chunk_size=5,
    )
    verdict = tool_reply("submit_verdict", {"passed": False, "issues": [{"message": KEY}]})
    deltas: list[str] = []
    async with (
        open_fake_anthropic([echo, verdict]) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
    ):
        turn = await model.complete(make_request(tools=[READ_TOOL]), deltas.append)
        review = await model.complete(make_request(output="verdict"))
    assert len(deltas) > 100 and all(KEY not in d for d in deltas)
    assert "".join(deltas) == REDACTED_TEXT == turn.text
    [call] = turn.tool_calls
    assert call.input == {
        "path": f"keys/{REDACTED}.txt",
        REDACTED: [REDACTED, {"nested": REDACTED}],
    }
    assert review.structured == {"passed": False, "issues": [{"message": REDACTED}]}


async def test_the_key_from_the_environment_is_scrubbed_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_key = "sk-ant-api03-ENVIRONMENT-KEY-0a1b2c3d4e"
    monkeypatch.setenv("ANTHROPIC_API_KEY", env_key)
    async with (
        open_fake_anthropic([text_reply(f"{KEY} and {env_key}", chunk_size=3)]) as fake,
        AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
    ):
        turn = await model.complete(make_request())
    assert turn.text == f"{REDACTED} and {REDACTED}"


def echo_script() -> HelloScript:
    """The writer echoes the key in text and in a file it writes; the reviewer, in its verdict."""
    fail = {"passed": False, "issues": [{"message": f"do not print {KEY}"}]}
    return HelloScript(
        writer=[
            tool_reply("filesystem", {"op": "write", "path": "key.txt", "content": KEY}),
            Reply(content=({"type": "text", "text": ECHO_TEXT},), chunk_size=7),
            text_reply(f"Second draft, key {KEY} again.", chunk_size=4),
        ],
        reviewer=[tool_reply("submit_verdict", fail), tool_reply("submit_verdict", PASS)],
    )


def model_texts(events: list[object]) -> dict[tuple[int, int], str]:
    """The streamed text of each (attempt, turn) of the writer, batches joined."""
    joined: dict[tuple[int, int], str] = {}
    for event in events:
        if getattr(event, "kind", None) is EventKind.MODEL_TEXT:
            key = (event.attempt, event.payload["turn"])  # type: ignore[attr-defined]
            joined[key] = joined.get(key, "") + event.payload["text"]  # type: ignore[attr-defined]
    return joined


async def test_no_event_of_a_run_holds_the_key_even_split_across_batches(tmp_path: Path) -> None:
    result, events, _requests, lines = await run_hello(echo_script(), tmp_path)
    assert result.ok, result.reason
    assert all(KEY not in line for line in lines)
    texts = model_texts(list(events))
    assert REDACTED_TEXT in texts.values()
    batches = [
        e.payload["text"]
        for e in events
        if e.kind is EventKind.MODEL_TEXT and e.attempt == 1 and e.payload["turn"] == 2
    ]
    assert len(batches) >= 2, "the echoed text must span batches for this test to mean anything"
    assert all(KEY not in line for line in map(str, (e.payload for e in events)))
    assert (tmp_path / "key.txt").read_text() == REDACTED  # the tool got the scrubbed input


async def test_the_audit_log_and_the_recorded_cassette_never_hold_the_key(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    log, cassette = workdir / "run.jsonl", workdir / "run.cassette.jsonl"
    script = echo_script()

    def answer(request: RecordedRequest) -> Scripted:
        return script(request)

    async with open_fake_anthropic(answer, expected_key=KEY) as fake:
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": fake.base_url,
        }
        argv = [str(Path(sys.executable).parent / "agentflow"), "run", str(HELLO)]
        argv += ["Explain trio nurseries.", "--jsonl", str(log), "--record", str(cassette)]
        argv += ["--no-ui", "--quiet", "--model", "anthropic", "--seed", "1"]
        with trio.fail_after(120):  # a safety net: a hang fails instead of blocking the suite
            done = await trio.run_process(
                argv, cwd=workdir, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert len(fake.requests) == 5
    for path in (log, cassette):
        text = path.read_text()
        assert KEY not in text and REDACTED in text, path
    assert KEY not in output
    assert (workdir / "workspace" / "key.txt").read_text() == REDACTED
