"""YAML the DSL does not allow gets a clean diagnostic, never a traceback or exit 70.

Complex keys (`? [a, b]`) and the `<<` merge key are refused at their line and
column; control characters that YAML escapes put into values are shown escaped
in diagnostics, so they cannot drive the user's terminal. Also: "every error at
once" keeps the not-upstream error when another dispatch has a typo.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.cli import main
from agentflow.compiler.diagnostics import CompileError, Diagnostic
from agentflow.compiler.load import load_pipeline

BASE = """\
name: fe
state_machine:
  initial: a
  terminal: [b]
  states:
    - id: a
    - id: b
agents:
  - id: w
    prompt: prompts/p.md
{extra}    transitions:
      on_complete: {target}
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "p.md").write_text("Hi {{ input }}.\n")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def _cli(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main([str(path), "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    return status, out + err


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("? [x, y]\n: 1\n" + BASE.format(extra="", target="b"), 1, 3),
        (BASE.format(extra="", target="b").replace("  initial: a\n", "  ? {k: v}\n  : a\n"), 3, 5),
        (BASE.format(extra="    ? [p, q]\n    : r\n", target="b"), 11, 7),
    ],
    ids=["top-level", "nested-mapping-key", "in-an-agent"],
)
def test_complex_keys_are_a_diagnostic(
    text: str, line: int, column: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CompileError) as caught:
        load_pipeline(path)
    (diagnostic,) = caught.value.errors
    assert (diagnostic.line, diagnostic.column) == (line, column)
    assert "complex" in diagnostic.message and "key" in diagnostic.message
    status, output = _cli(path, tmp_path, capsys)
    assert status == 1
    assert "internal error" not in output and "Traceback" not in output


@pytest.mark.parametrize(
    ("extra", "line"),
    [("    <<: {model: x}\n", 11), ("    <<: {}\n", 11), ("    <<: [{model: x}]\n", 11)],
)
def test_merge_key_is_an_error_naming_its_line(
    extra: str, line: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, BASE.format(extra=extra, target="b"))
    with pytest.raises(CompileError) as caught:
        load_pipeline(path)
    (diagnostic,) = caught.value.errors
    assert (diagnostic.line, diagnostic.column) == (line, 5)
    assert "merge key '<<'" in diagnostic.message
    status, output = _cli(path, tmp_path, capsys)
    assert status == 1 and "internal error" not in output


def test_a_quoted_merge_key_is_an_unknown_key(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.format(extra="    '<<': x\n", target="b"))
    with pytest.raises(CompileError) as caught:
        load_pipeline(path)
    assert "unknown key '<<'" in str(caught.value)


@pytest.mark.parametrize(
    "value", ['"b\\x1b[31mRED\\x07"', '"b\\u009b2J"', '"b\\u202eevil"', '"b\\nnext: line"']
)
def test_control_characters_in_values_are_escaped_in_diagnostics(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, BASE.format(extra="", target=value))
    with pytest.raises(CompileError) as caught:
        load_pipeline(path)
    rendered = str(caught.value)
    status, output = _cli(path, tmp_path, capsys)
    assert status == 1
    for text in (rendered, output):
        assert not any(ch in text for ch in "\x1b\x07\x9b\u202e"), repr(text)
    assert len(rendered.splitlines()) == 1  # a newline in a value cannot forge a line
    assert "\\x1b" in rendered or "\\x9b" in rendered or "\\u202e" in rendered or "\\n" in rendered


def test_diagnostic_escapes_its_file_and_message() -> None:
    diagnostic = Diagnostic("a\x1bb.yaml", 1, 2, "bad \x1b[2J value\r")
    assert str(diagnostic) == "a\\x1bb.yaml:1:2: error: bad \\x1b[2J value\\r"


NOT_UPSTREAM = """\
name: typo
state_machine:
  initial: a
  terminal: [b]
  states:
    - id: a
    - id: b
agents:
  - id: writer
    prompt: prompts/p.md
    dispatch:
      strategy: sequential
      target: reviewer
  - id: reviewer
    prompt: prompts/p.md
    on_fail:
      action: feedback_and_retry
      target: publisher
    dispatch:
      strategy: sequential
      target: publisher
  - id: publisher
    prompt: prompts/p.md
    transitions:
      on_complete: b
  - id: side
    prompt: prompts/p.md
    dispatch:
      strategy: sequential
      target: publishr
"""


def test_not_upstream_error_survives_a_dispatch_typo_elsewhere(tmp_path: Path) -> None:
    path = _write(tmp_path, NOT_UPSTREAM)
    with pytest.raises(CompileError) as caught:
        load_pipeline(path)
    messages = [d.message for d in caught.value.errors]
    assert any("dispatch target 'publishr' is not an agent" in m for m in messages), messages
    assert any("on_fail target 'publisher' is not upstream of 'reviewer'" in m for m in messages)


def test_no_not_upstream_error_when_the_typo_may_be_the_missing_link(tmp_path: Path) -> None:
    """writer -> reviewr (typo): writer might well be upstream of reviewer once fixed."""
    text = NOT_UPSTREAM.replace("target: publisher\n    dispatch", "target: writer\n    dispatch")
    text = text.replace("      target: reviewer\n", "      target: reviewr\n")
    path = _write(tmp_path, text)
    with pytest.raises(CompileError) as caught:
        load_pipeline(path)
    messages = [d.message for d in caught.value.errors]
    assert any("dispatch target 'reviewr' is not an agent" in m for m in messages), messages
    assert not any("is not upstream" in m for m in messages), messages
