"""The Ray group: one small local cluster for the whole session (Ray starts in seconds
to tens of seconds here), every test marked `ray`. Skipped, with the reason, only when
the `ray` extra is not installed (`pip install -e '.[dev,ray]'`; CI installs it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .handlers import KILL_MARKER_ENV

try:
    import ray  # noqa: F401  (only whether it imports)
except ModuleNotFoundError:
    # A skip raised in a conftest is a collection error: without the extra, collect
    # only test_ray_available.py, whose module-level importorskip says why.
    collect_ignore_glob = ["test_ray_[!a]*.py"]

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local cluster of 2 CPUs and 4 model-call units; yields the kill-marker path
    the workers see (`handlers.die_once`)."""
    import ray

    from agentflow.runtime.executors.ray_executor import MODEL_CALLS_RESOURCE

    marker = tmp_path_factory.mktemp("ray") / "killed-once"
    # the cluster's processes (and so every job's workers, an `agentflow run` that joins
    # it included) can import what this process can: tests.ray.handlers
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(sys.path)
    ray.init(
        num_cpus=2,
        resources={MODEL_CALLS_RESOURCE: 4},
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": os.pathsep.join(sys.path), KILL_MARKER_ENV: str(marker)}
        },
    )
    if saved is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = saved
    try:
        yield marker
    finally:
        ray.shutdown()
