"""Fuzz the compiler with mutants of the example pipelines and the hostile corpus.

    .venv/bin/python bench/fuzz_pipelines.py                     # --mutants 10000 --seed 1
    .venv/bin/python bench/fuzz_pipelines.py --mutants 500 --seed 7 --offenders /tmp/fuzz

Each mutant applies 1-4 mutations (mostly one) to a source pipeline: 60% of the
time a valid one (pipelines/*.yaml and the corpus's valid entries), else an
invalid corpus entry (sources up to --max-source-bytes): the line mutations of
tests/compiler/test_fuzz.py (drop, duplicate, swap, indent, value and key
replacement, insertion, truncation) with its words plus hostile values and
keys, and byte-level flips and insertions (NUL, invalid UTF-8, BOM, CR, ESC).
`agentflowc MUTANT -o out` runs on each, then `--explain` and `--graph
mermaid` on the mutants that compile, every command in a forked child of this
warm process (tests/hostile/harness.py) with a memory cap and a per-command
timeout, in a workspace holding the corpus prompts, a FIFO, symlinks out of the
directory and canary plugin modules.

Counts: compiled ok, clean errors (a `file:line:col: error:` diagnostic),
errors without a location, tracebacks / uncaught exceptions, exit 70, other
exit codes, crashes (signals), hangs, raw control characters in output, canary
executions and secret leaks. Every mutant that is not "compiled ok" or "clean
error" is written to the offenders directory (the mutant, and what happened)
for repro with `agentflowc`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package: the fuzz mutations and the hostile harness

from tests.compiler.test_fuzz import KEYS, WORDS, _apply  # noqa: E402
from tests.hostile.harness import (  # noqa: E402
    CORPUS,
    CommandOutcome,
    Workspace,
    canaries,
    leaks,
    raw_controls,
    run_forked,
)

HOSTILE_VALUES = [
    "-1", "0", ".nan", "1e999", "-.inf", "100000000000000000000000000000", "0x10", "1_000",
    "~", "null", "true", "[]", "{}", "[[[[[[[[]]]]]]]]", '""', "''", "'\\x00'", '"\\e[31m"',
    '"\\u202e"', '"\\u200b"', '"\\ud800"', "&a x", "*a", "!!python/object/apply:os.system [x]",
    "!!binary aGk=", "os:system", "builtins:eval", "hostile_canary:Boom",
    "hostile_canary_import:Tool", "/proc/self/environ", "/dev/zero", "prompts/fifo.md",
    "../outside/secret.md", "prompts/escape_link.md", "prompts/jinja_lipsum_globals.md",
    "prompts/huge.md", "class", "__import__", "aggregation", "$..x", "http://", "x" * 3000,
]  # fmt: skip
HOSTILE_KEYS = [*KEYS, "<<", "? [a, b]", "? {a: 1}", "__class__", "class", "name name", "~", "1"]
HOSTILE_BYTES = [b"\x00", b"\xff", b"\xc0\xaf", b"\xef\xbb\xbf", b"\r", b"\t", b"\x1b[2J", b"\x85"]
LINE_KINDS = ["drop", "duplicate", "swap", "indent", "replace_value", "replace_key", "insert",
              "truncate"]  # fmt: skip
_DIAGNOSTIC = re.compile(r"^.+?:\d+:\d+: error: \S", re.MULTILINE)


def sources(max_bytes: int) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(valid, invalid) sources: the examples and the corpus's valid entries, its invalid ones."""
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    valid = sorted((ROOT / "pipelines").glob("*.yaml"))
    valid += [CORPUS / n for n, meta in sorted(manifest.items()) if meta["expect"] != "error"]
    invalid = [CORPUS / n for n, meta in sorted(manifest.items()) if meta["expect"] == "error"]
    return tuple(  # type: ignore[return-value]
        [(p.name, p.read_bytes()) for p in paths if p.stat().st_size <= max_bytes]
        for paths in (valid, invalid)
    )


def mutate(source: bytes, rng: random.Random) -> bytes:
    data = source
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        choice = rng.random()
        if choice < 0.15 and data:  # flip one bit
            i = rng.randrange(len(data))
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        elif choice < 0.25:  # insert hostile bytes
            i = rng.randrange(len(data) + 1)
            data = data[:i] + rng.choice(HOSTILE_BYTES) + data[i:]
        else:
            text = data.decode("utf-8", "surrogateescape")
            kind = rng.choice(LINE_KINDS)
            if kind == "replace_value":
                word = rng.choice(HOSTILE_VALUES + WORDS)
            elif kind == "replace_key":
                word = rng.choice(HOSTILE_KEYS)
            else:
                word = rng.choice(WORDS + HOSTILE_VALUES)
            text = _apply(text, (kind, rng.randrange(10_000), rng.randrange(10_000), word))
            data = text.encode("utf-8", "surrogateescape")
    return data


