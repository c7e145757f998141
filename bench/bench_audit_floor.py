"""What the audit log's file operations cost on this machine's filesystem, alone.

A run with `RunOptions(audit_log=PATH)` opens a new file beside PATH (`O_CREAT |
O_EXCL`), renames it over PATH, writes its bursts (workload A of the peer harness: 6
writes of about 700 bytes) and closes it (runtime/sinks/file.py). This times each of
those system calls in a loop of `--runs`, in CPU and wall microseconds, beside the
alternatives: truncating one file in place (what issue 12 measured first), unlinking
the old log and creating PATH itself, and opening one file for appending (no new
inode; what `[audit-append]` in the peer harness does). Nothing of agentflow runs: this
is the floor its audit log cannot go under on the filesystem given.

Usage:  python bench/bench_audit_floor.py [--dir /tmp] [--runs 3000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

FLAGS_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
FLAGS_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
LINE_BURST = b"x" * 700
WRITES = 6


@contextmanager
def timed(totals: dict[str, list[float]], name: str) -> Iterator[None]:
    """Add the block's CPU and wall seconds to `totals[name]`."""
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    cells = totals.setdefault(name, [0.0, 0.0])
    cells[0] += time.process_time() - cpu
    cells[1] += time.perf_counter() - wall


def write_and_close(totals: dict[str, list[float]], fd: int) -> None:
    for _ in range(WRITES):
        with timed(totals, f"{WRITES} writes"):
            os.write(fd, LINE_BURST)
    with timed(totals, "close"):
        os.close(fd)


def report(title: str, totals: dict[str, list[float]], runs: int) -> None:
    print(f"{title}:")
    for name, (cpu, wall) in totals.items():
        print(f"  {name:34s} {cpu / runs * 1e6:7.1f} us CPU {wall / runs * 1e6:7.1f} us wall")
    cpu = sum(c for c, _ in totals.values())
    print(f"  {'a run in all':34s} {cpu / runs * 1e6:7.1f} us CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write (default: $TMPDIR)")
    parser.add_argument("--runs", type=int, default=3000)
    args = parser.parse_args()
    runs = args.runs
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "audit.jsonl")
        print(f"filesystem of {tmp}; {runs} runs of {WRITES} writes of {len(LINE_BURST)} bytes")

        totals: dict[str, list[float]] = {}
        for run in range(runs):  # what FileSink(replace=True) does
            pending = os.path.join(tmp, f".audit.jsonl.{os.getpid()}-{run}.new")
            with timed(totals, "open a new file (O_EXCL)"):
                fd = os.open(pending, FLAGS_NEW)
            with timed(totals, "rename it over the log"):
                os.rename(pending, path)
            write_and_close(totals, fd)
        report("a new file per run, renamed over the log (agentflow)", totals, runs)

        totals = {}
        for _ in range(runs):
            with timed(totals, "open with O_TRUNC"):
                fd = os.open(path, FLAGS_APPEND | os.O_TRUNC)
            write_and_close(totals, fd)
        report("truncating the log in place", totals, runs)

        totals = {}
        for _ in range(runs):
            with timed(totals, "unlink the old log"):
                os.unlink(path)
            with timed(totals, "create the log (O_EXCL)"):
                fd = os.open(path, FLAGS_NEW)
            write_and_close(totals, fd)
        report("unlink, then create the log", totals, runs)

        totals = {}
        for _ in range(runs):
            with timed(totals, "open for appending"):
                fd = os.open(path, FLAGS_APPEND)
            write_and_close(totals, fd)
        report("one file, appended to by every run", totals, runs)


if __name__ == "__main__":
    main()
