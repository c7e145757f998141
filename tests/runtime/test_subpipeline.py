"""Sub-pipelines at run time (DSL v2 section 6): compiled from YAML, run by the real runtime.

The child runs inside the parent's run: one run id, one audit log whose child events
carry namespaced agent ids (`team.writer`), child item ids under the parent's item
(`main/team/1`) and the payload key `subpipeline`; one budget; the parent's cancel
scope. Its state machine is its own, and `agentflow verify` accepts such logs.
"""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from agentflow.runtime import AgentOutput, RunOptions
from agentflow.runtime.cli.compiled_loader import compile_and_import, load_for_inspection
from agentflow.runtime.cli.main import main as agentflow_main
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.engine.runner import run_pipeline
from agentflow.runtime.errors import PipelineDefinitionError
from agentflow.runtime.events.event import PipelineEvent, seal_event
from agentflow.runtime.events.verify import verify_log, verify_run_log
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.console import ConsoleSink
from tests.fake_anthropic.server import open_fake_anthropic, text_reply

KEY = "sk-ant-api03-SUBPIPELINE-FAKE-KEY-7f3a"

CHILD = """\
name: {name}
input:
  topic: str
agents:
  - id: researcher
    instructions: "Research {{{{ input.topic }}}}."
    dispatch: {{strategy: sequential, target: writer}}
  - id: writer
    instructions: "Write about {{{{ upstream }}}}."
"""

PARENT = """\
name: {name}
input:
  topic: str
agents:
  - id: team
    pipeline: kids/child.yaml
    dispatch: {{strategy: sequential, target: editor}}
  - id: editor
    instructions: "Edit {{{{ upstream }}}}."
"""


def write(tmp_path: Path, parent: str, child: str, name: str) -> Path:
    (tmp_path / "kids").mkdir(exist_ok=True)
    (tmp_path / "kids" / "child.yaml").write_text(
        textwrap.dedent(child).format(name=f"{name}-child")
    )
    path = tmp_path / "parent.yaml"
    path.write_text(textwrap.dedent(parent).format(name=name))
    return path


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


async def run_module(path: Path, run_input: object, log: Path, **kw: Any) -> Any:
    module = compile_and_import(path).module
    options = kw.pop("options", RunOptions(audit_log=log, backoff_scale=0.0))
    return await module.run(run_input, options=options, **kw)


async def test_a_child_runs_in_the_parents_run_with_namespaced_ids(tmp_path: Path) -> None:
    path = write(tmp_path, PARENT, CHILD, "sp-basic")
    log = tmp_path / "run.jsonl"
    result = await run_module(path, {"topic": "bees"}, log, model=DryRunModel())
    assert result.status == "succeeded", result.reason
    assert [item.id for item in result.items] == ["main"]  # the child's items are its own
    lines = events(log)
    assert {line["run_id"] for line in lines} == {result.run_id}
    child = [(e["kind"], e["agent"], e["item"]) for e in lines if "subpipeline" in e["payload"]]
    assert [c for c in child if c[0] != "model_text"] == [
        ("agent_started", "team.researcher", "main/team/1"),
        ("model_request", "team.researcher", "main/team/1"),
        ("model_response", "team.researcher", "main/team/1"),
        ("agent_completed", "team.researcher", "main/team/1"),
        ("agent_started", "team.writer", "main/team/1"),
        ("model_request", "team.writer", "main/team/1"),
        ("model_response", "team.writer", "main/team/1"),
        ("agent_completed", "team.writer", "main/team/1"),
        ("item_finished", None, "main/team/1"),
        ("transition", None, "main/team/1"),
    ]
    assert {e["payload"]["subpipeline"] for e in lines if "subpipeline" in e["payload"]} == {"team"}
    # the child took the run input (its `input:` validated it) and its result is the
    # writer's text, which the editor got as its upstream
    started = next(e for e in lines if e["agent"] == "team.researcher")
    assert started["kind"] == "agent_started"
    team_done = next(e for e in lines if e["kind"] == "agent_completed" and e["agent"] == "team")
    assert team_done["payload"]["text"].startswith("[dry-run] team.writer on main/team/1")
    editor_request = next(
        e for e in lines if e["kind"] == "model_request" and e["agent"] == "editor"
    )
    assert editor_request["item"] == "main"
    report = verify_run_log(log, load_for_inspection(path).spec)
    assert report.ok, report.render()


