"""Compile-time benchmark: load + check + emit of a generated 200-agent pipeline.

The pipeline is 40 groups of 5 agents: a worker broadcasting to two QA agents
(one with a feedback loop back to the worker, one that aborts), a sequential
step, and a hand-off to the next group that is a fan-out every fourth group.

    /work/venv/bin/python bench/bench_compile.py [--agents 200] [--runs 7]

Prints the median wall time of each stage over the runs; results go in
bench/RESULTS.md. Then times load + check + emit + explain of 22 and 40 stacked
route diamonds (2**40 dispatch paths to the last agent: graph analysis must
count paths, not walk them; issue 8, finding 8).

Then the whole command, as a user waits for it (issue 12, item 4): `agentflowc`
on the same pipeline as a subprocess (interpreter start, imports, compile,
write), median of `--command-runs` after one warm-up, twice: as this
environment runs it, and with a bytecode cache (PYTHONPYCACHEPREFIX in a temp
dir, PYTHONDONTWRITEBYTECODE unset: what an installed package has), then the
`-X importtime` top offenders. `--command-only` skips the in-process stages.
A copy of the package on PYTHONPATH is measured instead of the installed one
(how the before numbers in RESULTS.md were taken).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agentflow.compiler.emit import emit_module
from agentflow.compiler.explain import explain
from agentflow.compiler.load import load_pipeline

HEADER = """\
name: bench-{n}
defaults:
  retry:
    max_attempts: 3
    backoff_ms: 0
state_machine:
  initial: initialised
  terminal:
    - complete
    - failed
  states:
    - id: initialised
    - id: running
    - id: checking
    - id: complete
    - id: failed
agents:
"""

GROUP = """\
  - id: w{i}
    prompt: prompts/work.md
    transitions:
      on_start: running
      on_complete: checking
    dispatch:
      strategy: parallel_broadcast
      targets:
        - qa{i}a
        - qa{i}b
  - id: qa{i}a
    prompt: prompts/check.md
    on_fail:
      action: feedback_and_retry
      target: w{i}
    transitions:
      on_fail: running
      on_abort: failed
    dispatch:
      strategy: sequential
      target: s{i}
  - id: qa{i}b
    prompt: prompts/check.md
    on_fail:
      action: abort
    transitions:
      on_abort: failed
  - id: s{i}
    prompt: prompts/work.md
    dispatch:
      strategy: sequential
      target: h{i}
  - id: h{i}
    prompt: prompts/work.md
"""

HANDOFF = """\
    dispatch:
      strategy: {strategy}
      target: w{next}
"""

FOOTER = """\
aggregation:
  strategy: all_pass
  gates:
    - qa{last}a
  on_complete:
    transition: complete
  on_any_abort:
    transition: failed
"""


def write_pipeline(directory: Path, agents: int, padding_mb: float = 0) -> Path:
    """Write the benchmark pipeline (and its prompts) into `directory`; return its path.

    `padding_mb` appends that many megabytes of 1,000-character comment lines (the
    scenario test `test_a_two_megabyte_pipeline_compiles` checks only that it compiles).
    """
    groups = agents // 5
    parts = [HEADER.format(n=agents)]
    for i in range(groups):
        parts.append(GROUP.format(i=i))
        if i + 1 < groups:
            strategy = "parallel_fan_out" if i % 4 == 3 else "sequential"
            parts.append(HANDOFF.format(strategy=strategy, next=i + 1))
    parts.append(FOOTER.format(last=groups - 1))
    parts.append(("# " + "y" * 1000 + "\n") * int(padding_mb * 1000))
    (directory / "prompts").mkdir()
    (directory / "prompts" / "work.md").write_text("Work on {{ item }} for {{ input }}.\n")
    (directory / "prompts" / "check.md").write_text("Check this:\n{{ upstream }}\n")
    path = directory / "pipeline.yaml"
    path.write_text("".join(parts))
    return path


DIAMOND_HEADER = """\
name: diamonds-{levels}
agents:
"""

DIAMOND = """\
  - id: a{k}
    prompt: prompts/work.md
    dispatch:
      strategy: route
      cases: {{left: b{k}, right: c{k}}}
  - id: b{k}
    prompt: prompts/work.md
    dispatch:
      strategy: sequential
      target: a{n}
  - id: c{k}
    prompt: prompts/work.md
    dispatch:
      strategy: sequential
      target: a{n}
"""


def write_diamonds(directory: Path, levels: int) -> Path:
    """`levels` stacked route diamonds a{k} -> (b{k} | c{k}) -> a{k+1}: 3*levels+1 agents."""
    parts = [DIAMOND_HEADER.format(levels=levels)]
    parts += [DIAMOND.format(k=k, n=k + 1) for k in range(levels)]
    parts.append(f"  - id: a{levels}\n    prompt: prompts/work.md\n")
    (directory / "prompts").mkdir(exist_ok=True)
    (directory / "prompts" / "work.md").write_text("Work on {{ item }} for {{ input }}.\n")
    path = directory / f"diamonds_{levels}.yaml"
    path.write_text("".join(parts))
    return path


def median_ms(action: Callable[[], object], runs: int) -> str:
    """Median wall and CPU time of `action` in ms (CPU time is steadier on a shared machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return f"{statistics.median(wall):8.1f} ms wall {statistics.median(cpu):8.1f} ms CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--padding-mb", type=float, default=0, help="MB of comment lines")
    parser.add_argument("--command-runs", type=int, default=11, help="runs of agentflowc")
    parser.add_argument("--command-only", action="store_true", help="time only agentflowc")
    args = parser.parse_args()
    if not args.command_only:
        time_stages(args.agents, args.runs, args.padding_mb)
    time_command(args.agents, args.command_runs)


