"""`agentflow resume` (issue 11 item 3): a SIGKILLed `agentflow run` (the real SDK against
the fake Anthropic API) resumed by the CLI gives an uninterrupted run's output, with no
committed model call made again; refusals are clear, exit 2, no traceback."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.store import RunStore
from tests.fake_anthropic.server import (
    HangReply,
    RecordedRequest,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)

KEY = "sk-ant-api03-RESUME-FAKE-KEY-never-in-the-log-3c7e"
ROOT = Path(__file__).resolve().parents[2]
AGENTFLOW = str(Path(sys.executable).parent / "agentflow")
FAIL = {"passed": False, "issues": [{"message": "say why nurseries matter"}]}
PASS = {"passed": True, "issues": [], "summary": "clear"}
SAFETY = 120  # seconds: a hang fails instead of blocking the suite


def _hello(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    for agent in ("writer_agent", "reviewer_agent"):
        text = (ROOT / "pipelines" / "prompts" / f"{agent}.md").read_text()
        (tmp_path / "prompts" / f"{agent}.md").write_text(text)
    pipeline = tmp_path / "hello.yaml"
    pipeline.write_text((ROOT / "pipelines" / "hello_world.yaml").read_text())
    return pipeline


def _is_review(request: RecordedRequest) -> bool:
    return bool(request.body.get("tool_choice"))


class _Script:
    """Writer drafts are numbered by attempt; the reviewer fails the first draft only.
    `kill_at`: the request number (1-based) on which `victim` is SIGKILLed instead."""

    def __init__(self) -> None:
        self.kill_at: int | None = None
        self.victim: Any = None
        self.seen = 0

    def __call__(self, request: RecordedRequest) -> Any:
        self.seen += 1
        if self.kill_at is not None and self.seen == self.kill_at:
            os.kill(self.victim.pid, signal.SIGKILL)
            return HangReply()
        messages = request.body.get("messages") or []
        retry = any("previous attempt" in str(m.get("content")) for m in messages)
        if _is_review(request):
            draft = str(messages[0].get("content"))
            return tool_reply("submit_verdict", PASS if "draft 2" in draft else FAIL)
        return text_reply("draft 2: nurseries scope tasks." if retry else "draft 1: nurseries.")


async def _agentflow(
    *argv: str, cwd: Path, env: dict[str, str], victim_of: _Script | None = None
) -> Any:
    command = [AGENTFLOW, *argv]
    with trio.fail_after(SAFETY):
        if victim_of is None:
            return await trio.run_process(
                command, cwd=cwd, env=env, capture_stdout=True, capture_stderr=True, check=False
            )
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                functools.partial(
                    trio.run_process, command, cwd=cwd, env=env, check=False,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
            victim_of.victim = process
        return process


async def test_a_sigkilled_run_resumed_by_the_cli_gives_the_uninterrupted_output(
    tmp_path: Path,
) -> None:
    pipeline = _hello(tmp_path)
    store = tmp_path / "store.db"
    script = _Script()
    async with open_fake_anthropic(script) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.base_url}
        common = ["--store", str(store), "--no-ui", "--quiet"]
        whole = await _agentflow(
            "run", str(pipeline), "trio", "--model", "anthropic", "--output",
            str(tmp_path / "whole.txt"), *common, cwd=tmp_path, env=env,
        )  # fmt: skip
        assert whole.returncode == 0, whole.stderr.decode()
        uninterrupted = len(fake.requests)
        assert uninterrupted == 4  # writer, reviewer (fails), writer, reviewer (passes)
        script.kill_at = uninterrupted + 3  # the second writer call: both first answers committed
        log = tmp_path / "killed.jsonl"
        killed = await _agentflow(
            "run", str(pipeline), "trio", "--model", "anthropic", "--jsonl", str(log),
            *common, cwd=tmp_path, env=env, victim_of=script,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL
        with RunStore.open(str(store)) as reader:
            run_id = reader.runs(limit=1)[0].id
            assert reader.run(run_id).status == "running"  # killed: no run_finished
        before_resume = len(fake.requests)
        resumed = await _agentflow(
            "resume", run_id, "--output", str(tmp_path / "resumed.txt"), *common,
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr.decode() + resumed.stdout.decode()
        assert (
            b"served from the run store: 2 invocation(s), 0 model turn(s), 0 tool result(s); "
            b"run live: 2 invocation(s), 2 model turn(s)"
        ) in resumed.stdout
    assert (tmp_path / "resumed.txt").read_text() == (tmp_path / "whole.txt").read_text()
    interrupted = [r.body for r in fake.requests[uninterrupted:]]
    # Killed on its 3rd request (in flight, never answered): the resume made it again
    # and the last one; the two answered before the kill were never made again.
    assert len(interrupted) == 3 + (len(fake.requests) - before_resume) == 5
    answered = interrupted[:2]
    assert all(sum(body == seen for seen in interrupted) == 1 for body in answered)
    assert verify_log(log).ok, verify_log(log).render()
    with RunStore.open(str(store)) as reader:
        assert log.read_text().splitlines() == list(reader.lines(run_id))
        record = reader.run(run_id)
        assert (record.status, record.final_state) == ("succeeded", "complete")
        # The whole log's answered calls: the killed request was never answered.
        assert record.model_calls == 4


async def test_resume_refuses_a_finished_run_a_changed_pipeline_and_a_live_owner(
    tmp_path: Path,
) -> None:
    pipeline = _hello(tmp_path)
    store = tmp_path / "store.db"
    env = {**os.environ}
    env.pop("ANTHROPIC_API_KEY", None)
    common = ["--store", str(store), "--no-ui", "--quiet"]
    done = await _agentflow(
        "run", str(pipeline), "trio", "--model", "dry-run", *common, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr.decode()
    with RunStore.open(str(store)) as reader:
        finished = reader.runs(limit=1)[0].id
        # A run another live process owns: this test's own process.
        live = await reader.begin_run(
            run_id="run-0000000011ve", pipeline="hello-world", pipeline_path=str(pipeline),
            source_hash=reader.run(finished).source_hash, input="trio", options={},
            model="dry-run", resume={"pipeline": str(pipeline), "model": "dry-run"},
        )  # fmt: skip
        assert live.epoch == 1

    refused = await _agentflow("resume", finished, *common, cwd=tmp_path, env=env)
    assert refused.returncode == 2
    assert f"run {finished} finished (succeeded)" in refused.stderr.decode()

    owned = await _agentflow("resume", "run-0000000011ve", *common, cwd=tmp_path, env=env)
    assert owned.returncode == 2
    assert "is running: its owner" in owned.stderr.decode() and "--force" in owned.stderr.decode()

    pipeline.write_text(pipeline.read_text() + "\n# edited after the run\n")
    changed = await _agentflow(
        "resume", "run-0000000011ve", "--force", *common, cwd=tmp_path, env=env
    )
    assert changed.returncode == 2
    assert "ran another version of pipeline 'hello-world'" in changed.stderr.decode()
    assert "--allow-changed" in changed.stderr.decode()
    for result in (refused, owned, changed):
        assert b"Traceback" not in result.stderr
    with RunStore.open(str(store)) as reader:  # nothing was taken over
        assert reader.run("run-0000000011ve").epoch == 1


async def test_a_sigkilled_1000_item_fan_out_resumes_to_the_uninterrupted_result(
    tmp_path: Path,
) -> None:
    (tmp_path / "prompts").mkdir()
    for prompt in (ROOT / "pipelines" / "prompts").iterdir():
        (tmp_path / "prompts" / prompt.name).write_text(prompt.read_text())
    pipeline = tmp_path / "fanout.yaml"
    pipeline.write_text((ROOT / "pipelines" / "research_fanout.yaml").read_text())
    store = tmp_path / "store.db"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    run = ["run", str(pipeline), "topic", "--model", "dry-run", "--items", "1000"]
    common = ["--store", str(store), "--no-ui", "--quiet", "--concurrency", "64"]
    whole = await _agentflow(*run, "--jsonl", str(tmp_path / "whole.jsonl"), *common,
                             cwd=tmp_path, env=env)  # fmt: skip
    assert whole.returncode == 0, whole.stderr.decode()
    whole_lines = len((tmp_path / "whole.jsonl").read_text().splitlines())
    log = tmp_path / "killed.jsonl"
    with trio.fail_after(SAFETY):
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                functools.partial(
                    trio.run_process, [AGENTFLOW, *run, "--jsonl", str(log), *common],
                    cwd=tmp_path, env=env, check=False,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
            # SIGKILL it about halfway: the export follows the store's commits.
            while not log.exists() or log.read_bytes().count(b"\n") < whole_lines // 2:
                await trio.sleep(0.02)
            process.send_signal(signal.SIGKILL)
    with RunStore.open(str(store)) as reader:
        run_id = reader.runs(limit=1)[0].id
        committed = set(reader.memo(run_id).model_calls)
        reference = reader.runs(limit=2)[1]
    assert len(committed) > 500  # the kill came midway, with much of the work committed
    resumed = await _agentflow("resume", run_id, *common[:4], cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr.decode() + resumed.stdout.decode()
    assert verify_log(log).ok, verify_log(log).render()
    responses: Counter[tuple[Any, ...]] = Counter()
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "model_response":
            key = (event["agent"], event["item"], event["attempt"], event["payload"]["turn"])
            responses[key] += 1
    assert all(responses[key] == 1 for key in committed)  # no committed call made again
    with RunStore.open(str(store)) as reader:
        assert log.read_text().splitlines() == list(reader.lines(run_id))
        record = reader.run(run_id)
    outcome = (record.status, record.final_state, record.items_passed, record.items_failed)
    assert outcome == (
        reference.status,
        reference.final_state,
        reference.items_passed,
        reference.items_failed,
    )
    assert record.output == reference.output