async def test_a_failing_child_fails_the_parent_agent_and_aborts_its_item(
    tmp_path: Path,
) -> None:
    child = CHILD.replace(
        '    instructions: "Write about {{{{ upstream }}}}."\n',
        '    handler: "tests.runtime.test_subpipeline:failing_writer"\n',
    )
    path = write(tmp_path, PARENT, child, "sp-failing")
    log = tmp_path / "run.jsonl"
    result = await run_module(path, {"topic": "bees"}, log, model=DryRunModel())
    assert result.status == "failed"
    (main,) = result.items
    assert main.status == "aborted"
    assert main.reason == (
        "agent 'team' failed: SubpipelineFailed: sub-pipeline 'sp-failing-child' failed: 1 "
        "item(s) failed or were aborted (first: main/team/1: agent 'writer' failed: "
        "ValueError: no words left)"
    )
    lines = events(log)
    assert not any(e["agent"] == "editor" for e in lines)  # the parent's item stopped
    failed = [(e["agent"], e["item"]) for e in lines if e["kind"] == "agent_failed"]
    assert failed == [("team.writer", "main/team/1"), ("team", "main")]
    assert verify_run_log(log, load_for_inspection(path).spec).ok


async def failing_writer(ctx: AgentContext) -> AgentOutput:
    raise ValueError("no words left")


async def test_the_budget_is_one_for_parent_and_child(tmp_path: Path) -> None:
    """Each fake API reply costs 19 tokens: the parent's planner spends 19, the child's
    first agent 19 more, which goes over max_total_tokens=30 inside the child: the
    whole run ends (cancelled, the budget's reason), the editor never runs."""
    parent = PARENT.replace(
        "agents:\n",
        'agents:\n  - id: planner\n    instructions: "Plan {{{{ input.topic }}}}."\n'
        "    output: {{topic: str}}\n    dispatch: {{strategy: sequential, target: team}}\n",
    )
    path = write(tmp_path, parent, CHILD, "sp-budget")
    log = tmp_path / "run.jsonl"
    replies = [text_reply('{"topic": "bees"}'), text_reply("notes"), text_reply("draft")]
    options = RunOptions(audit_log=log, max_total_tokens=30, backoff_scale=0.0)
    async with open_fake_anthropic(replies) as fake:
        model = AnthropicModel(api_key=KEY, base_url=fake.base_url)
        async with model:
            result = await run_module(path, {"topic": "bees"}, log, model=model, options=options)
    assert result.status == "cancelled"
    assert result.reason == "budget exceeded: max_total_tokens=30, spent 38"
    assert len(fake.requests) == 2
    lines = events(log)
    exceeded = [e for e in lines if e["kind"] == "budget_exceeded"]
    assert len(exceeded) == 1 and "subpipeline" not in exceeded[0]["payload"]
    assert not any(e["agent"] in ("team.writer", "editor") for e in lines)
    assert result.usage.total_tokens == 38
    assert KEY not in log.read_text()
    report = verify_run_log(log, load_for_inspection(path).spec)
    assert report.ok, report.render()


CHILD_WAITING: list[trio.Event] = []
CHILD_CANCELLED: list[bool] = []


async def waiting_writer(ctx: AgentContext) -> AgentOutput:
    CHILD_WAITING[0].set()
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        CHILD_CANCELLED.append(True)
        raise
    raise AssertionError("unreachable")  # pragma: no cover


