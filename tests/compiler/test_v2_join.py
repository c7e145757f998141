"""DSL v2 section 5 at compile time: `join`, `reduce`, typed fan-out `items`, the
two-parallel-paths rule, and the `joined` / `children` prompt variables."""

from __future__ import annotations

from pathlib import Path

from agentflow.compiler.flow import (
    dispatch_edges,
    dominates,
    immediate_dominators,
    parallel_meetings,
    same_item_graph,
)
from agentflow.compiler.lower import lower
from agentflow.compiler.parse import parse_text
from agentflow.runtime.spec import PipelineSpec

from .v2_helpers import compile_text, errors, line_of


def lowered(text: str) -> PipelineSpec:
    """The IR of `text` without the semantic checks."""
    return lower(parse_text(text, "v.yaml"))


JOIN = """\
name: jokes
agents:
  - id: topic_agent
    prompt: p.md
    dispatch:
      strategy: parallel_broadcast
      targets: [joke_writer, poem_writer]
      join: combiner
  - id: joke_writer
    prompt: p.md
    output: {joke: str, rating: int}
  - id: poem_writer
    prompt: p.md
  - id: combiner
    prompt: combiner.md
"""


def _join(combiner: str) -> dict[str, str]:
    return {"p.md": "{{ input }}\n", "combiner.md": combiner}


def test_a_joined_broadcast_compiles_and_reads_each_target(tmp_path: Path) -> None:
    combiner = (
        "{{ joined.joke_writer.joke }} ({{ joined.joke_writer.rating }})\n"
        "{{ joined.poem_writer.text }}\n"
        "{% if joined.poem_writer.failed %}{{ joined.poem_writer.error }}{% endif %}\n"
        "{{ outputs.topic_agent.text }}\n"
    )
    loaded = compile_text(JOIN, tmp_path, _join(combiner))
    assert loaded.warnings == []
    edges = [(e.source, e.target, e.kind) for e in dispatch_edges(loaded.spec)]
    assert edges[-1] == ("topic_agent", "combiner", "join")
    assert same_item_graph(loaded.spec)["topic_agent"] == ["joke_writer", "poem_writer", "combiner"]


def test_joined_names_a_target_of_the_broadcast(tmp_path: Path) -> None:
    assert errors(JOIN, tmp_path, _join("{{ joined.joke_writr.joke }}\n")) == [
        "combiner.md:1:1: error: 'joined.joke_writr': 'joke_writr' is not a target of a "
        "broadcast that agent 'combiner' joins (did you mean 'joke_writer'?); its targets: "
        "joke_writer, poem_writer (prompt of agent 'combiner')"
    ]


def test_joined_fields_are_checked_against_the_target_output(tmp_path: Path) -> None:
    assert errors(JOIN, tmp_path, _join("x\n{{ joined.joke_writer.jok }}\n")) == [
        "combiner.md:2:1: error: 'joined.joke_writer.jok': agent 'joke_writer' has no field "
        "'jok' (did you mean 'joke'?) (prompt of agent 'combiner')"
    ]


def test_joined_outside_a_join_agent_prompt(tmp_path: Path) -> None:
    prompts = {"p.md": "{{ input }}\n", "combiner.md": "x\n", "poem.md": "{{ joined }}\n"}
    text = JOIN.replace(
        "  - id: poem_writer\n    prompt: p.md\n", "  - id: poem_writer\n    prompt: poem.md\n"
    )
    assert errors(text, tmp_path, prompts) == [
        "poem.md:1:1: error: 'joined' is only set for a broadcast's join agent, and agent "
        "'poem_writer' joins no broadcast (name it in a parallel_broadcast's 'join:') (prompt "
        "of agent 'poem_writer')"
    ]


