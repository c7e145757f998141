"""`--graph mermaid|dot` for DSL v2 part 2: routes, loops, joins, reduces, sub-pipelines."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

from agentflow.compiler.graph import render_graph
from agentflow.compiler.load import load_pipeline
from agentflow.runtime.spec import DispatchSpec, FieldSpec, NamedField, RouteCase, ShapeSpec

from .emit_helpers import ROOT, HandLoaded
from .test_emit import HOSTILE
from .test_v2_bounds import fan_out, leaf, pipeline, route, seq

EXAMPLES = ROOT / "pipelines"
SHAPES = ROOT / "tests" / "worst_case"


def _dot_accepts(text: str) -> None:
    """Graphviz itself parses the document (skipped where it is not installed)."""
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz is not installed")
    done = subprocess.run([dot, "-Tcanon"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _node_ids(mermaid: str) -> list[str]:
    return re.findall(r"^\s+(\w+)(?:\[|\(\()", mermaid, re.M)


def test_routes_are_labelled_by_case_and_end_is_a_terminal_node() -> None:
    text = render_graph(load_pipeline(EXAMPLES / "plan_execute.yaml"), "mermaid")
    lines = text.splitlines()
    assert '        agent_replanner -->|"case execute, max 4"| agent_executor' in lines
    assert '        agent_replanner -->|"case done"| agent_END' in lines
    assert '        agent_END((("end")))' in lines
    assert any(
        line.startswith('        agent_replanner["replanner<br/>routes on decision')
        for line in lines
    )
    dot = render_graph(load_pipeline(EXAMPLES / "plan_execute.yaml"), "dot")
    assert 'agent_replanner -> agent_executor [label="case execute, max 4"];' in dot
    assert 'agent_END [label="end", shape=doublecircle];' in dot
    _dot_accepts(dot)


def test_abort_and_default_cases() -> None:
    spec = pipeline(route("r", default="b", bad="abort", ok="end"), leaf("b"))
    text = render_graph(HandLoaded(spec, {}), "mermaid")
    assert '        agent_r -->|"case bad"| agent_ABORT' in text
    assert '        agent_r -->|"default"| agent_b' in text
    assert '        agent_ABORT((("abort")))' in text
    _dot_accepts(render_graph(HandLoaded(spec, {}), "dot"))


def test_join_edges_come_from_each_target_and_reduce_from_the_fan_out() -> None:
    joined = render_graph(load_pipeline(SHAPES / "route_costliest_case.yaml"), "mermaid")
    assert '        agent_web ==>|"join"| agent_merge' in joined
    assert '        agent_papers ==>|"join"| agent_merge' in joined
    reduced = render_graph(load_pipeline(EXAMPLES / "map_reduce.yaml"), "mermaid")
    assert '        agent_planner -->|"parallel_fan_out over aspects"| agent_analyst' in reduced
    assert '        agent_planner ==>|"reduce, after every item"| agent_synthesiser' in reduced
    dot = render_graph(load_pipeline(EXAMPLES / "map_reduce.yaml"), "dot")
    assert (
        'agent_planner -> agent_synthesiser [label="reduce, after every item", style=bold];'
    ) in dot
    _dot_accepts(dot)


def test_a_sub_pipeline_is_drawn_as_a_group_of_its_childs_agents() -> None:
    loaded = load_pipeline(EXAMPLES / "supervisor.yaml")
    text = render_graph(loaded, "mermaid")
    lines = text.splitlines()
    group = lines.index(
        '        subgraph agent_S13research_team_GROUP ["research_team: research_team.yaml"]'
    )
    assert lines[group + 1].startswith('            agent_S13research_team_researcher["researcher')
    assert "        agent_research_team ==>|runs| agent_S13research_team_researcher" in lines
    assert '        agent_supervisor -->|"case research, max 3"| agent_research_team' in lines
    assert text.count("subgraph") == text.count("\n    end\n") + text.count("\n        end\n")
    dot = render_graph(loaded, "dot")
    assert "        subgraph cluster_agent_S13research_team_GROUP {" in dot
    assert dot.count("{") == dot.count("}")
    _dot_accepts(dot)


@dataclass(frozen=True)
class WithChildren:
    spec: object
    prompts: dict[str, str]
    children: dict[str, object] = field(default_factory=dict)


def test_child_node_ids_never_collide_with_the_parents() -> None:
    """A child agent `group` or `end`-like ids, a parent agent named like a prefixed child."""
    child = pipeline(seq("group", "x"), route("x", done="end"), name="child")
    parent = pipeline(
        seq("t", "t_group"),
        leaf("t_group", pipeline="c.yaml", prompt=None),
        name="parent",
    )
    loaded = WithChildren(parent, {}, {"t_group": WithChildren(child, {})})
    text = render_graph(loaded, "mermaid")  # type: ignore[arg-type]
    ids = _node_ids(text)
    assert len(ids) == len(set(ids)), ids
    assert "agent_S7t_group_group" in ids and "agent_S7t_group_END" in ids
    _dot_accepts(render_graph(loaded, "dot"))  # type: ignore[arg-type]


def test_a_sub_pipeline_that_was_not_loaded_is_a_labelled_node() -> None:
    spec = pipeline(seq("a", "team"), leaf("team", pipeline="team.yaml", prompt=None))
    text = render_graph(HandLoaded(spec, {}), "mermaid")
    assert '        agent_team[["team<br/>sub-pipeline team.yaml"]]' in text
    assert "subgraph agent_S" not in text


def test_hostile_case_keys_and_field_names_stay_inside_their_labels() -> None:
    hostile = HOSTILE + " |]} end"
    router = leaf(
        "r",
        output=ShapeSpec(
            fields=(NamedField(name="k", type=FieldSpec(kind="enum", values=(hostile,))),)
        ),
        dispatch=DispatchSpec(strategy="route", on=hostile, cases={hostile: RouteCase(target="f")}),
    )
    fan = fan_out("f", "g").model_copy(
        update={"dispatch": DispatchSpec(strategy="parallel_fan_out", target="g", items=hostile)}
    )
    spec = pipeline(router, fan, leaf("g"))
    mermaid = render_graph(HandLoaded(spec, {}), "mermaid")
    for line in mermaid.splitlines():
        # every quoted label closes on its line, and nothing but the label is quoted
        assert line.count('"') % 2 == 0, line
    edge = next(line for line in mermaid.splitlines() if "agent_r -->" in line)
    assert edge.startswith('        agent_r -->|"case a#quot;') and edge.endswith("| agent_f")
    dot = render_graph(HandLoaded(spec, {}), "dot")
    for line in dot.splitlines()[1:-1]:
        assert line.strip().endswith((";", "{", "}")), line
    _dot_accepts(dot)
