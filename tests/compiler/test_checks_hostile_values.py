"""Values the corpus found accepted though they cannot work: a base_url that is not a URL
(bad IPv6 literal, CR/LF or spaces, a bad port) and a pipeline name whose module file name is
too long for the filesystem (it made the compiler exit 70 writing the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.cli import EXIT_INVALID, main

PIPELINE = """\
name: {name}
defaults:
  base_url: {base_url}
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


def _compile(tmp_path: Path, *, name: str = "values", base_url: str = "http://localhost") -> int:
    (tmp_path / "p.md").write_text("hi\n")
    (tmp_path / "values.yaml").write_text(PIPELINE.format(name=name, base_url=base_url))
    return main([str(tmp_path / "values.yaml"), "-o", str(tmp_path / "out")])


@pytest.mark.parametrize(
    "base_url",
    ['"http://[::1"', '"http://localhost/\\r\\nX-Evil: 1"', '"http://a b/"', '"http://h:99999"',
     '"http://h:port"', '"http://"', '"https:///path"'],
)  # fmt: skip
def test_base_url_that_is_not_a_url_is_an_error(
    base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compile(tmp_path, base_url=base_url) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "values.yaml:3:" in err and "not an http(s) URL" in err, err


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:8080", "https://api.example.com/v1", '"http://[::1]:9000/"']
)
def test_ordinary_base_urls_compile(base_url: str, tmp_path: Path) -> None:
    assert _compile(tmp_path, base_url=base_url) == 0


def test_pipeline_name_too_long_for_a_file_name_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compile(tmp_path, name="n" * 300) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "values.yaml:1:7: error: " in err and "too long" in err, err[:300]
    assert "internal error" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field", ["name", "base_url"])
def test_lone_surrogate_in_a_value_is_an_error(
    field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A "\\ud800" escape makes text no UTF-8 file or log can hold (the run exited 70)."""
    value = '"x\\ud800y"'
    kwargs = {"name": value} if field == "name" else {"base_url": '"http://h/\\udc00"'}
    assert _compile(tmp_path, **kwargs) == EXIT_INVALID
    err = capsys.readouterr().err
    line = 1 if field == "name" else 3
    assert f"values.yaml:{line}:" in err and "surrogate" in err, err
    assert "internal error" not in err