def test_a_join_agent_cannot_read_a_branch_through_outputs(tmp_path: Path) -> None:
    """A branch may have failed: `joined.<target>` says so, `outputs.<target>` would not."""
    found = errors(JOIN, tmp_path, _join("{{ outputs.joke_writer.joke }}\n"))
    assert len(found) == 1
    assert found[0].startswith(
        "combiner.md:1:1: error: 'outputs.joke_writer': agent 'joke_writer' is a joined "
        "branch of 'combiner', and a branch that failed leaves no output (the join still "
        "runs); read 'joined.joke_writer'"
    )
    idom = immediate_dominators(compile_text(JOIN, tmp_path, _join("x\n")).spec)
    assert idom["combiner"] == "topic_agent" and dominates(idom, "topic_agent", "combiner")


def test_join_only_on_a_broadcast(tmp_path: Path) -> None:
    text = """\
name: j
agents:
  - id: first
    prompt: p.md
    dispatch: {strategy: sequential, target: second, join: third}
  - id: second
    prompt: p.md
  - id: third
    prompt: p.md
"""
    assert errors(text, tmp_path) == [
        "v.yaml:5:54: error: 'join' only applies to strategy parallel_broadcast (it runs once "
        "after every target), not sequential; remove it"
    ]


def test_joined_targets_may_not_dispatch(tmp_path: Path) -> None:
    text = JOIN.replace(
        "  - id: poem_writer\n    prompt: p.md\n",
        "  - id: poem_writer\n    prompt: p.md\n    dispatch: {strategy: sequential, "
        "target: combiner}\n",
    )
    assert errors(text, tmp_path, _join("x\n")) == [
        f"v.yaml:{line_of(text, 'dispatch: {strategy: seq')}:5: error: agent 'poem_writer' is "
        "a target of the joined broadcast of 'topic_agent', so it may not dispatch: the join "
        "'combiner' continues the item; move this dispatch to 'combiner'"
    ]


def test_join_target_is_another_existing_agent(tmp_path: Path) -> None:
    line = line_of(JOIN, "join: combiner")
    typo = JOIN.replace("join: combiner", "join: combinr")
    assert errors(typo, tmp_path, _join("x\n")) == [
        f"v.yaml:{line}:13: error: join agent 'combinr' is not an agent (did you mean 'combiner'?)"
    ]
    itself = JOIN.replace("join: combiner", "join: topic_agent")
    assert errors(itself, tmp_path, _join("x\n")) == [
        f"v.yaml:{line}:13: error: agent 'topic_agent' cannot be its own join; name the agent "
        "that runs once after its targets"
    ]
    target = JOIN.replace("join: combiner", "join: poem_writer")
    assert errors(target, tmp_path, _join("x\n")) == [
        f"v.yaml:{line}:13: error: join agent 'poem_writer' is also a target of 'topic_agent'; "
        "the join must be another agent, run once after the targets finished"
    ]


FAN = """\
name: mapper
agents:
  - id: planner
    prompt: p.md
    output:
      subjects: list[str]
      title: str
    dispatch:
      strategy: parallel_fan_out
      items: subjects
      target: worker
      reduce: best
  - id: worker
    prompt: p.md
  - id: best
    prompt: best.md
"""


def _fan(best: str) -> dict[str, str]:
    return {"p.md": "{{ item }}\n", "best.md": best}


def test_a_typed_fan_out_with_items_and_reduce_compiles(tmp_path: Path) -> None:
    best = "{% for c in children %}{{ c.id }} {{ c.status }} {{ c.output }}{% endfor %}\n"
    best += "{{ outputs.planner.title }}\n"
    loaded = compile_text(FAN, tmp_path, _fan(best))
    assert loaded.warnings == []
    assert loaded.spec.output_kind(loaded.spec.agent("planner")) == "text"
    graph = same_item_graph(loaded.spec)
    assert graph["planner"] == ["best"]  # the fan-out edge changes item; the reduce does not


def test_children_outside_a_reduce_agent_prompt(tmp_path: Path) -> None:
    prompts = {"p.md": "{{ children }}\n", "best.md": "x\n"}
    found = errors(FAN, tmp_path, prompts)
    assert found[0] == (
        "p.md:1:1: error: 'children' is only set for a fan-out's reduce agent, and agent "
        "'planner' reduces no fan-out (name it in a parallel_fan_out's 'reduce:') (prompt of "
        "agent 'planner')"
    )


