"""`agentflow show RUN` reports what prompt caching wrote, read and saved, per agent."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import trio

from agentflow.runtime.cli.history import caching_report
from tests.fake_anthropic.server import open_fake_anthropic, text_reply, tool_reply
from tests.runtime.test_anthropic_e2e import HelloScript
from tests.runtime.test_prompt_caching import KEY, LONG_SYSTEM


def _response(agent: str, written: int, read: int, model: str = "claude-sonnet-4-6") -> str:
    usage = {
        "input_tokens": 10, "output_tokens": 5,
        "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
    }  # fmt: skip
    return json.dumps(
        {"kind": "model_response", "agent": agent, "payload": {"model": model, "usage": usage}}
    )


def test_the_report_counts_per_agent_and_prices_what_caching_saved() -> None:
    lines = [_response("planner", 0, 0)]  # no cache tokens: not reported
    lines += [_response("worker", 2_000, 0)] + [_response("worker", 0, 5_000)] * 4
    # sonnet: input $3/M, a write $3.75/M, a read $0.30/M:
    # saved = 20,000 x 2.70 - 2,000 x 0.75 = 54,000 - 1,500 -> $0.0525
    assert caching_report(lines) == [
        "prompt caching: 2000 tokens written, 20000 read; saved $0.0525 against the same calls "
        "uncached (built-in prices)",
        "  worker: 2000 written, 20000 read, saved $0.0525",
    ]


def test_writes_never_read_cost_more_than_they_saved() -> None:
    assert caching_report([_response("writer", 2_000, 0)])[1] == (
        "  writer: 2000 written, 0 read, saved -$0.0015"
    )


def test_no_cache_tokens_no_report() -> None:
    assert caching_report([_response("writer", 0, 0)]) == []


async def test_agentflow_show_prints_the_caching_report(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "prompts").mkdir()
    for agent in ("writer_agent", "reviewer_agent"):
        text = (root / "pipelines" / "prompts" / f"{agent}.md").read_text()
        (tmp_path / "prompts" / f"{agent}.md").write_text(f"{text}\n\n{LONG_SYSTEM}\n")
    pipeline = tmp_path / "hello.yaml"
    pipeline.write_text((root / "pipelines" / "hello_world.yaml").read_text())
    script = HelloScript(
        writer=[text_reply("Trio runs tasks in nurseries.")],
        reviewer=[tool_reply("submit_verdict", {"passed": True, "issues": []})],
    )
    agentflow = str(Path(sys.executable).parent / "agentflow")
    async with open_fake_anthropic(script) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.base_url}
        with trio.fail_after(120):  # a safety net: a hang fails instead of blocking the suite
            done = await trio.run_process(
                [agentflow, "run", str(pipeline), "trio", "--no-ui", "--model", "anthropic"],
                cwd=tmp_path, env=env, capture_stdout=True, capture_stderr=True, check=False,
            )  # fmt: skip
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out
    run_id = next(x for x in out.splitlines() if x.startswith("run run-")).split()[1].rstrip(":")
    with trio.fail_after(120):
        shown = await trio.run_process(
            [agentflow, "show", run_id], cwd=tmp_path, capture_stdout=True, check=False
        )
    text = shown.stdout.decode()
    assert shown.returncode == 0, text
    report = [line for line in text.splitlines() if "written" in line]
    assert report[0].startswith("prompt caching: ") and " read; saved -$" in report[0]
    assert [line.split(":")[0].strip() for line in report[1:]] == ["writer_agent", "reviewer_agent"]
    assert KEY not in text
