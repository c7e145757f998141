"""`agentflow run --model dry-run --route ROUTER=CASE[,CASE...] --items N`: the options,
checked before the run starts (exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentflow.runtime.cli.main import main

REPO = Path(__file__).resolve().parents[2]
HELLO = str(REPO / "pipelines" / "hello_world.yaml")
FANOUT = str(REPO / "pipelines" / "research_fanout.yaml")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI, expect exit 2 with nothing written; return the error line(s)."""
    try:
        code = main(["run", *argv, "--no-ui", "--jsonl", "run.jsonl"])
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert not Path("run.jsonl").exists()
    assert list(Path().iterdir()) == []
    assert "Traceback" not in captured.err
    return captured.err


def test_route_without_dry_run_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, HELLO, "--route", "triage=bug")
    assert "error: --route only applies to --model dry-run" in err


def test_items_without_dry_run_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, FANOUT, "--items", "5")
    assert "error: --items only applies to --model dry-run" in err


@pytest.mark.parametrize("bad", ["triage", "=bug", "triage=", "triage=bug,,billing"])
def test_a_malformed_route_is_a_usage_error(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    err = refused(capsys, HELLO, "--model", "dry-run", "--route", bad)
    assert f"argument --route: '{bad}': write ROUTER=CASE or ROUTER=CASE,CASE,..." in err


def test_a_router_given_twice_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--model", "dry-run", "--route", "triage=bug", "--route", "triage=billing")
    err = refused(capsys, HELLO, *argv)
    assert "error: --route triage is given twice; give its cases once: --route triage=A,B" in err


def test_a_route_for_an_agent_that_does_not_route_is_refused_before_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = refused(capsys, HELLO, "--model", "dry-run", "--route", "writer_agent=done")
    assert err.splitlines()[-1] == (
        "agentflow: error: --route writer_agent=done: 'writer_agent' is not a router "
        "(no `strategy: route`); the routers of pipeline 'hello-world': none"
    )


def test_items_sets_the_fan_out_width(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", FANOUT, "x", "--model", "dry-run", "--items", "5", "--no-ui", "--quiet"]
    assert main([*argv, "--jsonl", "run.jsonl"]) == 0, capsys.readouterr()
    events = [json.loads(line) for line in Path("run.jsonl").read_text().splitlines()]
    assert sum(e["kind"] == "item_created" for e in events) == 5
