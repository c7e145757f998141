"""The run's TOPIC may come after the options, as users type it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow.runtime.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
HELLO = str(ROOT / "pipelines" / "hello_world.yaml")


def _input_of(log: Path) -> object:
    first = json.loads(log.read_text(encoding="utf-8").splitlines()[0])
    return first["payload"]["input"]


@pytest.mark.parametrize("before", [True, False])
def test_topic_before_or_after_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "run.jsonl"
    options = ["--no-ui", "--quiet", "--model", "dry-run", "--jsonl", str(log)]
    argv = ["run", HELLO, *(["the topic", *options] if before else [*options, "the topic"])]
    assert main(argv) == 0
    assert _input_of(log) == "the topic"


def test_two_stray_words_are_still_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        main(["run", HELLO, "--no-ui", "one", "two"])
    assert caught.value.code == 2
    assert "unrecognized arguments: one two" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
