"""Crash-loop soak: the property test of tests/durable/test_crash_loop.py over many seeds.

Each trial starts `agentflow run` on a fan-out of --items work items (the real CLI and
SDK against the fake Anthropic API in this process, streamed responses), SIGKILLs it at
seeded random moments (after a random number of committed events, or a random delay),
and `agentflow resume`s it (killed again, up to --max-kills times) until it finishes;
then checks it (tests/durable/crash_loop.py): every item finished exactly once, the log
verifies and is the store's events, the result is an uninterrupted run's, and no call
whose response was committed was made again.

Prints, over all trials: kills, calls the fake API answered, calls committed, calls
repeated after their response was committed (must be 0), calls repeated in the crash
window (asked before a kill, not committed, asked again; "logged twice": the first
response's event was committed without its memo row, so the log and the usage hold
both), and any trial that failed.
Exit 1 if any trial failed.

With --executor ray, every `agentflow run` (and so every resume) runs its agents on a
Ray cluster: --ray-address, or a local one this script starts (2 CPUs); each segment
gives its actors its API key through a Ray job runtime_env (tests/durable/crash_loop.py).

Usage:  .venv/bin/python bench/bench_crash_loop.py --runs 200 [--items 12]
            [--store sqlite|postgresql] [--max-kills 3] [--at-once 2] [--first-seed 1]
            [--executor local|ray] [--ray-address ADDR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.durable.crash_loop import (
    CallCounts,
    CrashScript,
    Reference,
    Trial,
    check_trial,
    describe,
    read_request_log,
    run_reference,
    run_trial,
)
from tests.fake_anthropic.server import open_fake_anthropic


class Stores:
    """A new store for each trial: a SQLite file, or a database on a throwaway PostgreSQL."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind, self.root, self.server = kind, root, None
        if kind == "postgresql":
            from tests.store.pg_server import find_pg_bin, start_pg_server

            pg_bin = find_pg_bin()
            if pg_bin is None:
                raise SystemExit("postgresql: no binaries (apt-get install postgresql)")
            self.server = start_pg_server(pg_bin)

    def new(self, name: str) -> str:
        if self.server is None:
            return str(self.root / name / "store.db")
        import psycopg

        database = f"crash_{name.replace('-', '_')}"
        with psycopg.connect(self.server.url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {database}")
        return self.server.database_url(database)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def ray_cluster(address: str | None) -> str:
    """Join the cluster at `address`, or start a local one; its address for the CLI."""
    import ray

    if address is not None:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    return str(ray.get_runtime_context().gcs_address)


async def soak(
    args: argparse.Namespace, root: Path, stores: Stores, ray_address: str | None
) -> int:
    log = root / "requests.jsonl"
    trials: list[Trial] = []
    limiter = trio.CapacityLimiter(args.at_once)
    started = time.perf_counter()
    async with open_fake_anthropic(CrashScript(args.items), request_log=log) as fake:
        reference: Reference = await run_reference(
            root / "reference", stores.new("reference"), fake.base_url, args.items
        )
        print(f"reference run: {reference.events} events, uninterrupted, local executor")

        async def one(seed: int) -> None:
            async with limiter:
                trial = await run_trial(
                    seed, root / f"trial-{seed}", stores.new(f"trial-{seed}"), fake.base_url,
                    items=args.items, reference_events=reference.events,
                    max_kills=args.max_kills, ray_address=ray_address,
                )  # fmt: skip
                trials.append(trial)
                if args.verbose:
                    print(f"trial {seed}: {trial.kills} kills")
                    print("\n".join(describe(trial)))

        async with trio.open_nursery() as nursery:
            for seed in range(args.first_seed, args.first_seed + args.runs):
                nursery.start_soon(one, seed)
    wall = time.perf_counter() - started
    request_log = read_request_log(log)
    total = CallCounts()
    failures: list[str] = []
    for trial in sorted(trials, key=lambda t: t.seed):
        try:
            counts = check_trial(trial, reference, request_log)
        except AssertionError as exc:
            failures.append("\n".join([f"trial {trial.seed}: {exc}", *describe(trial)]))
            continue
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(counts, name))
    kills = sum(t.kills for t in trials)
    segments = sum(len(t.segments) for t in trials)
    print(
        f"{len(trials)} trials ({args.items} items each, store {args.store}, "
        f"executor {args.executor}, "
        f"up to {args.max_kills} kills a trial) in {wall:.0f} s wall"
    )
    print(f"  kills:                          {kills} ({segments} processes)")
    print(f"  calls the fake API answered:    {total.requests}")
    print(f"  calls committed:                {total.committed}")
    print(f"  repeated after commit:          {total.repeated_after_commit}  (must be 0)")
    print(f"  repeated in the crash window:   {total.repeated_in_window}")
    print(
        f"    of which logged twice:        {total.responses_counted_twice}"
        "  (response event committed, memo row not)"
    )
    lagged = sum(t.export_lagged for t in trials)
    print(f"  finished at a kill, JSONL export lagging the store, repaired by resume: {lagged}")
    unsealed = sum(t.unsealed for t in trials)
    print(f"  finished at a kill, log never sealed (store too), sealed by resume: {unsealed}")
    print(f"  trials that failed a check:     {len(failures)}")
    for failure in failures:
        print(failure)
    return 1 if failures or total.repeated_after_commit else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="trials (default 200)")
    parser.add_argument("--items", type=int, default=12, help="work items of the fan-out")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--max-kills", type=int, default=3, help="kills a trial, at most")
    parser.add_argument("--at-once", type=int, default=2, help="trials in flight together")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--ray-address", help="with --executor ray: default a local cluster")
    parser.add_argument("--verbose", action="store_true", help="each trial's segments")
    parser.add_argument("--keep", action="store_true", help="keep the trials' directories")
    args = parser.parse_args()
    if args.ray_address and args.executor != "ray":
        parser.error("--ray-address needs --executor ray")
    root = Path(tempfile.mkdtemp(prefix="agentflow-crash-loop-"))
    stores = Stores(args.store, root)
    code = 1
    try:
        address = ray_cluster(args.ray_address) if args.executor == "ray" else None
        code = trio.run(soak, args, root, stores, address)
    finally:
        stores.close()
        if args.keep or code != 0:  # a failing trial's directory holds each process's output
            print(f"trials kept in {root}")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
