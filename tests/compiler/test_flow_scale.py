"""Graph analysis stays linear and recursion-free on shapes that blow up naive algorithms.

Stacked route diamonds double the dispatch paths at every level (2**40 paths to
the last agent of 40 diamonds): the compiler must count them, not walk them.
(Broadcast diamonds are an error since DSL v2 part 2: two parallel paths meeting.)
Long chains must not exhaust Python's recursion limit, in the compiler or at run
time. No timing is asserted: a hang is turned into a failure by the subprocess
timeout only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentflow.compiler.bounds import path_counts, worst_case
from agentflow.compiler.emit import emit_module
from agentflow.compiler.explain import explain
from agentflow.compiler.flow import qa_loops, same_item_graph
from agentflow.compiler.load import load_pipeline
from agentflow.runtime import EventKind, compile_spec, run_pipeline
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.sinks.memory import MemorySink

HEADER = """\
name: {name}
state_machine:
  initial: initialised
  terminal: [complete]
  states:
    - id: initialised
    - id: complete
agents:
"""


def _write(directory: Path, name: str, agents: list[str]) -> Path:
    (directory / "prompts").mkdir(exist_ok=True)
    (directory / "prompts" / "p.md").write_text("Work on {{ input }}.\n")
    path = directory / f"{name}.yaml"
    path.write_text(HEADER.format(name=name) + "".join(agents))
    return path


def _agent(agent_id: str, dispatch: str = "", extra: str = "") -> str:
    return f"  - id: {agent_id}\n    prompt: prompts/p.md\n{extra}{dispatch}"


def _sequential(target: str) -> str:
    return f"    dispatch:\n      strategy: sequential\n      target: {target}\n"


def diamonds(directory: Path, levels: int) -> Path:
    """`levels` stacked route diamonds: a{k} -> (b{k} | c{k}) -> a{k+1}; 3*levels+1 agents."""
    agents = []
    for k in range(levels):
        route = f"    dispatch:\n      strategy: route\n      cases: {{b: b{k}, c: c{k}}}\n"
        agents.append(_agent(f"a{k}", route))
        agents.append(_agent(f"b{k}", _sequential(f"a{k + 1}")))
        agents.append(_agent(f"c{k}", _sequential(f"a{k + 1}")))
    agents.append(_agent(f"a{levels}"))
    path = _write(directory, f"diamonds-{levels}", agents)
    # a router answers a typed route (DSL v2), so the run uses the default state machine
    path.write_text(f"name: diamonds-{levels}\nagents:\n" + "".join(agents))
    return path


def chain(directory: Path, length: int) -> Path:
    """`length` agents in one sequential chain, the last one moving the run to complete."""
    agents = [_agent(f"s{i}", _sequential(f"s{i + 1}")) for i in range(length - 1)]
    agents.append(_agent(f"s{length - 1}", "", "    transitions:\n      on_complete: complete\n"))
    return _write(directory, f"chain-{length}", agents)


def test_forty_stacked_diamonds_compile_with_exact_path_counts(tmp_path: Path) -> None:
    loaded = load_pipeline(diamonds(tmp_path, 40))
    assert len(loaded.spec.agents) == 121
    counts = path_counts(same_item_graph(loaded.spec), "a0")
    assert counts["a40"] == 2**40
    assert counts["b39"] == counts["c39"] == counts["a39"] == 2**39
    assert counts["a0"] == counts["b0"] == 1
    worst = worst_case(loaded.spec)
    assert worst.invocations is not None and worst.model_calls is not None
    # one case per router: a{k} and one of b{k}/c{k} for k < 40, then a40; a router
    # answers a typed route, which may be asked again once
    assert str(worst.invocations) == "81"
    assert str(worst.model_calls) == "121"
    source = emit_module(loaded)
    compile(source, "diamonds", "exec")
    text = explain(loaded)
    assert "per run: agent invocations = 81\n" in text


def test_a_qa_agent_behind_route_diamonds_compiles(tmp_path: Path) -> None:
    """A QA loop at the bottom of 30 route diamonds: 2**30 paths reach the QA agent, but a
    route takes one of them per item, so its verdict counts once; its loop is found."""
    path = diamonds(tmp_path, 30)
    text = path.read_text().replace(
        "  - id: a30\n    prompt: prompts/p.md\n",
        "  - id: a30\n    prompt: prompts/p.md\n    dispatch:\n      strategy: sequential\n"
        "      target: w\n"
        "  - id: w\n    prompt: prompts/p.md\n" + _sequential("q") + "  - id: q\n"
        "    prompt: prompts/p.md\n    retry:\n      max_attempts: 4\n"
        "    on_fail:\n      action: feedback_and_retry\n      target: w\n"
        "    transitions:\n      on_pass: complete\n",
    )
    path.write_text(text)
    loaded = load_pipeline(path)
    assert path_counts(same_item_graph(loaded.spec), "a0")["q"] == 2**30
    (loop,) = qa_loops(loaded.spec)
    assert loop.paths == (("w", "q"),)


def test_qa_loop_paths_are_found_without_walking_dead_ends(tmp_path: Path) -> None:
    """target -> 25 diamonds that never reach the QA agent, and one direct edge to it."""
    path = diamonds(tmp_path, 25)
    text = path.read_text().replace(
        "  - id: a0\n    prompt: prompts/p.md\n",
        "  - id: start\n    prompt: prompts/p.md\n    dispatch:\n"
        "      strategy: parallel_broadcast\n      targets: [a0, q]\n"
        "  - id: q\n    prompt: prompts/p.md\n    on_fail:\n      action: feedback_and_retry\n"
        "      target: start\n"
        "  - id: a0\n    prompt: prompts/p.md\n",
    )
    path.write_text(text)
    loaded = load_pipeline(path)
    (loop,) = qa_loops(loaded.spec)
    assert loop.paths == (("start", "q"),)


def test_thousand_agent_chain_compiles_and_explains(tmp_path: Path) -> None:
    loaded = load_pipeline(chain(tmp_path, 1000))
    assert len(loaded.spec.agents) == 1000
    assert str(worst_case(loaded.spec).invocations) == "1000"
    emit_module(loaded)
    assert "per run: agent invocations = 1000\n" in explain(loaded)


def test_thousand_agent_dispatch_cycle_is_reported(tmp_path: Path) -> None:
    path = chain(tmp_path, 1000)
    text = path.read_text().replace(
        "  - id: s999\n    prompt: prompts/p.md\n",
        "  - id: s999\n    prompt: prompts/p.md\n" + _sequential("s0"),
    )
    path.write_text(text)
    with pytest.raises(Exception) as caught:
        load_pipeline(path)
    assert "dispatch cycle s0 -> s1 -> s2" in str(caught.value)


def test_thousand_agent_chain_cli_exits_cleanly(tmp_path: Path) -> None:
    path = chain(tmp_path, 1000)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "agentflow.compiler", str(path), "-o", str(out), "--explain"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "per run: agent invocations = 1000" in done.stdout


async def test_five_hundred_deep_sequential_pipeline_runs(tmp_path: Path) -> None:
    loaded = load_pipeline(chain(tmp_path, 500))
    sink = MemorySink()
    result = await run_pipeline(
        compile_spec(loaded.spec, loaded.prompts),
        "topic",
        handlers=None,
        model=DryRunModel(),
        sinks=[sink],
        options=RunOptions(audit_log=str(tmp_path / "run.jsonl")),
    )
    assert result.status == "succeeded", result
    started = [e.agent for e in sink.events if e.kind == EventKind.AGENT_STARTED]
    assert started == [f"s{i}" for i in range(500)]


def test_five_hundred_deep_sequential_pipeline_runs_from_the_cli(tmp_path: Path) -> None:
    path = chain(tmp_path, 500)
    command = [sys.executable, "-m", "agentflow.runtime.cli.main", "run", str(path), "--no-ui"]
    done = subprocess.run(
        [*command, "--model", "dry-run", "--quiet", "--jsonl", str(tmp_path / "r.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_fan_outs_that_combine_into_a_huge_formula_print_none(tmp_path: Path) -> None:
    """Each level fans out from two agents into the next: 2**10 monomials."""
    agents = []
    for k in range(10):
        broadcast = (
            f"    dispatch:\n      strategy: parallel_broadcast\n      targets: [b{k}, c{k}]\n"
        )
        fan_out = "    dispatch:\n      strategy: parallel_fan_out\n      target: a{n}\n"
        agents.append(_agent(f"a{k}", broadcast))
        agents.append(_agent(f"b{k}", fan_out.format(n=k + 1)))
        agents.append(_agent(f"c{k}", fan_out.format(n=k + 1)))
    agents.append(_agent("a10", "", "    transitions:\n      on_complete: complete\n"))
    loaded = load_pipeline(_write(tmp_path, "fan-out-diamonds", agents))
    worst = worst_case(loaded.spec)
    assert worst.invocations is None and worst.unbounded is None
    assert worst.too_complex is not None and "more than 256 terms" in worst.too_complex
    assert "  no formula: the fan-outs combine into a formula of more than 256 terms" in explain(
        loaded
    )


def test_a_thousand_typos_among_two_thousand_states_each_get_a_suggestion(tmp_path: Path) -> None:
    """did-you-mean compares each typo with a few sorted neighbours, not every id."""
    states = "".join(f"    - id: state_number_{i}\n" for i in range(2000))
    agents = "".join(
        f"  - id: a{i}\n    prompt: prompts/p.md\n"
        f"    transitions: {{on_complete: state_numbr_{i}}}\n"
        for i in range(1000)
    )
    path = _write(tmp_path, "typos", [])
    path.write_text(HEADER.format(name="typos").replace("agents:\n", states + "agents:\n") + agents)
    done = subprocess.run(  # a quadratic search takes minutes: the timeout turns it into a failure
        [sys.executable, "-m", "agentflow.compiler", str(path), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("is not a declared state (did you mean 'state_number_") == 1000
    assert "'state_numbr_777' is not a declared state (did you mean 'state_number_777'?)" in (
        done.stderr
    )
