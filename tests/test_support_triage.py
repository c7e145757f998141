"""pipelines/support_triage.yaml end to end: typed input, a typed classifier, a Python
router (`handler:`), a responder whose prompt reads `outputs.classifier.*`.

Through the CLI (replay of its cassette, the dry-run model, a wrong `--input`) and
through the generated module on the real Anthropic SDK against the fake API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agentflow.runtime.engine.runner import RunInputError, RunOptions
from agentflow.runtime.events.event import EventKind
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.conversation import conversation_problems
from agentflow.runtime.sinks.memory import MemorySink
from tests.fake_anthropic.server import (
    RecordedRequest,
    Scripted,
    open_fake_anthropic,
    text_reply,
    tool_reply,
)

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "support_triage.yaml"
CASSETTE = ROOT / "pipelines" / "support_triage.cassette.jsonl"
TICKET = {"ticket": "I was charged twice for my March invoice.", "tier": "pro", "customer": "Dana"}
KEY = "sk-ant-api03-SUPPORT-TRIAGE-FAKE-KEY"


def agentflow(
    *args: str, cwd: Path, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess; by default the router's `import support_triage` finds
    the in-memory module the run executes (no `generated/` on the path)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "PYTHONPATH")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "agentflow.runtime.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def completed_outputs(log: Path) -> dict[str, Any]:
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return {
        e["agent"]: e["payload"].get("output", e["payload"]["text"])
        for e in events
        if e["kind"] == "agent_completed"
    }


def test_the_cassette_replays_through_the_cli_and_the_log_verifies(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    done = agentflow(
        "run", str(PIPELINE), "--no-ui", "--jsonl", str(log), "--input", json.dumps(TICKET),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCEEDED in state 'complete'" in done.stdout
    recorded = json.loads(CASSETTE.read_text().splitlines()[0])["payload"]["structured"]
    outputs = completed_outputs(log)
    assert outputs["classifier"] == recorded  # in full, typed
    # The router is Python: billing -> billing_team; pro = 24 h, halved for urgency 4.
    assert outputs["router"] == {"queue": "billing_team", "sla_hours": 12, "escalate": False}
    assert outputs["responder"].startswith("Hi Dana,")
    verified = agentflow("verify", str(log), "--pipeline", str(PIPELINE), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_dry_run_model_walks_it_with_valid_typed_outputs(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    done = agentflow(
        "run", str(PIPELINE), "--model", "dry-run", "--no-ui", "--jsonl", str(log),
        "--input", json.dumps(TICKET), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = completed_outputs(log)
    assert outputs["classifier"]["category"] in ("billing", "bug", "question")
    assert set(outputs["router"]) == {"queue", "sla_hours", "escalate"}


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"ticket": "x", "tier": "gold"}, "field 'tier'"),
        ({"tier": "pro"}, "field 'ticket': Field required"),
        ("free text", "must be a JSON object"),
    ],
)
def test_a_wrong_input_exits_2_before_the_log_is_touched(
    tmp_path: Path, given: Any, named: str
) -> None:
    log = tmp_path / "run.jsonl"
    text = given if isinstance(given, str) else json.dumps(given)
    done = agentflow(
        "run", str(PIPELINE), "--no-ui", "--jsonl", str(log), "--input", text, cwd=tmp_path
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert not log.exists()


@pytest.fixture
def support_triage(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(ROOT / "generated"))
    import support_triage

    yield support_triage


class TriageScript:
    """The classifier gets `classification`; the responder a fixed reply."""

    def __init__(self, classification: dict[str, Any]) -> None:
        self.classification = classification

    def __call__(self, request: RecordedRequest) -> Scripted:
        if "tool_choice" in request.body:
            return tool_reply("submit_output", self.classification)
        return text_reply("Hi, we are on it.")


async def run_on_fake_api(
    module: ModuleType, ticket: dict[str, Any], classification: dict[str, Any]
) -> tuple[Any, MemorySink, list[RecordedRequest]]:
    sink = MemorySink()
    async with open_fake_anthropic(TriageScript(classification)) as fake:
        model = AnthropicModel(api_key=KEY, base_url=fake.base_url, backoff_base_s=0.01)
        async with model:
            result = await module.run(
                ticket, model=model, sinks=[sink], options=RunOptions(backoff_scale=0.0)
            )
    for request in fake.requests:
        assert conversation_problems(request.body["messages"]) == []
    return result, sink, fake.requests


async def test_the_responder_prompt_reads_the_classifier_and_router_outputs(
    support_triage: ModuleType,
) -> None:
    classification = {
        "category": "bug",
        "urgency": 5,
        "summary": "The editor crashes on save.",
        "tags": ["crash"],
    }
    ticket = {"ticket": "It crashes!", "tier": "enterprise"}
    result, sink, requests = await run_on_fake_api(support_triage, ticket, classification)

    assert result.ok, result.reason
    classifier_request, responder_request = requests
    assert classifier_request.body["tool_choice"] == {"type": "tool", "name": "submit_output"}
    schema = classifier_request.body["tools"][0]["input_schema"]
    assert schema["properties"]["category"]["enum"] == ["billing", "bug", "question"]
    assert "on the enterprise plan" in classifier_request.body["system"]
    system = responder_request.body["system"]
    assert "classified as a bug issue with\nurgency 5 of 5: The editor crashes on save." in system
    # enterprise = 4 h, halved for urgency 5; an urgent enterprise bug is escalated.
    assert "engineering queue" in system and "within\n2 hours" in system
    assert "a senior engineer has been paged" in system.replace("\n", " ")
    router = next(
        e.payload["output"]
        for e in sink.events
        if e.kind is EventKind.AGENT_COMPLETED and e.agent == "router"
    )
    assert router == {"queue": "engineering", "sla_hours": 2, "escalate": True}


async def test_the_generated_run_validates_its_input_before_any_event(
    support_triage: ModuleType,
) -> None:
    sink = MemorySink()
    with pytest.raises(RunInputError, match="field 'tier'"):
        await support_triage.run({"ticket": "x", "tier": "vip"}, sinks=[sink])
    assert sink.events == []
    typed = support_triage.PipelineInput(ticket="x", tier="free")
    assert support_triage.INPUT_MODEL is type(typed)


def test_the_readme_command_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (command,) = [
        block.strip()
        for block in re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)
        if "support_triage" in block
    ]
    for name in ("pipelines", "generated"):
        shutil.copytree(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", f"{command} --no-ui"],  # as written, the UI would wait for Ctrl-C
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCEEDED in state 'complete'" in done.stdout


def test_the_handler_may_import_the_committed_module_from_the_path_instead(
    tmp_path: Path,
) -> None:
    # With generated/ on PYTHONPATH the router imports the committed module (a real
    # module of that name is never shadowed); its outputs are re-validated into the
    # run's own classes, so the run is the same.
    log = tmp_path / "run.jsonl"
    done = agentflow(
        "run", str(PIPELINE), "--no-ui", "--jsonl", str(log), "--input", json.dumps(TICKET),
        cwd=tmp_path, pythonpath=ROOT / "generated",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert completed_outputs(log)["router"] == {
        "queue": "billing_team",
        "sla_hours": 12,
        "escalate": False,
    }
