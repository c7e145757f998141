"""Deeply nested flow collections are refused before YAML parsing (linear), and
nothing ordinary is mistaken for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.parse import MAX_FLOW_DEPTH, _flow_too_deep, parse_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: " + "[" * 5000 + "]" * 5000 + "\n", (1, 7 + MAX_FLOW_DEPTH)),
        ("name: x\nagents:\n  - " + "[a, " * 40 + "\n", (3, 5 + 4 * MAX_FLOW_DEPTH)),
        ("x: {" + "{a: " * 40 + "}\n", (1, 1 + 4 * MAX_FLOW_DEPTH)),
        ("x:\n" + "  [\n" * 40, (3 + MAX_FLOW_DEPTH - 1, 3)),
    ],
)
def test_deep_flow_nesting_is_found_where_it_passes_the_limit(
    text: str, where: tuple[int, int]
) -> None:
    assert _flow_too_deep(text) == where


@pytest.mark.parametrize(
    "text",
    [
        "x: '" + "[" * 100 + "'\n",
        'x: "' + "[" * 100 + '\\" ' + "{" * 100 + '"\n',
        "x: see [1] and " + "[" * 100 + "\n",  # brackets inside a plain scalar are text
        "x: |\n  " + "[" * 100 + "\n  more\ny: 1\n",
        "x: >-\n" + "  {\n" * 100 + "y: 1\n",
        "x: 1 # " + "[" * 100 + "\n",
        "x: ['it''s', " + "'[' , " * 50 + "]\n",
        "x: [" * 1 + "a" + "]" + "\n" + "y: [[[[]]]]\n",
    ],
)
def test_brackets_that_do_not_nest_are_not_counted(text: str) -> None:
    assert _flow_too_deep(text) is None


def test_the_diagnostic_names_line_and_column_and_the_limit() -> None:
    text = "name: x\ndescription: " + "[" * 2000 + "]" * 2000 + "\n"
    with pytest.raises(CompileError) as caught:
        parse_text(text, "deep.yaml")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (2, 14 + MAX_FLOW_DEPTH)
    assert f"deeper than {MAX_FLOW_DEPTH} levels" in diagnostic.message


def test_no_pipeline_or_prompt_in_the_repo_trips_the_check() -> None:
    files = [*ROOT.glob("pipelines/*.yaml"), *ROOT.glob("tests/**/*.yaml")]
    assert len(files) > 300
    tripped = [
        str(path.relative_to(ROOT))
        for path in files
        if _flow_too_deep(path.read_text(encoding="utf-8", errors="replace")) is not None
    ]
    # only the hostile entries that nest on purpose
    assert all("deep_flow" in name or "fuzz" in name for name in tripped), tripped
