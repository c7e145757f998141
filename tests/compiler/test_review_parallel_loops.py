"""Second reader, DSL v2 part 2: broadcast branches that each loop back upstream.

Two branches of one broadcast that both route back to the broadcaster reach it by two
parallel paths: it ran once per branch on the same item (a #2 and a #3 at once), each
run broadcasting again - the meeting the two-paths rule forbids. Every agent on that
cycle is reached by both branches, so "the branches met before it" held for each of
them and none was reported.
"""

from __future__ import annotations

from pathlib import Path

from tests.compiler.v2_helpers import HEAD, compile_text, errors, line_of

BOTH_BRANCHES_LOOP = (
    HEAD
    + """\
  - id: fan
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [left, right]}
  - id: left
    prompt: p.md
    dispatch:
      strategy: route
      cases:
        again: {target: fan, max_iterations: 2}
        done: end
  - id: right
    prompt: p.md
    dispatch:
      strategy: route
      cases:
        again: {target: fan, max_iterations: 2}
        done: end
"""
)


def test_two_branches_looping_back_to_their_broadcaster_is_an_error(tmp_path: Path) -> None:
    line = line_of(BOTH_BRANCHES_LOOP, "- id: fan")
    assert errors(BOTH_BRANCHES_LOOP, tmp_path) == [
        f"v.yaml:{line}:9: error: agent 'fan' is reached again by two parallel branches of "
        "its own broadcast (through 'left' and 'right'), so it would run once per branch on "
        "the same work item, each run broadcasting again; loop back from one branch only, "
        "or from the broadcast's join"
    ]


def test_two_branches_looping_back_upstream_of_their_broadcaster_is_an_error(
    tmp_path: Path,
) -> None:
    text = BOTH_BRANCHES_LOOP.replace("target: fan,", "target: head,").replace(
        "  - id: fan\n",
        "  - id: head\n    prompt: p.md\n    dispatch: {strategy: sequential, target: fan}\n"
        "  - id: fan\n",
    )
    line = line_of(text, "- id: fan")
    assert errors(text, tmp_path) == [
        f"v.yaml:{line}:9: error: agent 'fan' is reached again by two parallel branches of "
        "its own broadcast (through 'left' and 'right'), so it would run once per branch on "
        "the same work item, each run broadcasting again; loop back from one branch only, "
        "or from the broadcast's join"
    ]


def test_looping_back_from_the_join_still_compiles(tmp_path: Path) -> None:
    text = (
        HEAD
        + """\
  - id: fan
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [left, right], join: judge}
  - {id: left, prompt: p.md}
  - {id: right, prompt: p.md}
  - id: judge
    prompt: p.md
    dispatch:
      strategy: route
      cases:
        again: {target: fan, max_iterations: 2}
        done: end
"""
    )
    compile_text(text, tmp_path)