def classify(outcome: CommandOutcome) -> str:
    if outcome.hung:
        return "hang"
    if outcome.signal:
        return "crash"
    output = outcome.stdout + outcome.stderr
    if outcome.uncaught or "Traceback (most recent call last)" in output:
        return "traceback"
    if outcome.status == 70 or "internal error" in output:
        return "exit-70"
    if raw_controls(output):
        return "raw-control-chars"
    if outcome.status == 0:
        return "compiled ok"
    if outcome.status == 1:
        return "clean error" if _DIAGNOSTIC.search(outcome.stderr) else "error without location"
    return f"exit-{outcome.status}"


def reset(workspace: Workspace) -> None:
    for path in workspace.root.rglob("CANARY*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    shutil.rmtree(workspace.ws / "out", ignore_errors=True)
    if not (workspace.ws / "SENTINEL").exists():
        (workspace.ws / "SENTINEL").write_text("must survive\n")
    (workspace.ws / "SENTINEL_DIR").mkdir(exist_ok=True)
    if not (workspace.ws / "SENTINEL_DIR" / "keep").exists():
        (workspace.ws / "SENTINEL_DIR" / "keep").write_text("must survive\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per command")
    parser.add_argument("--max-source-bytes", type=int, default=32_000)
    parser.add_argument("--offenders", type=Path, help="where to write offending mutants")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    valid, invalid = sources(args.max_source_bytes)
    offenders = args.offenders or Path(tempfile.mkdtemp(prefix="agentflow-fuzz-offenders-"))
    offenders.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    follow_ups: Counter[str] = Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agentflow-fuzz-") as tmp:
        workspace = Workspace.create(Path(tmp), "mutant.yaml", b"")
        for index in range(args.mutants):
            origin, source = rng.choice(valid if rng.random() < 0.6 else invalid)
            mutant = mutate(source, rng)
            reset(workspace)
            (workspace.ws / "mutant.yaml").write_bytes(mutant)
            outcomes = [
                run_forked(workspace, "agentflowc", ["mutant.yaml", "-o", "out"], "compile",
                           timeout_s=args.timeout)
            ]  # fmt: skip
            verdict = classify(outcomes[0])
            if verdict == "compiled ok":
                for extra in (["--explain"], ["--graph", "mermaid"]):
                    outcome = run_forked(workspace, "agentflowc", ["mutant.yaml", *extra],
                                         "describe", timeout_s=args.timeout)  # fmt: skip
                    outcomes.append(outcome)
                    follow = classify(outcome)
                    follow_ups[f"{extra[0]}: {follow}"] += 1
                    if follow != "compiled ok":
                        verdict = f"{extra[0]} {follow}"
            found = canaries(workspace, declared_import_ok=False)
            secrets = leaks(workspace, outcomes)
            if found:
                verdict = "canary"
            elif secrets:
                verdict = "secret leak"
            counts[verdict] += 1
            if verdict not in ("compiled ok", "clean error"):
                stem = f"{index:05d}-{re.sub(r'[^a-z0-9]+', '-', verdict.lower())}"
                (offenders / f"{stem}.yaml").write_bytes(mutant)
                report = [f"mutant {index} of {origin} (seed {args.seed}): {verdict}"]
                report += [o.describe() for o in outcomes]
                report += [f"canary: {c}" for c in found] + [f"leak: {s}" for s in secrets]
                (offenders / f"{stem}.txt").write_text("\n\n".join(report) + "\n")
            if (index + 1) % 500 == 0:
                print(f"  {index + 1} mutants, {time.monotonic() - started:.0f} s: "
                      f"{dict(counts)}", flush=True)  # fmt: skip
    elapsed = time.monotonic() - started
    print(f"\n{args.mutants} mutants of {len(valid) + len(invalid)} sources, seed {args.seed}, "
          f"{elapsed:.0f} s wall")  # fmt: skip
    for verdict, count in counts.most_common():
        print(f"  {verdict:32} {count}")
    bad = sum(n for v, n in counts.items() if v not in ("compiled ok", "clean error"))
    print("  follow-ups of compiled mutants: " + ", ".join(f"{k} {n}" for k, n in
                                                         sorted(follow_ups.items())))  # fmt: skip
    print(f"offenders ({bad}) -> {offenders}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
