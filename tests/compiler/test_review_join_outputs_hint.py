"""Second reader, DSL v2 part 2: a join agent's prompt reading `outputs.<branch>`.

A joined branch may fail without aborting the item, so its output may be missing
when the join runs: the compiler rejects `outputs.<branch>` there, but its message
said the branch "does not run before" the join and to read it "inside that branch",
never naming `joined.<branch>`, the variable made for it.
"""

from __future__ import annotations

from pathlib import Path

from tests.compiler.v2_helpers import HEAD, errors

JOIN_READS_OUTPUTS = (
    HEAD
    + """\
  - id: fan
    prompt: p.md
    dispatch: {strategy: parallel_broadcast, targets: [left, right], join: merge}
  - {id: left, prompt: p.md, output: {score: int}}
  - {id: right, prompt: p.md}
  - {id: merge, prompt: merge.md}
"""
)


def test_a_join_reading_outputs_of_a_branch_is_told_to_read_joined(tmp_path: Path) -> None:
    prompts = {"p.md": "Do {{ input }}.\n", "merge.md": "Best:\n{{ outputs.left.score }}\n"}
    assert errors(JOIN_READS_OUTPUTS, tmp_path, prompts) == [
        "merge.md:2:1: error: 'outputs.left': agent 'left' is a joined branch of 'merge', and "
        "a branch that failed leaves no output (the join still runs); read 'joined.left', "
        "its output or its failure (prompt of agent 'merge')"
    ]
