"""The worst-case count stays linear and recursion-free with routes and loops.

Hand-built specs (the checks are not what is measured here), plus one YAML file
through `agentflowc --explain`. No timing is asserted: a hang becomes a failure
only through the subprocess timeout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentflow.compiler.bounds import worst_case
from agentflow.compiler.explain import explain

from .emit_helpers import HandLoaded
from .test_v2_bounds import broadcast, leaf, pipeline, route, seq


def test_forty_broadcast_diamonds_count_two_to_the_forty_paths() -> None:
    agents = []
    for k in range(40):
        agents += [broadcast(f"a{k}", f"b{k}", f"c{k}"), seq(f"b{k}", f"a{k + 1}")]
        agents.append(seq(f"c{k}", f"a{k + 1}"))
    spec = pipeline(*agents, leaf("a40"))
    worst = worst_case(spec)
    assert str(worst.invocations) == str(2**42 - 3)  # sum over k of 3 * 2**k, plus 2**40
    assert worst.scopes[0].runs["a40"] == 2**40


def test_forty_route_diamonds_take_one_side_per_level() -> None:
    agents = []
    for k in range(40):
        agents += [route(f"a{k}", left=f"b{k}", right=f"c{k}"), seq(f"b{k}", f"a{k + 1}")]
        agents.append(seq(f"c{k}", f"a{k + 1}"))
    worst = worst_case(pipeline(*agents, leaf("a40")))
    assert str(worst.invocations) == "81"
    assert worst.exact


def test_broadcast_diamonds_above_a_loop_multiply_its_iterations_exactly() -> None:
    agents = []
    for k in range(30):
        agents += [broadcast(f"a{k}", f"b{k}", f"c{k}"), seq(f"b{k}", f"a{k + 1}")]
        agents.append(seq(f"c{k}", f"a{k + 1}"))
    agents += [seq("a30", "judge"), route("judge", more=("a30", 1000), done="end")]
    worst = worst_case(pipeline(*agents))
    # Each of the 2**30 paths reaches a30 once; every one's loop is counted... once per
    # item: the counter is per item, so 1000 iterations in all, 2 agents each.
    paths = 2**30
    assert worst.invocations is not None
    assert worst.invocations.evaluate({}) == 3 * (paths - 1) + 2 * paths + 1000 * 2


def chain_of_loops(length: int) -> list:  # type: ignore[type-arg]
    agents = []
    for i in range(length):
        nxt = f"w{i + 1}" if i + 1 < length else "end"
        agents += [seq(f"w{i}", f"r{i}"), route(f"r{i}", again=(f"w{i}", 5), next=nxt)]
    return agents


def test_a_thousand_loops_in_a_row() -> None:
    spec = pipeline(*chain_of_loops(1000))
    worst = worst_case(spec)
    assert str(worst.invocations) == str(1000 * (2 + 5 * 2))
    assert worst.exact
    text = explain(HandLoaded(spec, {}))
    assert f"per run: agent invocations = {1000 * 12}\n" in text
    assert text.count("  route loop: ") == 1000


def test_three_hundred_nested_loops() -> None:
    """w0 -> ... -> w299 -> r299 -> ... -> r0; r_i loops back to w_i (twice at most)."""
    depth = 300
    agents = [seq(f"w{i}", f"w{i + 1}" if i + 1 < depth else f"r{depth - 1}") for i in range(depth)]
    for i in range(depth):
        agents.append(route(f"r{i}", again=(f"w{i}", 2), out=f"r{i - 1}" if i else "end"))
    worst = worst_case(pipeline(*agents))
    # base: every w and r once; r_i's case: 2 x (w_i..w299, r299..r_i) = 2 x 2(300 - i)
    expected = 2 * depth + sum(2 * 2 * (depth - i) for i in range(depth))
    assert str(worst.invocations) == str(expected)
    assert worst.exact


def test_a_thousand_loops_in_a_row_explain_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("Work on {{ input }}.\n")
    lines = ["name: loops", "agents:"]
    for i in range(1000):
        nxt = f"w{i + 1}" if i < 999 else "end"
        lines += [
            f"  - id: w{i}",
            "    prompt: p.md",
            f"    dispatch: {{strategy: sequential, target: r{i}}}",
            f"  - id: r{i}",
            "    prompt: p.md",
            "    dispatch:",
            "      strategy: route",
            "      cases:",
            f"        again: {{target: w{i}, max_iterations: 5, on_exhausted: end}}",
            f"        next: {nxt}",
        ]
    path = tmp_path / "loops.yaml"
    path.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "agentflow.compiler", str(path), "--explain"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"per run: agent invocations = {1000 * 12}\n" in done.stdout
