"""Shared helpers for the DSL v2 compiler tests: compile YAML text, collect diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.load import LoadedPipeline, load_pipeline_text

HEAD = """\
name: v2-test
agents:
"""


def compile_text(text: str, base: Path, prompts: dict[str, str] | None = None) -> LoadedPipeline:
    for name, body in (prompts or {"p.md": "Do {{ input }}.\n"}).items():
        (base / name).write_text(body)
    return load_pipeline_text(text, "v.yaml", base)


def errors(text: str, base: Path, prompts: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(CompileError) as caught:
        compile_text(text, base, prompts)
    return [str(d) for d in caught.value.diagnostics if d.severity == "error"]


def line_of(text: str, snippet: str) -> int:
    return text[: text.index(snippet)].count("\n") + 1