async def test_cancelling_the_parent_cancels_the_child(tmp_path: Path) -> None:
    child = CHILD.replace(
        '    instructions: "Write about {{{{ upstream }}}}."\n',
        '    handler: "tests.runtime.test_subpipeline:waiting_writer"\n',
    )
    path = write(tmp_path, PARENT, child, "sp-cancel")
    log = tmp_path / "run.jsonl"
    CHILD_WAITING[:] = [trio.Event()]
    CHILD_CANCELLED.clear()
    with trio.fail_after(30):  # a safety timeout: a hang fails the test
        async with trio.open_nursery() as nursery:

            async def run_it() -> None:
                with pytest.raises(trio.Cancelled):
                    await run_module(path, {"topic": "bees"}, log, model=DryRunModel())

            nursery.start_soon(run_it)
            await CHILD_WAITING[0].wait()
            nursery.cancel_scope.cancel()
    assert CHILD_CANCELLED == [True]
    kinds = [e["kind"] for e in events(log)]
    assert kinds[-3:] == ["run_cancelled", "run_finished", "log_sealed"]
    assert verify_log(log).ok


FAN_OUT_PARENT = """\
name: {name}
agents:
  - id: planner
    handler: "tests.runtime.test_subpipeline:two_topics"
    output:
      topics:
        type: list
        items: {{topic: str}}
    dispatch: {{strategy: parallel_fan_out, target: team, items: topics}}
  - id: team
    pipeline: kids/child.yaml
"""

CHILD_WITH_STATES = """\
name: {name}
input:
  topic: str
state_machine:
  initial: drafting
  terminal: [published, dropped]
  states: [{{id: drafting}}, {{id: published}}, {{id: dropped}}]
agents:
  - id: writer
    instructions: "Write about {{{{ input.topic }}}}."
    transitions: {{on_complete: published, on_abort: dropped}}
"""


async def two_topics(ctx: AgentContext) -> Any:
    from sp_fan_out import PlannerOutput  # the generated module, under its natural name

    return PlannerOutput.model_validate({"topics": [{"topic": "bees"}, {"topic": "ants"}]})


async def test_children_of_a_fan_out_get_their_own_ids_and_state_machines(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, FAN_OUT_PARENT, CHILD_WITH_STATES, "sp-fan-out")
    log = tmp_path / "run.jsonl"
    result = await run_module(path, None, log, model=DryRunModel())
    assert result.status == "succeeded", result.reason
    assert [item.id for item in result.items] == ["main", "item-1", "item-2"]
    lines = events(log)
    child_items = sorted({e["item"] for e in lines if "subpipeline" in e["payload"]})
    assert child_items == ["item-1/team/1", "item-2/team/1"]
    # each child invocation has its own machine: drafting -> published (deferred, then
    # settled), and the parent's default machine is untouched by them
    settled = [
        (e["item"], e["payload"]["from"], e["payload"]["to"])
        for e in lines
        if e["kind"] == "transition" and "subpipeline" in e["payload"]
    ]
    assert sorted(settled) == [
        ("item-1/team/1", "drafting", "published"),
        ("item-2/team/1", "drafting", "published"),
    ]
    parent_moves = [
        (e["payload"]["from"], e["payload"]["to"])
        for e in lines
        if e["kind"] == "transition" and "subpipeline" not in e["payload"]
    ]
    assert parent_moves == [("running", "complete")]
    # the item payload was the child's run input
    writer_requests = [e for e in lines if e["kind"] == "model_request"]
    assert len(writer_requests) == 2
    report = verify_run_log(log, load_for_inspection(path).spec)
    assert report.ok, report.render()


async def test_verify_rejects_a_child_transition_that_does_not_continue(tmp_path: Path) -> None:
    path = write(tmp_path, FAN_OUT_PARENT, CHILD_WITH_STATES, "sp-fan-out")
    log = tmp_path / "run.jsonl"
    await run_module(path, None, log, model=DryRunModel())
    lines = log.read_text().splitlines()
    # a second, forged settling transition of item-1's child, from a state it never left
    # for: re-chain the log so only the sub-pipeline check can object
    parsed = [PipelineEvent.model_validate_json(line) for line in lines]
    at = next(
        i for i, e in enumerate(parsed) if e.kind == "transition" and e.item == "item-1/team/1"
    )
    forged = parsed[at].model_copy(update={"payload": {**parsed[at].payload, "from": "drafting"}})
    events_out = [*parsed[: at + 1], forged, *parsed[at + 1 : -1]]
    rebuilt, previous = [], ""
    for seq, event in enumerate(events_out):
        line = event.model_copy(update={"seq": seq, "prev_hash": previous}).model_dump_json()
        rebuilt.append(line)
        previous = hashlib.sha256(line.encode()).hexdigest()
    last = PipelineEvent.model_validate_json(rebuilt[-1])
    seal = seal_event(
        last.run_id, len(rebuilt), last.ts, last.pipeline_hash, previous, len(rebuilt)
    )
    rebuilt.append(seal.model_dump_json())
    log.write_text("\n".join(rebuilt) + "\n")
    report = verify_run_log(log, load_for_inspection(path).spec)
    assert [str(p) for p in report.problems] == [
        f"line {at + 2}: sub-pipeline 'team' transition from 'drafting' but its previous "
        "transition left 'published'"
    ]


