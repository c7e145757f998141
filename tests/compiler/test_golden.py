"""Golden files: the emitted source of each example and focused case, byte for byte.

The examples' golden files are `generated/` itself (committed, and what CI's
`agentflowc pipelines/*.yaml --check` compares); the focused cases live in
`tests/golden/cases/`. `UPDATE_GOLDEN=1 pytest tests/compiler/test_golden.py`
rewrites both (review the diff).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from agentflow.compiler.emit import emit_module, module_name
from agentflow.compiler.load import load_pipeline

from .emit_helpers import ROOT, pipeline_files

GOLDEN = ROOT / "tests" / "golden"
CASES = sorted(p.name for p in (GOLDEN / "cases").iterdir() if (p / "pipeline.yaml").exists())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # source paths in headers are relative to the repository


def check_golden(source: str, expected: Path) -> None:
    if UPDATE:
        expected.write_text(source, encoding="utf-8")
    assert expected.exists(), f"{expected} is missing; run with UPDATE_GOLDEN=1"
    assert source == expected.read_text(encoding="utf-8"), (
        f"emitted code differs from {expected.relative_to(ROOT)}; "
        "if the change is intended, regenerate with UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("case", CASES)
def test_focused_cases(case: str) -> None:
    loaded = load_pipeline(f"tests/golden/cases/{case}/pipeline.yaml")
    expected = GOLDEN / "cases" / case / "expected.py"
    check_golden(emit_module(loaded, expected.parent), expected)


@pytest.mark.parametrize("path", pipeline_files())
def test_generated_modules_are_up_to_date(path: str) -> None:
    loaded = load_pipeline(path)
    expected = ROOT / "generated" / f"{module_name(loaded.spec)}.py"
    check_golden(emit_module(loaded, expected.parent), expected)


def test_every_generated_module_has_a_pipeline() -> None:
    names = {module_name(load_pipeline(p).spec) for p in pipeline_files()}
    assert {p.stem for p in (ROOT / "generated").glob("*.py")} - {"__init__"} == names


def test_golden_cases_import_and_agree_with_their_ir(tmp_path: Path) -> None:
    """The focused cases run too (plugins aside, which name modules that do not exist)."""
    for case in ("nested_fanout", "long_names"):
        loaded = load_pipeline(f"tests/golden/cases/{case}/pipeline.yaml")
        namespace: dict[str, object] = {"__name__": f"golden_{case}"}
        sys.modules[f"golden_{case}"] = type(sys)(f"golden_{case}")
        try:
            exec(compile(emit_module(loaded), case, "exec"), namespace)
        finally:
            sys.modules.pop(f"golden_{case}", None)
        assert namespace["PIPELINE"] == loaded.spec
