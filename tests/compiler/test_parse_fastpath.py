"""The fast YAML path in compiler/parse.py must agree with strictyaml exactly.

The fast path only ever accepts a document (anything unusual falls back to
strictyaml, which owns every error message), so on every input both paths
must give the same data and source positions, or the same diagnostics.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agentflow.compiler import parse
from agentflow.compiler.diagnostics import CompileError

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted(ROOT.glob("pipelines/*.yaml")) + sorted(ROOT.glob("tests/compiler/invalid/*.yaml"))
EXTRA = [
    "name: x\nagents: []\n",
    "name: x\ntools:\nagents:\n",
    "name: 'a'\ndescription: |\n  hello\n  world\n",
    "name: x\ndefaults:\n  retry:\n    max_attempts: 1_0\n",
    "name: x\ntools:\n  - id: t\n    config: {}\n",
    "%YAML 1.2\n---\nname: x\n",
    "? name\n: x\n",
    "name: x\n# c\n\n  # c2\nentry: y # t\n",
]
TOKENS = [":", " ", "#", "'", '"', "[", "]", "{", "}", "|", ">", "&a", "*a", "!t", "- ", "\t",
          "\n", "  ", "0", "1.5", ".inf", "_", ",", "?", "\\", "%", "~", "<<: "]  # fmt: skip


def _outcome(text: str) -> tuple[object, ...]:
    try:
        result = parse.parse_text(text, "f.yaml")
    except CompileError as exc:
        return ("error", str(exc))
    return ("ok", result.data, result.source.keys, result.source.values)


def _both(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[object, ...], ...]:
    fast = _outcome(text)
    with monkeypatch.context() as patch:
        patch.setattr(parse, "_fast_parse", lambda text, path: None)
        slow = _outcome(text)
    return fast, slow


def _mutate(rnd: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rnd.randint(1, 3)):
        op, i = rnd.random(), rnd.randrange(len(lines))
        if op < 0.2 and len(lines) > 1:
            del lines[i]
        elif op < 0.35:
            lines.insert(i, lines[rnd.randrange(len(lines))])
        elif op < 0.5:
            lines[i] = " " * rnd.randint(1, 3) + lines[i]
        else:
            j = rnd.randint(0, len(lines[i]))
            lines[i] = lines[i][:j] + rnd.choice(TOKENS) + lines[i][j:]
    return "\n".join(lines)


def test_the_example_pipelines_take_the_fast_path() -> None:
    for path in sorted(ROOT.glob("pipelines/*.yaml")):
        assert parse._fast_parse(path.read_text(), str(path)) is not None, path


def test_fast_and_strictyaml_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(20261125)
    seeds = [p.read_text(errors="replace") for p in SEEDS] + EXTRA
    cases = seeds + [_mutate(rnd, rnd.choice(seeds)) for _ in range(200)]
    mismatches = [text for text in cases if len(set(map(repr, _both(text, monkeypatch)))) != 1]
    assert mismatches == []