NESTED_MIDDLE = """\
name: {name}
input:
  topic: str
agents:
  - id: inner
    pipeline: deeper/leaf.yaml
"""

LEAF = """\
name: sp-nested-leaf
input:
  topic: str
agents:
  - id: leaf
    instructions: "Leaf {{ input.topic }}."
"""


async def test_nested_sub_pipelines_nest_their_namespaces(tmp_path: Path) -> None:
    (tmp_path / "kids" / "deeper").mkdir(parents=True)
    (tmp_path / "kids" / "deeper" / "leaf.yaml").write_text(LEAF)
    path = write(tmp_path, PARENT, NESTED_MIDDLE, "sp-nested")
    log = tmp_path / "run.jsonl"
    result = await run_module(path, {"topic": "bees"}, log, model=DryRunModel())
    assert result.status == "succeeded", result.reason
    leaf = [e for e in events(log) if e["agent"] == "team.inner.leaf"]
    assert leaf and {e["item"] for e in leaf} == {"main/team/1/inner/1"}
    assert {e["payload"]["subpipeline"] for e in leaf} == {"team.inner"}
    assert verify_run_log(log, load_for_inspection(path).spec).ok


QA_PARENT = """\
name: {name}
input:
  topic: str
agents:
  - id: team
    pipeline: kids/child.yaml
    dispatch: {{strategy: sequential, target: reviewer}}
  - id: reviewer
    instructions: "Review {{{{ upstream }}}}."
    retry: {{max_attempts: 2, backoff_ms: 0}}
    on_fail: {{action: feedback_and_retry, target: team}}
"""


async def test_a_retried_sub_pipeline_agent_runs_a_fresh_child(tmp_path: Path) -> None:
    path = write(tmp_path, QA_PARENT, CHILD, "sp-retry")
    log = tmp_path / "run.jsonl"
    result = await run_module(path, {"topic": "bees"}, log, model=DryRunModel(fail_first=1))
    assert result.status == "succeeded", result.reason
    finished = [
        e["item"] for e in events(log) if e["kind"] == "item_finished" and e["item"] != "main"
    ]
    assert finished == ["main/team/1", "main/team/2"]
    assert verify_run_log(log, load_for_inspection(path).spec).ok


