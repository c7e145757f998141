"""The crash-loop property test (DURABLE.md "Resume"): `agentflow run` on a 12-item fan-out
(real CLI, real SDK, streamed responses from the fake API), SIGKILLed at seeded random
moments and resumed with `agentflow resume` until it finishes, over 30 seeded trials on
SQLite and one on PostgreSQL. Every trial: each item finished exactly once, the log
verifies and is the store's events, the result is an uninterrupted run's, and no call
whose response was committed is made again (tests/durable/crash_loop.py says how each
is checked). `bench/bench_crash_loop.py --runs N` is the same as a soak.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.fake_anthropic.server import open_fake_anthropic

from .crash_loop import (
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

ITEMS = 12
TRIALS = 30
MAX_KILLS = 2  # kills a trial, at most (each process pays ~1 CPU-s of imports)
AT_ONCE = 2  # trials in flight together (the machine is shared: keep it small)


async def _crash_loop(
    tmp_path: Path, reference_store: str, trial_stores: dict[int, str], max_kills: int = MAX_KILLS
) -> tuple[list[Trial], list[CallCounts]]:
    """Run a trial a seed (on its store), `AT_ONCE` at a time; check them all; the
    trials and their call counts, in seed order."""
    log = tmp_path / "requests.jsonl"
    trials: list[Trial] = []
    limiter = trio.CapacityLimiter(AT_ONCE)
    async with open_fake_anthropic(CrashScript(ITEMS), request_log=log) as fake:
        reference = await run_reference(
            tmp_path / "reference", reference_store, fake.base_url, ITEMS
        )

        async def one(seed: int, store_url: str) -> None:
            async with limiter:
                trial = await run_trial(
                    seed, tmp_path / f"trial-{seed}", store_url, fake.base_url,
                    items=ITEMS, reference_events=reference.events, max_kills=max_kills,
                )  # fmt: skip
                trials.append(trial)

        async with trio.open_nursery() as nursery:
            for seed, store_url in trial_stores.items():
                nursery.start_soon(one, seed, store_url)
    request_log = read_request_log(log)
    trials.sort(key=lambda t: t.seed)
    counts: list[CallCounts] = []
    for trial in trials:
        try:
            counts.append(check_trial(trial, reference, request_log))
        except AssertionError as exc:
            raise AssertionError("\n".join([str(exc), *describe(trial)])) from None
    return trials, counts


async def test_30_seeded_crash_loops_on_sqlite_repeat_no_committed_call(tmp_path: Path) -> None:
    stores = {seed: str(tmp_path / f"trial-{seed}" / "store.db") for seed in range(1, TRIALS + 1)}
    reference_store = str(tmp_path / "reference" / "store.db")
    trials, counts = await _crash_loop(tmp_path, reference_store, stores)
    assert [t.seed for t in trials] == list(stores)
    assert all(t.kills >= 1 for t in trials)  # every trial was killed at least once
    assert sum(c.repeated_after_commit for c in counts) == 0
    # the commands agree with the checks' own functions
    await check_with_cli(trials[0])
    print(  # what the soak reports (bench/bench_crash_loop.py), for the record under -s
        f"\ncrash loop: {TRIALS} trials, {sum(t.kills for t in trials)} kills, "
        f"{sum(c.committed for c in counts)} committed calls, "
        f"{sum(c.repeated_after_commit for c in counts)} repeated after commit, "
        f"{sum(c.repeated_in_window for c in counts)} repeated in the crash window, "
        f"{sum(t.export_lagged for t in trials)} finished runs whose JSONL resume repaired, "
        f"{sum(t.unsealed for t in trials)} finished runs resume sealed"
    )


async def test_a_crash_loop_on_postgresql(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from tests.store.conftest import new_pg_database

    server = request.getfixturevalue("pg_server")
    reference_store, trial_store = new_pg_database(server), new_pg_database(server)
    trials, counts = await _crash_loop(tmp_path, reference_store, {7: trial_store}, max_kills=2)
    assert trials[0].kills >= 1 and counts[0].repeated_after_commit == 0
    await check_with_cli(trials[0])
    print("\n".join(["", f"PostgreSQL trial: {counts[0]}", *describe(trials[0])]))