def test_a_reduce_agent_cannot_read_a_child_agent_through_outputs(tmp_path: Path) -> None:
    found = errors(FAN, tmp_path, _fan("{{ outputs.worker.text }}\n"))
    assert found[0].startswith(
        "best.md:1:1: error: 'outputs.worker': agent 'worker' does not run before 'best'"
    )


def test_reduce_only_on_a_fan_out(tmp_path: Path) -> None:
    text = JOIN.replace("      join: combiner\n", "      reduce: combiner\n")
    assert errors(text, tmp_path, _join("x\n")) == [
        f"v.yaml:{line_of(text, 'reduce:')}:7: error: 'reduce' only applies to strategy "
        "parallel_fan_out (it runs once on the parent item after every child item), not "
        "parallel_broadcast; remove it"
    ]


def test_reduce_target_is_not_the_fan_out_target(tmp_path: Path) -> None:
    text = FAN.replace("reduce: best", "reduce: worker")
    assert errors(text, tmp_path, _fan("x\n"))[0] == (
        f"v.yaml:{line_of(text, 'reduce: worker')}:15: error: reduce agent 'worker' is also a "
        "target of 'planner'; the reduce must be another agent, run once after the targets "
        "finished"
    )


def test_items_names_a_list_field(tmp_path: Path) -> None:
    text = FAN.replace("items: subjects", "items: title")
    assert errors(text, tmp_path, _fan("x\n")) == [
        f"v.yaml:{line_of(text, 'items: title')}:14: error: 'items: title': field 'title' is "
        "str, not a list[...]; name the list field that holds the work items"
    ]
    typo = FAN.replace("items: subjects", "items: subject")
    assert errors(typo, tmp_path, _fan("x\n")) == [
        f"v.yaml:{line_of(typo, 'items: subject')}:14: error: 'items: subject': the output of "
        "agent 'planner' has no field 'subject' (did you mean 'subjects'?)"
    ]


def test_items_on_an_untyped_fan_out(tmp_path: Path) -> None:
    text = FAN.replace("    output:\n      subjects: list[str]\n      title: str\n", "")
    assert errors(text, tmp_path, _fan("x\n")) == [
        f"v.yaml:{line_of(text, 'items: subjects')}:14: error: 'items: subjects' names a field "
        "of a typed output, but agent 'planner' has no 'output:'; declare one with a list "
        "field, or remove 'items' (the agent then answers a list of work items)"
    ]


def test_items_only_on_a_fan_out(tmp_path: Path) -> None:
    text = JOIN.replace("      join: combiner\n", "      join: combiner\n      items: x\n")
    assert errors(text, tmp_path, _join("x\n")) == [
        f"v.yaml:{line_of(text, 'items: x')}:7: error: 'items' only applies to strategy "
        "parallel_fan_out, not parallel_broadcast; remove it"
    ]


def test_a_typed_fan_out_without_items_names_the_list_field(tmp_path: Path) -> None:
    text = FAN.replace("      items: subjects\n", "")
    assert errors(text, tmp_path, _fan("x\n")) == [
        "v.yaml:9:17: error: agent 'planner' fans out a typed output: name the list field that "
        "holds the work items: items: subjects"
    ]


DIAMOND = """\
name: diamond
agents:
  - id: start
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [left, right]}
  - id: left
    prompt: p.md
    dispatch: {strategy: sequential, target: merge}
  - id: right
    prompt: p.md
    dispatch: {strategy: sequential, target: merge}
  - id: merge
    prompt: p.md
    dispatch: {strategy: sequential, target: after}
  - id: after
    prompt: p.md
"""


