"""Number fields whose text strictyaml's own checks let through but `int()`/`float()` cannot
read ("", "_", "-_", ".", "-", "e5") are schema errors at their line and column, not exit 70."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.cli import EXIT_INVALID, main

PIPELINE = """\
name: numbers
defaults:
  temperature: 0.5
  max_tokens: 64
state_machine:
  initial: start
  terminal: [done]
  states:
    - id: start
    - id: done
agents:
  - id: writer
    prompt: p.md
    transitions: {{on_complete: done}}
"""


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("temperature", '""'),
        ("temperature", "''"),
        ("temperature", "."),
        ("temperature", "-"),
        ("temperature", "e5"),
        ("temperature", "_"),
        ("max_tokens", "_"),
        ("max_tokens", "-_"),
    ],
)
def test_unreadable_number_is_a_diagnostic(
    field: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = PIPELINE.format().replace(
        f"  {field}: {'0.5' if field == 'temperature' else '64'}", f"  {field}: {text}"
    )
    assert f"  {field}: {text}\n" in source
    (tmp_path / "p.md").write_text("hi\n")
    (tmp_path / "numbers.yaml").write_text(source)
    status = main([str(tmp_path / "numbers.yaml"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == EXIT_INVALID, err
    line = 3 if field == "temperature" else 4
    assert f"numbers.yaml:{line}:" in err, err
    assert "internal error" not in err
