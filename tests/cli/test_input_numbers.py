"""`--input` JSON the audit log could not record is a usage error, never exit 70."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentflow.runtime.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
HELLO = str(ROOT / "pipelines" / "hello_world.yaml")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"n": 1' + "0" * 5000 + "}", "a number in it is too long"),
        ('{"f": 1e999}', "the number 1e999 is out of range"),
        ('{"f": -1e999}', "the number -1e999 is out of range"),
        ('{"f": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ("[" * 200_000 + "]" * 200_000, "its JSON nests too deeply"),
    ],
)
def test_unrecordable_json_input_is_a_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    says: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.json").write_text(text, encoding="utf-8")
    log = tmp_path / "run.jsonl"
    code = main(["run", HELLO, "--no-ui", "--model", "dry-run", "--input", "@in.json",
                 "--jsonl", str(log)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"--input: {says}" in err and "internal error" not in err
    assert not log.exists()


def test_text_that_only_looks_like_json_is_still_the_input(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    assert main(["run", HELLO, "--no-ui", "--quiet", "--model", "dry-run",
                 "--input", "[not json", "--jsonl", str(log)]) == 0  # fmt: skip
    assert '"input":"[not json"' in log.read_text(encoding="utf-8").splitlines()[0]


FLOAT_INPUT = """\
name: float-input
input:
  f: float
  nested: {type: object, fields: {g: list[float]}}
agents:
  - id: a
    instructions: "{{ input.f }}"
"""


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"f": float("inf"), "nested": {"g": []}}, "'f'"),
        ({"f": 1.0, "nested": {"g": [0.5, float("nan")]}}, "'nested.g[1]'"),
    ],
)
async def test_a_library_input_with_a_non_finite_float_is_refused(
    tmp_path: Path, given: dict[str, object], field: str
) -> None:
    from types import MappingProxyType

    from agentflow.runtime import RunOptions
    from agentflow.runtime.cli.compiled_loader import compile_and_import
    from agentflow.runtime.errors import AgentflowError
    from agentflow.runtime.models.dry_run import DryRunModel

    (tmp_path / "p.yaml").write_text(FLOAT_INPUT, encoding="utf-8")
    module = compile_and_import(tmp_path / "p.yaml").module
    log = tmp_path / "run.jsonl"
    with pytest.raises(AgentflowError, match=rf"field {re.escape(field)}: NaN or an infinity"):
        await module.run(
            MappingProxyType(given), model=DryRunModel(), options=RunOptions(audit_log=log)
        )
    assert not log.exists()
    ok = await module.run(
        MappingProxyType({"f": 2.5, "nested": {"g": [1.0]}}),
        model=DryRunModel(),
        options=RunOptions(audit_log=log),
    )
    assert ok.ok
