"""Commit before proceed (DURABLE.md), on SQLite and PostgreSQL: the engine records every
finished invocation (`steps`), model turn (`model_calls`, with its request) and tool
result (`tool_calls`), each committed before anything goes on from it; a fan-out's
`item_created` events are committed before its children start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime.agents import AgentOutput
from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.context import AgentContext
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.store import RunStore
from tests.fake_anthropic.server import open_fake_anthropic, text_reply, tool_reply

from ..runtime.resume_harness import Scripted, start_run
from ..runtime.test_engine_fakes import compile_dict, fanout_spec, hello_spec, text, verdict
from ..runtime.test_engine_reduce import PlanOutput, map_reduce, writer_joke
from ..runtime.test_resume_model import KEY, KEYLINE, TOOLS, CountingTool


async def test_each_output_is_committed_before_the_next_agent_sees_it(
    store_url: str, tmp_path: Path
) -> None:
    run_id = "run-0000c0ffee01"
    with RunStore.open(store_url) as store:
        seen: list[set[tuple[str, str, int]]] = []

        def reviewer(ctx: AgentContext) -> AgentOutput:
            seen.append(set(store.memo(run_id).steps))  # what the store holds right now
            return verdict(ctx.attempt >= 2, "again")

        scripts = {
            "writer_agent": lambda ctx: text(f"draft {ctx.attempt}"),
            "reviewer_agent": reviewer,
        }
        result = await start_run(
            store, compile_dict(hello_spec()), Scripted(scripts), run_id, tmp_path / "r.jsonl"
        )
        assert result is not None and result.ok
        assert seen == [
            {("writer_agent", "main", 1)},
            {
                ("writer_agent", "main", 1),
                ("reviewer_agent", "main", 1),
                ("writer_agent", "main", 2),
            },
        ]
        steps = store.memo(run_id).steps
        assert steps[("writer_agent", "main", 2)]["text"] == "draft 2"
        assert steps[("reviewer_agent", "main", 1)]["passed"] is False
        assert steps[("reviewer_agent", "main", 1)]["issues"][0]["message"] == "again"


async def test_a_fan_outs_items_are_committed_before_its_children_start(
    store_url: str, tmp_path: Path
) -> None:
    run_id = "run-0000c0ffee02"
    with RunStore.open(store_url) as store:
        missing: list[str] = []

        def worker(ctx: AgentContext) -> AgentOutput:
            created = {
                json.loads(line)["item"] for line in store.lines(run_id, kinds=["item_created"])
            }
            if ctx.item.id not in created:
                missing.append(ctx.item.id)
            return text("done")

        scripts = {
            "orchestrator_agent": lambda ctx: AgentOutput(items=[f"t{n}" for n in range(40)]),
            "worker_agent": worker,
            "qa_agent": lambda ctx: verdict(True),
        }
        result = await start_run(
            store, compile_dict(fanout_spec(max_concurrency=8)), Scripted(scripts), run_id,
            tmp_path / "r.jsonl",
        )  # fmt: skip
        assert result is not None and result.ok
        assert missing == []
        assert len(store.memo(run_id).steps) == 1 + 40 * 2


async def test_a_model_turn_is_committed_before_its_tool_runs_and_the_tool_before_the_next_turn(
    store_url: str, tmp_path: Path
) -> None:
    run_id = "run-0000c0ffee03"
    path = tmp_path / "noted.yaml"
    path.write_text(TOOLS.format(keyline=KEYLINE))
    module = compile_and_import(path)

    with RunStore.open(store_url) as store:
        tool = CountingTool()
        turns_at_tool: list[set[Any]] = []
        original = tool.execute

        async def execute(input: dict[str, Any]) -> str:
            turns_at_tool.append(set(store.memo(run_id).model_calls))
            return await original(input)

        tool.execute = execute  # type: ignore[method-assign]
        tools_at_turn: list[int] = []

        def answer(request: Any) -> Any:
            tools_at_turn.append(len(store.memo(run_id).tool_calls))
            key = request.key
            if (key.agent, key.turn) == ("researcher", 1):
                return tool_reply("notes", {"name": "trio"})
            return text_reply(f"{key.agent} says hi")

        async with (
            open_fake_anthropic(answer) as fake,
            AnthropicModel(api_key=KEY, base_url=fake.base_url) as model,
        ):
            result = await start_run(
                store, module.compiled, module.default_handlers(), run_id,
                tmp_path / "r.jsonl", "trio", model=model, tools={"notes": tool},
            )  # fmt: skip
        assert result is not None and result.ok
        assert turns_at_tool == [{("researcher", "main", 1, 1)}]
        assert tools_at_turn == [0, 1, 1]  # researcher 1, researcher 2, writer 1
        memo = store.memo(run_id)
        first = memo.model_calls[("researcher", "main", 1, 1)]
        assert first.response["tool_calls"][0]["name"] == "notes"
        assert "Research trio" in first.request["system"]
        assert first.request["messages"][0]["role"] == "user"
        assert len(first.request_hash) == 64
        second = memo.model_calls[("researcher", "main", 1, 2)]
        assert second.request["messages"][-1]["content"][0]["type"] == "tool_result"
        assert list(memo.tool_calls) == [
            ("researcher", "main", 1, 1, first.response["tool_calls"][0]["id"])
        ]


async def test_a_run_without_a_store_has_no_memo(tmp_path: Path) -> None:
    """No store, nothing recorded and nothing awaited: the engine's memo is None."""
    from agentflow.runtime.engine.runner import RunOptions, run_pipeline

    memos: list[object] = []

    def writer(ctx: AgentContext) -> AgentOutput:
        assert ctx.services is not None
        memos.append(ctx.services.memo)
        return text("draft")

    scripts = {"writer_agent": writer, "reviewer_agent": lambda ctx: verdict(True)}
    with trio.fail_after(30):
        result = await run_pipeline(
            compile_dict(hello_spec()), "x", handlers=Scripted(scripts),
            options=RunOptions(backoff_scale=0),
        )  # fmt: skip
    assert result.ok and memos == [None]


