"""The Ray group's gate: without the `ray` extra this module is skipped with the reason
(and the group's other modules are not collected: tests/ray/conftest.py); with it, the
session's local cluster starts with the model-call resource the executor bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip(
    "ray", reason="the ray extra is not installed: pip install -e '.[dev,ray]' (CI installs it)"
)


def test_the_local_cluster_offers_the_model_call_resource(ray_cluster: Path) -> None:
    from agentflow.runtime.executors.ray_executor import MODEL_CALLS_RESOURCE

    assert ray.cluster_resources().get(MODEL_CALLS_RESOURCE) == 4
    assert ray.cluster_resources().get("CPU") == 2
