"""The crash-loop property test (tests/durable/test_crash_loop.py) over the Ray executor:
`agentflow run --executor ray --ray-address <the test cluster>` on the 12-item fan-out
(real CLI and SDK; the actors call the fake API), SIGKILLed at seeded random moments and
`agentflow resume`d (which re-creates the run's Ray executor from its recorded options)
until it finishes. Every trial: each item finished exactly once, the log verifies and is
the store's events, the result is an uninterrupted *local* run's, and no call whose
response was committed is made again (tests/durable/crash_loop.py says how each is
checked). `bench/bench_crash_loop.py --executor ray` is the same as a soak.
"""

from __future__ import annotations

from pathlib import Path

import ray
import trio

from tests.durable.crash_loop import (
    CallCounts,
    CrashScript,
    Trial,
    check_trial,
    check_with_cli,
    describe,
    read_request_log,
    run_reference,
    run_trial,
)
from tests.fake_anthropic.server import open_fake_anthropic

ITEMS = 12
SEEDS = (3, 5, 7, 9)  # 1, 3, 2 and 2 kills; each process joins the cluster (seconds)
MAX_KILLS = 3
AT_ONCE = 2


async def test_seeded_crash_loops_on_ray_repeat_no_committed_call(
    ray_cluster: Path, tmp_path: Path
) -> None:
    address = ray.get_runtime_context().gcs_address
    log = tmp_path / "requests.jsonl"
    trials: list[Trial] = []
    limiter = trio.CapacityLimiter(AT_ONCE)
    async with open_fake_anthropic(CrashScript(ITEMS), request_log=log) as fake:
        # the reference runs locally: a crash-looped Ray run must end as a local one does
        reference = await run_reference(
            tmp_path / "reference", str(tmp_path / "reference" / "store.db"), fake.base_url, ITEMS
        )

        async def one(seed: int) -> None:
            async with limiter:
                directory = tmp_path / f"trial-{seed}"
                trial = await run_trial(
                    seed, directory, str(directory / "store.db"), fake.base_url, items=ITEMS,
                    reference_events=reference.events, max_kills=MAX_KILLS, ray_address=address,
                )  # fmt: skip
                trials.append(trial)

        async with trio.open_nursery() as nursery:
            for seed in SEEDS:
                nursery.start_soon(one, seed)
    request_log = read_request_log(log)
    trials.sort(key=lambda t: t.seed)
    counts: list[CallCounts] = []
    for trial in trials:
        try:
            counts.append(check_trial(trial, reference, request_log))
        except AssertionError as exc:
            raise AssertionError("\n".join([str(exc), *describe(trial)])) from None
    assert [t.seed for t in trials] == list(SEEDS)
    assert all(t.kills >= 1 for t in trials)  # every trial was killed at least once
    assert sum(c.repeated_after_commit for c in counts) == 0
    await check_with_cli(trials[0])
    print(  # for the record under -s (bench/RESULTS.md)
        f"\nRay crash loop: {len(trials)} trials, {sum(t.kills for t in trials)} kills, "
        f"{sum(c.committed for c in counts)} committed calls, "
        f"{sum(c.repeated_after_commit for c in counts)} repeated after commit, "
        f"{sum(c.repeated_in_window for c in counts)} repeated in the crash window"
    )
    for trial in trials:
        print("\n".join([f"trial {trial.seed}:", *describe(trial)]))
