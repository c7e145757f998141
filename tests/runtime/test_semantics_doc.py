"""docs/semantics.md names a test for each rule: every name it cites must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHORT = {
    "engine": "test_engine.py",
    "fanout": "test_engine_fanout.py",
    "review": "test_engine_review.py",
    "runner": "test_agent_runner.py",
    "pipelines": "test_semantics_pipelines.py",
    "route": "test_engine_route.py",
    "join": "test_engine_join.py",
    "reduce": "test_engine_reduce.py",
    "sub": "test_subpipeline.py",
}


def test_every_cited_test_exists() -> None:
    doc = (ROOT / "docs" / "semantics.md").read_text()
    cited = re.findall(r"([\w.]+)::(test_\w+)", doc) + [
        (m, None) for m in re.findall(r"\[(test_\w+\.py)\]", doc)
    ]
    assert len(cited) >= 30
    for module, name in cited:
        path = ROOT / "tests" / "runtime" / SHORT.get(module, module)
        assert path.exists(), f"semantics.md cites missing file {path.name}"
        if name is not None:
            assert re.search(rf"def {name}\b", path.read_text()), f"{path.name}::{name} missing"
