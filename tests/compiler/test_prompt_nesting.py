"""A prompt template nested deeper than Python can compile (jinja's recursive parser, or
Python's limit of 20 nested blocks and 100 indentation levels in the code jinja generates)
is a diagnostic in the prompt file, not exit 70 and not a failure at run time."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.cli import EXIT_INVALID, main

PIPELINE = """\
name: nesting
state_machine:
  initial: start
  terminal: [done]
  states:
    - id: start
    - id: done
agents:
  - id: writer
    prompt: p.md
    transitions: {on_complete: done}
"""


@pytest.mark.parametrize(
    "template",
    [
        "{% if input %}" * 3000 + "x" + "{% endif %}" * 3000,  # RecursionError in the parser
        "{{ " + "(" * 5000 + "input" + ")" * 5000 + " }}",
        "{% for a in input %}" * 25 + "x" + "{% endfor %}" * 25,  # too many nested blocks
        "{% if input %}" * 200 + "x" + "{% endif %}" * 200,  # too many indentation levels
    ],
    ids=["ifs-3000", "parens-5000", "fors-25", "ifs-200"],
)
def test_deeply_nested_template_is_a_diagnostic(
    template: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.md").write_text(template)
    (tmp_path / "nesting.yaml").write_text(PIPELINE)
    status = main([str(tmp_path / "nesting.yaml"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == EXIT_INVALID, err
    assert "p.md:1:1: error: " in err and "nest" in err, err
    assert "internal error" not in err


def test_ordinary_nesting_still_compiles(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("{% for a in input %}{% if a %}{{ a }}{% endif %}{% endfor %}")
    (tmp_path / "nesting.yaml").write_text(PIPELINE)
    assert main([str(tmp_path / "nesting.yaml"), "-o", str(tmp_path / "out")]) == 0