def test_two_parallel_paths_meeting_is_an_error_reported_once(tmp_path: Path) -> None:
    assert errors(DIAMOND, tmp_path) == [
        "v.yaml:12:9: error: agent 'merge' is reached by two parallel paths from the broadcast "
        "of 'start' (through 'left' and 'right'), so it would run once per path on the same "
        "work item; make it the broadcast's join ('join: merge', and end the branches there) "
        "or give each path its own agent"
    ]


def test_a_broadcast_target_reached_through_another_target_meets(tmp_path: Path) -> None:
    text = DIAMOND.replace(
        "  - id: left\n    prompt: p.md\n    dispatch: {strategy: sequential, target: merge}\n",
        "  - id: left\n    prompt: p.md\n    dispatch: {strategy: sequential, target: right}\n",
    )
    (meeting,) = parallel_meetings(lowered(text))
    assert (meeting.agent, meeting.broadcaster, meeting.branches) == ("right", "start", 2)


def test_the_join_is_where_parallel_paths_may_meet(tmp_path: Path) -> None:
    text = DIAMOND.replace(
        "dispatch: {strategy: parallel_broadcast, targets: [left, right]}",
        "dispatch: {strategy: parallel_broadcast, targets: [left, right], join: merge}",
    ).replace("    dispatch: {strategy: sequential, target: merge}\n", "")
    assert compile_text(text, tmp_path).warnings == []


def test_a_gate_reached_only_through_a_join_is_reachable(tmp_path: Path) -> None:
    text = JOIN + (
        "    on_fail: {action: abort}\n"
        "aggregation:\n  strategy: all_pass\n  gates: [combiner]\n"
        "  on_complete: {transition: complete}\n  on_any_abort: {transition: failed}\n"
        "state_machine:\n  initial: running\n  terminal: [complete, failed]\n"
        "  states: [{id: running}, {id: complete}, {id: failed}]\n"
    )
    assert compile_text(text, tmp_path, _join("x\n")).warnings == []


def test_a_qa_agent_after_a_join_or_reduce_can_retry_upstream(tmp_path: Path) -> None:
    """on_fail's target must be upstream on the item: join and reduce edges count."""
    joined = JOIN.replace(
        "  - id: combiner\n    prompt: combiner.md\n",
        "  - id: combiner\n    prompt: combiner.md\n"
        "    on_fail: {action: feedback_and_retry, target: topic_agent}\n",
    )
    assert compile_text(joined, tmp_path, _join("x\n")).warnings == []
    reduced = FAN.replace(
        "  - id: best\n    prompt: best.md\n",
        "  - id: best\n    prompt: best.md\n"
        "    on_fail: {action: feedback_and_retry, target: planner}\n",
    )
    assert compile_text(reduced, tmp_path, _fan("x\n")).warnings == []
    child = FAN.replace(
        "  - id: best\n    prompt: best.md\n",
        "  - id: best\n    prompt: best.md\n"
        "    on_fail: {action: feedback_and_retry, target: worker}\n",
    )
    assert (
        "on_fail target 'worker' is not upstream of 'best'"
        in errors(child, tmp_path, _fan("x\n"))[0]
    )


def test_a_join_of_two_broadcasts_reads_the_targets_of_both(tmp_path: Path) -> None:
    text = """\
name: two-joins
agents:
  - id: router
    prompt: p.md
    dispatch:
      strategy: route
      cases: {short: short_fan, long: long_fan}
  - id: short_fan
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [haiku], join: pick}
  - id: long_fan
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [essay], join: pick}
  - id: haiku
    prompt: p.md
  - id: essay
    prompt: p.md
  - id: pick
    prompt: combiner.md
"""
    combiner = "{{ joined.haiku.text }} {{ joined.essay.text }}\n"
    assert compile_text(text, tmp_path, _join(combiner)).warnings == []
    assert errors(text, tmp_path, _join("{{ joined.router.text }}\n")) == [
        "combiner.md:1:1: error: 'joined.router': 'router' is not a target of a broadcast "
        "that agent 'pick' joins; its targets: haiku, essay (prompt of agent 'pick')"
    ]
