"""Every file in tests/compiler/invalid/ fails to compile with the diagnostic its first line names.

Each corpus file starts with `# expect: <exact diagnostic line>`; paths in it are
relative to the repository root, where this test runs the compiler.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.cli import EXIT_INVALID, main

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "compiler" / "invalid").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first.removeprefix("# expect: ")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_invalid_pipeline_reports_expected_diagnostic(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT)
    status = main([str(path.relative_to(ROOT)), "-o", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == EXIT_INVALID, err
    assert _expected(path) in err.splitlines(), err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.split(",")[0].endswith(("error", "errors")), last
    assert out == ""
    assert list(tmp_path.iterdir()) == []
