"""A builtin `filesystem` tool's relative `root` means the same directory on both
executors: the one `agentflow run` was started in (found by the Ray crash loop: the
actors wrote every trial's notes into the Ray cluster's own working directory)."""

from __future__ import annotations

from pathlib import Path

import ray

from tests.durable.crash_loop import CrashScript, run_reference
from tests.fake_anthropic.server import open_fake_anthropic

ITEMS = 3


async def test_a_ray_run_writes_its_workspace_where_a_local_run_does(
    ray_cluster: Path, tmp_path: Path
) -> None:
    address = ray.get_runtime_context().gcs_address
    local, remote = tmp_path / "local", tmp_path / "ray"
    async with open_fake_anthropic(CrashScript(ITEMS)) as fake:
        await run_reference(local, str(local / "store.db"), fake.base_url, ITEMS)
        await run_reference(remote, str(remote / "store.db"), fake.base_url, ITEMS, address)
    notes = {p.name: p.read_text() for p in (local / "workspace").iterdir()}
    assert len(notes) >= ITEMS  # one note an item's worker attempt
    # the Ray run's workers wrote under the directory the command ran in, as locally
    assert {p.name: p.read_text() for p in (remote / "workspace").iterdir()} == notes