async def test_agentflow_run_compiles_and_runs_the_child(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, PARENT, CHILD, "sp-cli")
    log = tmp_path / "run.jsonl"
    status = await trio.to_thread.run_sync(
        agentflow_main,
        [
            "run", str(path), "--input", '{"topic": "bees"}', "--model", "dry-run",
            "--no-ui", "--no-store", "--jsonl", str(log), "--quiet",
        ],
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert any(e["agent"] == "team.writer" for e in events(log))
    status = await trio.to_thread.run_sync(
        agentflow_main, ["verify", str(log), "--pipeline", str(path)]
    )
    assert status == 0, capsys.readouterr().out


async def test_handlers_none_names_the_sub_pipeline_agent(tmp_path: Path) -> None:
    """The child's code lives in the generated module: run_pipeline(handlers=None) cannot
    run it, and says so before the run starts instead of failing the agent."""
    path = write(tmp_path, PARENT, CHILD, "sp-no-handlers")
    compiled = compile_and_import(path).compiled
    with pytest.raises(PipelineDefinitionError) as caught:
        await run_pipeline(compiled, {"topic": "bees"}, handlers=None, model=DryRunModel())
    assert str(caught.value) == (
        "agent 'team' runs the sub-pipeline kids/child.yaml: pass the generated module's "
        "DefaultHandlers() (it imports the child's module), not handlers=None"
    )


async def test_the_console_shows_the_childs_agents_and_counts_only_the_runs_items(
    tmp_path: Path,
) -> None:
    """A child's item is not a fan-out item of the run: the console's progress counts
    only the run's items, and the child's agents on the main item's path are shown."""
    path = write(tmp_path, FAN_OUT_PARENT, CHILD_WITH_STATES, "sp-fan-out")
    stream = io.StringIO()
    console = ConsoleSink(stream, color=False)
    await run_module(path, None, tmp_path / "run.jsonl", model=DryRunModel(), sinks=[console])
    assert console.items_total == 2
    assert console.items_done["completed"] == 2
    path = write(tmp_path, PARENT, CHILD, "sp-basic")
    stream = io.StringIO()
    await run_module(
        path,
        {"topic": "bees"},
        tmp_path / "run2.jsonl",
        model=DryRunModel(),
        sinks=[ConsoleSink(stream, color=False)],
    )
    shown = stream.getvalue()
    assert "team.researcher #1 ▶ started" in shown
    assert "items" not in shown  # no fan-out progress line for the child's main item


HANDLER_CHILD = """\
name: {name}
agents:
  - id: writer
    handler: "tests.runtime.test_subpipeline:plain_writer"
"""


async def plain_writer(ctx: AgentContext) -> AgentOutput:
    return AgentOutput(text=f"wrote {ctx.input}")


async def test_a_child_of_handlers_needs_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model=None opens a live model only when some agent runs from its prompt; a
    sub-pipeline agent whose child has only handler agents is not one."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    parent = "name: {name}\nagents:\n  - id: team\n    pipeline: kids/child.yaml\n"
    path = write(tmp_path, parent, HANDLER_CHILD, "sp-no-model")
    result = await run_module(path, "bees", tmp_path / "run.jsonl")
    assert result.status == "succeeded", result.reason
    assert result.items[0].output == "wrote bees"


async def test_a_childs_model_retries_and_rate_limit_waits_are_in_the_log(tmp_path: Path) -> None:
    """A child agent's model call reports its retry (`model_error`) and its wait for the
    rate limits (`rate_limited`) under the child's namespaced agent, as a parent's does."""
    from agentflow.runtime.models.rate_limit import RateLimiter
    from tests.fake_anthropic.server import ErrorReply

    path = write(tmp_path, PARENT, CHILD, "sp-limits")
    log = tmp_path / "run.jsonl"
    replies = [
        ErrorReply(529, "overloaded_error", "fake anthropic: overloaded"),
        text_reply("notes"),
        text_reply("draft"),
        text_reply("edited"),
    ]
    # One request a 0.3 s period: each call after the first answered one waits for it.
    limiter = RateLimiter(max_requests_per_minute=1, period_s=0.3)
    async with open_fake_anthropic(replies) as fake:
        model = AnthropicModel(
            api_key=KEY,
            base_url=fake.base_url,
            rate_limiter=limiter,
            backoff_base_s=0.01,
            backoff_max_s=0.01,
        )
        async with model:
            result = await run_module(path, {"topic": "bees"}, log, model=model)
    assert result.status == "succeeded", result.reason
    lines = events(log)
    retried = [e for e in lines if e["kind"] == "model_error"]
    assert [(e["agent"], e["payload"]["retrying"]) for e in retried] == [("team.researcher", True)]
    waited = {e["agent"] for e in lines if e["kind"] == "rate_limited"}
    assert waited == {"team.writer", "editor"}  # the researcher went first (its 529 not counted)
    assert all(
        e["payload"]["limit"] in ("requests", "queue") for e in lines if e["kind"] == "rate_limited"
    )
    report = verify_run_log(log, load_for_inspection(path).spec)
    assert report.ok, report.render()