def time_stages(agents: int, runs: int, padding_mb: float) -> None:
    """Median in-process time of load + check, emit and explain (imports excluded)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_pipeline(Path(tmp), agents, padding_mb)
        loaded = load_pipeline(path)  # warm-up (imports, template compilation)
        source = emit_module(loaded)
        assert len(loaded.spec.agents) == agents
        load_ms = median_ms(lambda: load_pipeline(path), runs)
        emit_ms = median_ms(lambda: emit_module(loaded), runs)
        total_ms = median_ms(lambda: emit_module(load_pipeline(path)), runs)
        explain_ms = median_ms(lambda: explain(loaded), runs)
        size = path.stat().st_size
    print(f"pipeline: {agents} agents, {size} bytes of YAML")
    print(f"generated module: {len(source.splitlines())} lines, {len(source)} bytes")
    print(f"median of {runs} runs:")
    print(f"  load + check:        {load_ms}")
    print(f"  emit:                {emit_ms}")
    print(f"  load + check + emit: {total_ms}")
    print(f"  explain:             {explain_ms}")
    with tempfile.TemporaryDirectory() as tmp:
        for levels in (22, 40):
            diamonds = write_diamonds(Path(tmp), levels)
            size = diamonds.stat().st_size
            print(f"{levels} stacked diamonds ({3 * levels + 1} agents, {size} bytes of YAML):")
            print(f"  load + check + emit + explain: {median_ms(compile_all(diamonds), runs)}")


def compile_all(path: Path) -> Callable[[], object]:
    """Load, check, emit and explain `path` (what `agentflowc --explain` and a build do)."""

    def action() -> object:
        loaded = load_pipeline(path)
        return emit_module(loaded), explain(loaded)

    return action


# What only running a pipeline needs; compiling must not import any of it.
RUNTIME_ONLY = ("trio", "anthropic", "httpx", "quart", "hypercorn")


def agentflowc_command() -> list[str]:
    """The installed `agentflowc` script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("agentflowc")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "agentflow.compiler"]


def run_timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system of the child) time of one run of `command`, in ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000, cpu * 1000


def time_command(agents: int, runs: int) -> None:
    """Time `agentflowc` on an `agents`-agent pipeline as a subprocess; list its imports."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pipeline").mkdir()
        path = write_pipeline(root / "pipeline", agents)
        command = [*agentflowc_command(), str(path), "-o", str(root / "out")]
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        settings = {
            "as this environment runs it": dict(os.environ),
            "with a bytecode cache": cached,
        }
        print(f"agentflowc on {agents} agents: {' '.join(command[:1])} PIPELINE -o OUT")
        print(f"  PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
        for label, env in settings.items():
            run_timed(command, env)  # warm-up: file cache, and the bytecode cache if any
            times = [run_timed(command, env) for _ in range(runs)]
            wall = statistics.median(t[0] for t in times)
            cpu = statistics.median(t[1] for t in times)
            low = min(t[0] for t in times)
            print(
                f"  {label + ':':30} median of {runs}: {wall:6.1f} ms wall "
                f"{cpu:6.1f} ms CPU (fastest {low:.1f} ms wall)"
            )
        importtime = [sys.executable, "-X", "importtime", "-m", "agentflow.compiler"]
        report_imports([*importtime, *command[-3:]], cached)


def report_imports(command: Sequence[str], env: dict[str, str], top: int = 12) -> None:
    """Print the `-X importtime` total, the slowest top-level imports and runtime-only ones."""
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    rows: list[tuple[int, int, int, str]] = []  # (self us, cumulative us, depth, module)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own_text, cumulative_text, indented = line.removeprefix("import time:").split("|")
        depth = (len(indented) - len(indented.lstrip(" "))) // 2
        rows.append((int(own_text), int(cumulative_text), depth, indented.strip()))
    total = sum(row[1] for row in rows if row[2] == 0)
    print(
        f"  -X importtime (bytecode cache): {total / 1000:.1f} ms of imports, {len(rows)} modules"
    )
    print("  slowest imports (cumulative ms, self ms), two levels deep:")
    for own, cumulative, depth, name in sorted(rows, key=lambda r: -r[1]):
        if depth <= 1 and cumulative >= 5000:
            print(f"    {cumulative / 1000:7.1f} {own / 1000:7.1f}  {'  ' * depth}{name}")
    print(f"  slowest by self time (top {top}):")
    for own, _, _, name in sorted(rows, key=lambda r: -r[0])[:top]:
        print(f"    {own / 1000:7.1f}  {name}")
    imported = {row[3] for row in rows}
    runtime_only = sorted(
        name
        for name in imported
        if any(name == p or name.startswith(p + ".") for p in RUNTIME_ONLY)
    )
    print(f"  runtime-only modules imported: {len(runtime_only)} {runtime_only[:5]}")


if __name__ == "__main__":
    main()
