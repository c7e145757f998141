"""DSL v2 part 2 emit: each router's case `Literal`, the `joined(ctx)` / `children(ctx)`
accessors, and modules without those constructs left as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.emit import emit_module
from agentflow.compiler.load import load_pipeline_text
from agentflow.runtime import AgentContext, TextOutput, WorkItem
from agentflow.runtime.agents import BranchFailure, ChildResult

from .emit_helpers import import_source

GATHER = """\
name: gathered
agents:
  - id: router
    instructions: "Route {{ input }}."
    dispatch:
      strategy: route
      cases: {write: topic_agent, split: planner, stop: end}
  - id: topic_agent
    instructions: "Topic."
    dispatch:
      strategy: parallel_broadcast
      targets: [joke_writer, poem_writer]
      join: combiner
  - id: joke_writer
    instructions: "Joke."
    output: {joke: str}
  - id: poem_writer
    instructions: "Poem."
  - id: combiner
    instructions: "{{ joined.joke_writer.joke }}"
  - id: planner
    instructions: "Plan."
    output: {subjects: list[str]}
    dispatch: {strategy: parallel_fan_out, items: subjects, target: poet, reduce: best}
  - id: poet
    instructions: "{{ item }}"
  - id: best
    instructions: "{{ children }}"
"""


def _source(text: str, tmp_path: Path) -> str:
    return emit_module(load_pipeline_text(text, "g.yaml", tmp_path))


def test_a_router_gets_a_literal_of_its_case_names(tmp_path: Path) -> None:
    source = _source(GATHER, tmp_path)
    assert 'RouterCase = Literal["write", "split", "stop"]\n' in source
    assert "class RouterOutput(BaseModel):" in source
    assert "    route: RouterCase\n" in source
    assert source.index("RouterCase = ") < source.index("class RouterOutput")


def test_an_explicit_field_with_other_values_keeps_its_own_alias(tmp_path: Path) -> None:
    text = """\
name: explicit
agents:
  - id: triage
    instructions: "Triage."
    output:
      category: {enum: [billing, bug, question]}
    dispatch:
      strategy: route
      on: category
      cases: {billing: end, bug: end}
      default: abort
"""
    source = _source(text, tmp_path)
    assert 'TriageCase = Literal["billing", "bug"]\n' in source
    assert 'TriageOutputCategory = Literal["billing", "bug", "question"]\n' in source
    assert "    category: TriageOutputCategory\n" in source


def test_joined_and_children_accessors_only_where_used(tmp_path: Path) -> None:
    source = _source(GATHER, tmp_path)
    assert "from agentflow.runtime.agents import BranchFailure, ChildResult\n" in source
    for name in ('"Joined",', '"joined",', '"children",'):
        assert name in source
    plain = _source(
        GATHER.split("  - id: topic_agent")[0]
        .replace("split: planner, ", "")
        .replace("write: topic_agent", "write: end"),
        tmp_path,
    )
    assert "Joined" not in plain and "children" not in plain and "BranchFailure" not in plain


def _context(joined: dict[str, object], children: tuple[ChildResult, ...] = ()) -> AgentContext:
    return AgentContext(
        run_id="r",
        agent="combiner",
        item=WorkItem(id="main"),
        attempt=1,
        input="x",
        joined=joined,  # type: ignore[arg-type]
        children=children,
    )


def test_joined_reads_typed_outputs_and_branch_failures(tmp_path: Path) -> None:
    module = import_source(_source(GATHER, tmp_path), "gathered_joined", tmp_path)
    joke = module.JokeWriterOutput(joke="knock knock")
    failure = BranchFailure(error="RuntimeError: no poem")
    view = module.joined(_context({"joke_writer": joke, "poem_writer": failure}))
    assert view.joke_writer == joke
    assert view.poem_writer == failure
    text_view = module.joined(_context({"poem_writer": TextOutput(text="roses")}))
    assert text_view.poem_writer == TextOutput(text="roses")
    with pytest.raises(LookupError, match="agent 'joke_writer' is not joined on work item"):
        text_view.joke_writer  # noqa: B018 - the property raises


def test_children_returns_the_context_children(tmp_path: Path) -> None:
    module = import_source(_source(GATHER, tmp_path), "gathered_children", tmp_path)
    child = ChildResult(id="main/0", status="completed", output=TextOutput(text="a"), reason=None)
    assert module.children(_context({}, (child,))) == (child,)
