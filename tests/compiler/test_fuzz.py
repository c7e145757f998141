"""Fuzz the front end: mutated example pipelines either compile (and emit valid Python) or
raise CompileError with diagnostics -- never any other exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.load import load_pipeline_text

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"
EXAMPLES = [p.read_text() for p in sorted(PIPELINES.glob("*.yaml"))]
KEYS = sorted(
    {
        line.split(":")[0].strip(" -")
        for text in EXAMPLES
        for line in text.splitlines()
        if ":" in line and not line.lstrip().startswith("#")
    }
)
WORDS = [*KEYS, "writer_agent", "reviewer_agent", "complete", "running", "[]", "{}", "''", "0",
         "-1", "1.5", "if", "aggregation", "$.issues", "$.passed", "x:y", "a.b:C", "- ", ": ", "&a",
         "*a", "!!str", "{{ input }}", "\t", "\ufeff", "\x08", "é"]  # fmt: skip

try:
    from agentflow.compiler.emit import emit_module
except ImportError:  # pragma: no cover - emit is built by another stage
    emit_module = None  # type: ignore[assignment]


Mutation = tuple[str, int, int, str]


def _apply(text: str, mutation: Mutation) -> str:
    kind, a, b, word = mutation
    lines = text.split("\n")
    i, j = a % len(lines), b % len(lines)
    if kind == "drop":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "indent":
        lines[i] = " " * (b % 5) + lines[i].lstrip() if b % 2 else lines[i][b % 3 :]
    elif kind == "replace_value" and ":" in lines[i]:
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {word}"
    elif kind == "replace_key" and ":" in lines[i]:
        indent = len(lines[i]) - len(lines[i].lstrip(" -"))
        lines[i] = lines[i][:indent] + word + ":" + lines[i].split(":", 1)[1]
    elif kind == "insert":
        pos = b % (len(text) + 1)
        return text[:pos] + word + text[pos:]
    elif kind == "truncate":
        return text[: b % (len(text) + 1)]
    return "\n".join(lines)


mutations = st.tuples(
    st.sampled_from(
        [
            "drop",
            "duplicate",
            "swap",
            "indent",
            "replace_value",
            "replace_key",
            "insert",
            "truncate",
        ]
    ),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.one_of(st.sampled_from(WORDS), st.text(max_size=12)),
)


def _compile_or_diagnose(text: str) -> None:
    try:
        loaded = load_pipeline_text(text, "fuzz.yaml", PIPELINES)
    except CompileError as exc:
        assert exc.diagnostics, "a CompileError must carry at least one diagnostic"
        assert any(d.severity == "error" for d in exc.diagnostics)
        for diagnostic in exc.diagnostics:
            assert diagnostic.line >= 1 and diagnostic.column >= 1
            assert "\n" not in diagnostic.message
        return
    if emit_module is not None:
        compile(emit_module(loaded), "fuzz.py", "exec")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(st.sampled_from(EXAMPLES), st.lists(mutations, min_size=1, max_size=4))
def test_mutated_examples_compile_or_raise_compile_error(
    source: str, changes: list[Mutation]
) -> None:
    text = source
    for change in changes:
        text = _apply(text, change)
    _compile_or_diagnose(text)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text: str) -> None:
    _compile_or_diagnose(text)


@pytest.mark.parametrize("source", EXAMPLES)
def test_every_truncation_of_an_example_is_handled(source: str) -> None:
    for end in range(0, len(source), max(1, len(source) // 25)):
        _compile_or_diagnose(source[:end])
