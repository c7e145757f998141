"""The control-flow examples (issue 10 item 8) run offline as the README says, and do what
they show: map_reduce reduces every aspect, plan_execute loops until `done`, supervisor
routes among its workers (one a child pipeline) until `end`.

Each README command runs as written in a copy of pipelines/ and generated/, with the
venv's bin first on PATH and no API key (offline replay of the example's cassette); the
behaviour is read from the run's audit log. The prompts each agent saw are checked
in-process through the generated module, with the replay model wrapped to keep the
requests.
"""

from __future__ import annotations

import importlib
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

from agentflow.runtime import EventKind
from agentflow.runtime.models.base import ModelRequest, ModelTurn, TextSink
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.models.replay import ReplayModel
from agentflow.runtime.sinks.memory import MemorySink

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def control_flow_commands() -> dict[str, str]:
    """The README's "Control flow" commands, by pipeline file stem."""
    section = README.split("## Control flow", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)[0]
    commands = [line.strip() for line in block.splitlines() if line.strip()]
    return {name: c for c in commands for name in re.findall(r"pipelines/(\w+)\.yaml", c)}


COMMANDS = control_flow_commands()


def run_readme_command(name: str, tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """Run the README's command for `name` in a copy of the repository's pipelines and
    generated modules; return its output and the events of its audit log."""
    for directory in ("pipelines", "generated"):
        shutil.copytree(ROOT / directory, tmp_path / directory)
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    done = subprocess.run(
        ["bash", "-c", COMMANDS[name]], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert f"OFFLINE REPLAY of pipelines/{name}.cassette.jsonl" in output
    (log,) = re.findall(r"audit log -> (\S+) \(\d+ events, sealed\)", output)
    verified = subprocess.run(
        [str(BIN / "agentflow"), "verify", log, "--pipeline", f"pipelines/{name}.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    events = [json.loads(line) for line in (tmp_path / log).read_text().splitlines()]
    return output, events


def kinds(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def started(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["agent"], e["item"], e["attempt"]) for e in kinds(events, "agent_started")]


def output_of(events: list[dict[str, Any]], agent: str, item: str, attempt: int) -> Any:
    (done,) = (
        e
        for e in kinds(events, "agent_completed")
        if (e["agent"], e["item"], e["attempt"]) == (agent, item, attempt)
    )
    return done["payload"]["output"]


def cassette_answer(name: str, agent: str, item: str, attempt: int) -> Any:
    for line in (ROOT / "pipelines" / f"{name}.cassette.jsonl").read_text().splitlines():
        record = json.loads(line)
        if (record["agent"], record["item"], record["attempt"]) == (agent, item, attempt):
            return record["payload"]["structured"] or record["payload"]["text"]
    raise KeyError((agent, item, attempt))


class PromptKeeper:
    """The replay model, keeping each request's rendered prompt (its system text) by
    (agent, item, attempt)."""

    name = "replay"

    def __init__(self, cassette: Path) -> None:
        self.replay = ReplayModel(cassette)
        self.prompts: dict[tuple[str, str, int], str] = {}

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        self.prompts[(request.agent, request.item, request.attempt)] = request.system
        return await self.replay.complete(request, on_text)


@pytest.fixture
def generated() -> Iterator[None]:
    sys.path.insert(0, str(ROOT / "generated"))
    try:
        yield
    finally:
        sys.path.remove(str(ROOT / "generated"))


def generated_module(name: str) -> ModuleType:
    return importlib.import_module(name)


# --- map_reduce ----------------------------------------------------------------------


def test_map_reduce_runs_one_analyst_per_aspect_then_reduces_once(tmp_path: Path) -> None:
    output, events = run_readme_command("map_reduce", tmp_path)
    assert "SUCCEEDED in state 'complete' (4 completed;" in output

    aspects = cassette_answer("map_reduce", "planner", "main", 1)["aspects"]
    created = kinds(events, "item_created")
    assert [e["item"] for e in created] == ["item-1", "item-2", "item-3"]
    assert [e["payload"]["payload"] for e in created] == aspects  # objects, as typed
    assert sorted(started(events)) == sorted(
        [("planner", "main", 1), ("synthesiser", "main", 1)]
        + [("analyst", f"item-{k}", 1) for k in (1, 2, 3)]
    )
    # The reduce runs on the parent item once, after every child item finished.
    seqs = {(e["kind"], e["agent"], e["item"]): e["seq"] for e in events}
    reduce_seq = seqs[("agent_started", "synthesiser", "main")]
    assert all(seqs[("item_finished", None, f"item-{k}")] < reduce_seq for k in (1, 2, 3))
    assert kinds(events, "agent_started")[-1]["payload"] == {"upstream": "planner"}
    assert output_of(events, "synthesiser", "main", 1) == cassette_answer(
        "map_reduce", "synthesiser", "main", 1
    )
    finished = kinds(events, "item_finished")
    assert finished[-1]["item"] == "main" and finished[-1]["payload"]["status"] == "completed"


async def test_map_reduce_synthesiser_reads_every_child_in_item_order(generated: None) -> None:
    module = generated_module("map_reduce")
    model = PromptKeeper(ROOT / "pipelines" / "map_reduce.cassette.jsonl")
    result = await module.run("Should a five-person team split its monolith?", model=model)
    assert result.status == "succeeded"

    prompt = model.prompts[("synthesiser", "main", 1)]
    findings = [cassette_answer("map_reduce", "analyst", f"item-{k}", 1) for k in (1, 2, 3)]
    positions = [
        prompt.index(f"- {f['finding']} (confidence: {f['confidence']})") for f in findings
    ]
    assert positions == sorted(positions)  # children in item order
    for k, aspect in enumerate(cassette_answer("map_reduce", "planner", "main", 1)["aspects"]):
        assert aspect["question"] in model.prompts[("analyst", f"item-{k + 1}", 1)]
    main = next(i for i in result.items if i.id == "main")
    assert json.loads(main.output) == cassette_answer("map_reduce", "synthesiser", "main", 1)


# --- plan_execute --------------------------------------------------------------------


def test_plan_execute_loops_twice_then_routes_done_to_end(tmp_path: Path) -> None:
    output, events = run_readme_command("plan_execute", tmp_path)
    assert "SUCCEEDED in state 'complete' (1 completed;" in output

    assert started(events) == [
        ("planner", "main", 1),
        ("executor", "main", 1), ("replanner", "main", 1),
        ("executor", "main", 2), ("replanner", "main", 2),
        ("executor", "main", 3), ("replanner", "main", 3),
    ]  # fmt: skip
    routes = [(e["attempt"], e["payload"]) for e in kinds(events, "route_chosen")]
    loop = {"on": "decision", "value": "execute", "case": "execute", "to": "executor"}
    assert routes == [
        (1, {**loop, "iteration": 1, "max_iterations": 4}),
        (2, {**loop, "iteration": 2, "max_iterations": 4}),
        (3, {"on": "decision", "value": "done", "case": "done", "to": "end"}),
    ]
    # Each executor after the first is dispatched by the replanner's route.
    assert [e["payload"]["upstream"] for e in kinds(events, "agent_started")][1::2] == [
        "planner", "replanner", "replanner",
    ]  # fmt: skip
    finished = kinds(events, "item_finished")
    assert [(e["item"], e["payload"]["status"]) for e in finished] == [("main", "completed")]


async def test_plan_execute_history_grows_per_iteration_and_end_keeps_the_answer(
    generated: None,
) -> None:
    module = generated_module("plan_execute")
    model = PromptKeeper(ROOT / "pipelines" / "plan_execute.cassette.jsonl")
    result = await module.run("Upgrade Postgres 12 to 16", model=model)
    assert result.status == "succeeded"

    steps = [cassette_answer("plan_execute", "executor", "main", k) for k in (1, 2, 3)]
    for attempt in (1, 2, 3):  # executor k sees the k-1 steps done before it, and its step
        prompt = model.prompts[("executor", "main", attempt)]
        done_before = [s for s in steps[: attempt - 1] if f"- {s['step']}: {s['result']}" in prompt]
        assert len(done_before) == attempt - 1
        assert steps[attempt - 1]["step"] in prompt.split("report its result")[1]
    replanner_three = model.prompts[("replanner", "main", 3)]
    assert all(f"- {s['step']}: {s['result']}" in replanner_three for s in steps)
    # `done` -> end: the item's output is the replanner's last output.
    (main,) = result.items
    assert json.loads(main.output) == cassette_answer("plan_execute", "replanner", "main", 3)
    assert main.attempts == {"planner": 1, "executor": 3, "replanner": 3}


async def test_plan_execute_loop_is_bounded_at_four_iterations_then_ends(generated: None) -> None:
    """A replanner that never says `done` (dry run: always `execute`): the 5th choice of
    the case is past `max_iterations: 4`, so `on_exhausted: end` ends the item, completed,
    with the replanner's latest output."""
    module = generated_module("plan_execute")
    sink = MemorySink()
    model = DryRunModel(routes={"replanner": ["execute"]})
    result = await module.run("a task that never ends", model=model, sinks=[sink])
    assert result.status == "succeeded"

    routes = [e.payload for e in sink.events if e.kind == EventKind.ROUTE_CHOSEN]
    assert [(r["iteration"], r["to"], r.get("exhausted")) for r in routes] == [
        (1, "executor", None), (2, "executor", None), (3, "executor", None),
        (4, "executor", None), (5, "end", True),
    ]  # fmt: skip
    (main,) = result.items
    assert main.status == "completed"
    assert main.attempts == {"planner": 1, "executor": 5, "replanner": 5}
    last = [e for e in sink.events if e.kind == EventKind.AGENT_COMPLETED][-1]
    assert last.agent == "replanner" and json.loads(main.output) == last.payload["output"]


# --- supervisor ----------------------------------------------------------------------


def test_supervisor_routes_research_then_write_then_finish(tmp_path: Path) -> None:
    output, events = run_readme_command("supervisor", tmp_path)
    assert "SUCCEEDED in state 'complete'" in output

    routes = [
        (e["attempt"], e["payload"]["case"], e["payload"]["to"])
        for e in kinds(events, "route_chosen")
    ]
    assert routes == [
        (1, "research", "research_team"),
        (2, "write", "writer"),
        (3, "finish", "end"),
    ]
    order = [agent for agent, _, _ in started(events)]
    assert order == [
        "supervisor", "research_team", "research_team.researcher", "research_team.editor",
        "supervisor", "writer", "supervisor",
    ]  # fmt: skip
    assert len({e["run_id"] for e in events}) == 1  # the child ran inside the parent's run
    child_items = {e["item"] for e in events if str(e["agent"]).startswith("research_team.")}
    assert child_items and "main" not in child_items  # namespaced under the parent's item
    # The team's result (its editor's output) is the research_team agent's output (text).
    completed = {e["agent"]: e["payload"]["text"] for e in kinds(events, "agent_completed")}
    assert completed["research_team"] == completed["research_team.editor"]
    finished = kinds(events, "item_finished")
    assert [(e["item"], e["payload"]["status"]) for e in finished] == [
        ("main/research_team/1", "completed"), ("main", "completed"),
    ]  # fmt: skip


async def test_supervisor_workers_see_the_team_report_and_the_end_keeps_its_note(
    generated: None,
) -> None:
    module = generated_module("supervisor")
    model = PromptKeeper(ROOT / "pipelines" / "supervisor.cassette.jsonl")
    result = await module.run("Write a brief on heat pumps", model=model)
    assert result.status == "succeeded"

    item = "main/research_team/1"
    first = cassette_answer("supervisor", "supervisor", "main", 1)
    assert first["instruction"] in model.prompts[("research_team.researcher", item, 1)]
    facts = cassette_answer("supervisor", "research_team.researcher", item, 1)["facts"]
    assert all(f"- {fact}" in model.prompts[("research_team.editor", item, 1)] for fact in facts)
    # history.research_team holds the team's result: the editor's output, as JSON text.
    report = json.dumps(
        cassette_answer("supervisor", "research_team.editor", item, 1), ensure_ascii=False
    )
    assert f"Research report 1: {report}" in model.prompts[("writer", "main", 1)]
    assert f"Research report 1: {report}" in model.prompts[("supervisor", "main", 3)]
    draft = cassette_answer("supervisor", "writer", "main", 1)
    assert f"Draft 1:\n{draft}" in model.prompts[("supervisor", "main", 3)]
    main = next(i for i in result.items if i.id == "main")
    assert json.loads(main.output) == cassette_answer("supervisor", "supervisor", "main", 3)


def test_supervisor_run_log_replays_as_its_own_cassette(tmp_path: Path) -> None:
    """The child's model requests name its agents as the log does (`research_team.editor`),
    so `--replay RUN.jsonl` of a run with a sub-pipeline takes the same path."""
    output, _ = run_readme_command("supervisor", tmp_path)
    (log,) = re.findall(r"audit log -> (\S+) \(\d+ events, sealed\)", output)
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    replayed = subprocess.run(
        [str(BIN / "agentflow"), "run", "pipelines/supervisor.yaml", "--replay", log,
         "--no-ui", "--jsonl", "replayed.jsonl"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "departs" not in replayed.stdout + replayed.stderr
