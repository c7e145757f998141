"""Where agentflow's time goes in the peer harness's workloads: one piece taken out at a time.

Runs workload A (the review loop) or B (a fan-out of `--n` items) through the harness
adapter (bench/peers_agentflow.py, the audit log on, as `agentflow` in the harness's
tables) and reports CPU microseconds a run (A) or a node (B), the best of `--rounds`.
Each mode removes one piece, so the differences between modes are what each piece costs:

    normal    the harness's configuration: `RunOptions(audit_log=PATH)`
    nowrite   as normal, but the audit FileSink's writes do nothing (the file is still
              created, renamed over PATH and closed)
    nofile    the lines and hash chain are built for an inline sink that keeps nothing:
              no file at all
    noaudit   no sink: the hub builds no line and no hash (`AF_AUDIT=0`)
    nogc      as normal, with Python's cyclic garbage collector off while it is timed
              (what the collector's passes over the live items cost)

Run it with the harness's venv, from the repository, on an installed agentflow:

    $HOME/.peers-venv/bin/python bench/peers_ablation.py A
    $HOME/.peers-venv/bin/python bench/peers_ablation.py B --n 1000

Each mode runs in a fresh process (the harness's own warm-up first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
MODES = ("normal", "nowrite", "nofile", "noaudit", "nogc")

CHILD = r"""
import gc, json, os, sys, time
sys.path.insert(0, os.environ["VIEW"])
mode, workload, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import trio
import fw_agentflow as m
from agentflow.runtime.sinks import file as file_sink
if mode == "nowrite":
    def write_lines(self, lines):
        self.lines_written += len(lines)
    file_sink.FileSink.write_lines = write_lines
if mode == "nofile":
    class Null:
        name = "null"; audit = True; inline = True
        def write_lines(self, lines): pass
        async def emit_lines(self, lines): pass
        def close(self): pass
    options = m.RunOptions()
    def run_kwargs(max_concurrency=None):
        opts = options if max_concurrency is None else m.RunOptions(max_concurrency=max_concurrency)
        return {"options": opts, "sinks": (Null(),)}
    m.run_kwargs = run_kwargs

async def main():
    if workload == "A":
        for _ in range(200):
            await m.run_a()
        best = min([await timed_a() for _ in range(rounds)])
        print(json.dumps({"mode": mode, "us_per_run": best * 1e6}))
    else:
        await m.run_b(10)
        await m.run_b(10)
        best = min([await timed_b() for _ in range(rounds)])
        print(json.dumps({"mode": mode, "us_per_node": best / (2 * n + 2) * 1e6}))

async def timed_a():
    if mode == "nogc":
        gc.collect()
        gc.disable()
    start = time.process_time()
    for _ in range(2000):
        await m.run_a()
    spent = (time.process_time() - start) / 2000
    gc.enable()
    return spent

async def timed_b():
    gc.collect()
    if mode == "nogc":
        gc.disable()
    start = time.process_time()
    await m.run_b(n)
    spent = time.process_time() - start
    gc.enable()
    return spent

trio.run(main)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["A", "B"])
    parser.add_argument("--n", type=int, default=1000, help="fan-out width (B)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    from peers_harness import harness_view

    unit = "us/run" if args.workload == "A" else "us/node"
    with tempfile.TemporaryDirectory(prefix="peers-ablation-") as tmp:
        harness_view(Path(tmp))
        for mode in args.modes.split(","):
            env = dict(
                os.environ,
                VIEW=tmp,
                AF_AUDIT="0" if mode == "noaudit" else "1",
                PYTHONDONTWRITEBYTECODE="1",
            )
            argv = [sys.executable, "-c", CHILD, mode, args.workload, str(args.n)]
            out = subprocess.run(
                [*argv, str(args.rounds)], env=env, cwd=tmp, capture_output=True, text=True
            )
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return out.returncode
            row = json.loads(out.stdout.splitlines()[-1])
            value = row["us_per_run" if args.workload == "A" else "us_per_node"]
            print(f"{args.workload} {mode:8s} {value:8.1f} {unit} CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