async def test_every_childs_output_is_committed_before_the_reduce_reads_them(
    store_url: str, tmp_path: Path
) -> None:
    """A child's last output is dispatched nowhere, so it is submitted without waiting;
    the fan-out still waits for all of them before its reduce runs."""
    run_id = "run-0000c0ffee04"
    subjects = [f"s{n}" for n in range(30)]
    with RunStore.open(store_url) as store:
        at_reduce: list[set[tuple[str, str, int]]] = []

        def best(ctx: AgentContext) -> AgentOutput:
            at_reduce.append(set(store.memo(run_id).steps))
            return text("best")

        scripts = {
            "planner": lambda ctx: PlanOutput(subjects=subjects),
            "writer": writer_joke,
            "best": best,
            "final": lambda ctx: text("final"),
        }
        result = await start_run(
            store, map_reduce(), Scripted(scripts), run_id, tmp_path / "r.jsonl"
        )
        assert result is not None and result.ok
        children = {("writer", child.id, 1) for child in result.items if child.parent == "main"}
        assert len(children) == 30 and children <= at_reduce[0]


async def test_the_final_output_is_committed_before_run_finished(
    store_url: str, tmp_path: Path
) -> None:
    """A sink gets each event only once it is committed: when `run_finished` reaches it,
    the run's final output must already be in the store (a reader never sees a finished
    run without it; a kill between the two cannot lose it)."""
    from agentflow.runtime.engine.runner import RunOptions, run_pipeline
    from agentflow.runtime.events.hub import EventHub

    run_id = "run-0000c0ffee0f"
    with RunStore.open(store_url) as store:
        outputs_at_finish: list[str | None] = []

        class Watcher:
            name, audit, inline = "watcher", False, True

            def write_lines(self, lines: Any) -> None:
                for line in lines:
                    if json.loads(line)["kind"] == "run_finished":
                        outputs_at_finish.append(store.run(run_id).output)

            def close(self) -> None:
                pass

        pipeline = compile_dict(hello_spec())
        scripts = {
            "writer_agent": lambda ctx: text("the final draft"),
            "reviewer_agent": lambda ctx: verdict(True),
        }
        committer = await store.begin_run(
            run_id=run_id, pipeline=pipeline.spec.name, source_hash=pipeline.source_sha256,
            input="x", options={},
        )  # fmt: skip
        hub = EventHub(
            run_id=run_id, pipeline_hash=pipeline.source_sha256, sinks=[Watcher()],
            committer=committer,
        )  # fmt: skip
        with trio.fail_after(60):
            async with hub.running():
                result = await run_pipeline(
                    pipeline, "x", handlers=Scripted(scripts), hub=hub,
                    options=RunOptions(backoff_scale=0, run_id=run_id),
                )  # fmt: skip
        assert result.ok
        assert outputs_at_finish == ["the final draft"]
        assert store.run(run_id).output == "the final draft"
