"""The crash-loop harness: SIGKILL a real `agentflow run` at seeded random moments, resume it
until it finishes, and check what the store, the audit log and the fake API saw.

One trial (`run_trial`):
1. copy the fan-out pipeline (`crash_fanout/`) into the trial's directory and start
   `agentflow run` on it (a real CLI subprocess: the real Anthropic SDK, streamed
   responses from the fake server in this process, the run store given by
   `AGENTFLOW_STORE`);
2. SIGKILL it at a seeded random moment: after a random number of committed events
   (polled from the store), or after a random delay (which may land before the run
   is even recorded: then the next segment is a new `agentflow run`);
3. `agentflow resume RUN`, killed again the same way, up to the trial's number of
   kills; the last segment runs to the end.

Each segment uses its own API key, so the fake server's request log (one JSON line a
request, keyed by agent/item/attempt/turn: tests/fake_anthropic/server.py) tells which
process sent each request, even one the server read after its sender died. After each
kill the store's `model_calls` keys are read: those are the calls whose response was
committed before the next segment started. A request of a later segment for such a
key is a call *repeated after commit* (the promise: never); a request for a key an
earlier segment asked for but whose response was not committed is a call *repeated in
the crash window* (allowed: at most the calls in flight at the kill).

`check_trial` asserts the rest: every item finished exactly once, `agentflow verify`
passes on the audit log, `agentflow export` equals both the log file and the store's
lines, the final output equals an uninterrupted run's, and every call the server saw
ends committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from agentflow.runtime.cli.compiled_loader import load_for_inspection
from agentflow.runtime.events.verify import verify_run_log
from agentflow.runtime.store.backends import connect, parse_location
from tests.fake_anthropic.server import (
    RecordedRequest,
    RequestKey,
    Scripted,
    text_reply,
    tool_reply,
)

PIPELINE_DIR = Path(__file__).resolve().parent / "crash_fanout"
PIPELINE_FILE = "crash_fanout.yaml"
AGENTFLOW = str(Path(sys.executable).parent / "agentflow")
CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens there
SAFETY_TIMEOUT_S = 120.0  # turns a hung segment into a failure; never a budget

Key = tuple[str, str, int, int]  # (agent, item, attempt, turn)
_FINISHED = ("succeeded", "failed", "incomplete")


class CrashScript:
    """The fake API's answers, a pure function of each request's key (so every run,
    interrupted or not, gets the same answers): the planner returns `items` work items;
    a worker writes a note with the filesystem tool, then answers; the checker fails
    the first attempt of about one item in three, and passes everything else."""

    def __init__(self, items: int, *, delay_s: float = 0.002) -> None:
        self.items = items
        self.delay_s = delay_s  # before each streamed event: a response trickles in

    def __call__(self, request: RecordedRequest) -> Scripted:
        key = request.key
        if key is None:
            raise AssertionError(f"a request without an agentflow-key line: {request.body}")
        slug = re.sub(r"[^A-Za-z0-9]+", "_", key.item)
        delay: dict[str, Any] = {"delay_s": self.delay_s}
        if key.agent == "planner":
            topics = [f"topic {n}" for n in range(self.items)]
            return tool_reply("submit_work_items", {"items": topics}, **delay)
        if key.agent == "worker" and key.turn == 1:
            note = {"op": "write", "path": f"{slug}-{key.attempt}.txt", "content": key.item}
            return tool_reply("filesystem", note, tool_id=f"toolu_{slug}_{key.attempt}", **delay)
        if key.agent == "worker":
            return text_reply(f"The answer for {key.item}, attempt {key.attempt}.", **delay)
        if key.agent == "checker":
            if key.attempt == 1 and zlib.crc32(key.item.encode()) % 3 == 0:
                verdict: dict[str, Any] = {
                    "passed": False,
                    "issues": [{"message": f"say more about {key.item}"}],
                }
            else:
                verdict = {"passed": True, "issues": []}
            return tool_reply("submit_verdict", verdict, **delay)
        raise AssertionError(f"no answer scripted for {key}")


def client_of(api_key: str) -> str:
    """The request log's `client` field for a request sent with `api_key`."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class StoreProbe:
    """Reads the store the CLI writes (SQLite or PostgreSQL) from the test's process."""

    def __init__(self, url: str) -> None:
        self.location = parse_location(url)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if not self.location.exists():
            return []
        with closing(connect(self.location, create=False)) as connection:
            cursor = connection.cursor()
            try:
                cursor.execute(self.location.dialect.sql(sql), params)
                return list(cursor.fetchall())
            except Exception as exc:  # the CLI has not created the tables yet
                if "runs" in str(exc) or "events" in str(exc) or "model_calls" in str(exc):
                    return []
                raise
            finally:
                cursor.close()

    def run_ids(self) -> list[str]:
        return [row[0] for row in self._rows("SELECT id FROM runs ORDER BY started_at")]

    def events(self) -> int:
        rows = self._rows("SELECT count(*) FROM events")
        return int(rows[0][0]) if rows else 0

    def status(self, run_id: str) -> str:
        return str(self._rows("SELECT status FROM runs WHERE id = ?", (run_id,))[0][0])

    def log_path(self, run_id: str) -> str:
        return str(self._rows("SELECT jsonl_path FROM runs WHERE id = ?", (run_id,))[0][0])

    def model_call_keys(self, run_id: str) -> set[Key]:
        rows = self._rows(
            "SELECT agent, item, attempt, turn FROM model_calls WHERE run_id = ?", (run_id,)
        )
        return {(str(a), str(i), int(n), int(t)) for a, i, n, t in rows}

    def output(self, run_id: str) -> str | None:
        rows = self._rows("SELECT output FROM runs WHERE id = ?", (run_id,))
        return None if rows[0][0] is None else str(rows[0][0])

    def lines(self, run_id: str) -> list[str]:
        rows = self._rows("SELECT line FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
        return [str(row[0]) for row in rows]


@dataclass
class Segment:
    """One process of a trial: `agentflow run` or `agentflow resume`."""

    command: str  # "run" | "resume"
    api_key: str
    kill: str  # "none", "after N events", "after X s"
    killed: bool = False
    returncode: int | None = None
    wall_s: float = 0.0  # for the record (--verbose), never asserted
    committed_after: set[Key] = field(default_factory=set)  # model_calls keys once it ended


@dataclass
class Trial:
    seed: int
    directory: Path
    store_url: str
    pipeline: Path
    segments: list[Segment] = field(default_factory=list)
    run_id: str | None = None
    refused_finished: bool = False  # the last resume was refused: the run had finished
    # A kill as the run ended left a finished run's log incomplete, and the last resume
    # completed it (`agentflow resume` on a finished run: docs/resume.md):
    export_lagged: bool = False  # ... its JSONL export lacked committed lines: repaired
    unsealed: bool = False  # ... its log, in the store too, had no log_sealed: sealed

    @property
    def kills(self) -> int:
        return sum(s.killed for s in self.segments)


@dataclass
class CallCounts:
    """What the fake server's request log says about one trial's model calls."""

    requests: int = 0  # requests the server received, every segment
    committed: int = 0  # model_calls rows at the end
    repeated_after_commit: int = 0  # the promise: 0
    repeated_in_window: int = 0  # asked again: the earlier request's answer was not committed
    repeated_in_segment: int = 0  # one process asked twice (a transport retry): 0 here
    unkeyed: int = 0  # requests without a key (none expected)
    responses_counted_twice: int = 0  # of those in the window: both responses were logged


@dataclass
class Reference:
    """An uninterrupted run of the pipeline: how many events it commits, and its result."""

    events: int
    result: dict[str, Any]  # see `run_outcome`
    usage: dict[str, int]  # see `check_usage`


def _env(
    store_url: str, base_url: str, api_key: str, ray_address: str | None = None
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC_", "AGENTFLOW_"))
    }
    env.update(
        ANTHROPIC_API_KEY=api_key,
        ANTHROPIC_BASE_URL=base_url,
        AGENTFLOW_STORE=store_url,
        PYTHONUNBUFFERED="1",
    )
    if ray_address is not None:
        # The actors make the model calls: give them this segment's key and the fake
        # server, as the Ray Jobs API gives a job's driver its runtime_env (the
        # cluster's own environment has neither). The orchestrator gets a closed port:
        # a model call it made itself, not on Ray, would fail the run.
        env["ANTHROPIC_BASE_URL"] = CLOSED_PORT_URL
        job = {
            "runtime_env": {
                "env_vars": {"ANTHROPIC_API_KEY": api_key, "ANTHROPIC_BASE_URL": base_url}
            }
        }
        env["RAY_JOB_CONFIG_JSON_ENV_VAR"] = json.dumps(job)
    return env


def prepare(directory: Path) -> Path:
    """Copy the pipeline into `directory` (its workspace is per trial); its YAML path."""
    shutil.copytree(PIPELINE_DIR, directory / "pipeline")
    return directory / "pipeline" / PIPELINE_FILE


async def _cli(args: list[str], cwd: Path, env: Mapping[str, str]) -> tuple[int, str]:
    with trio.fail_after(SAFETY_TIMEOUT_S):
        done = await trio.run_process(
            [AGENTFLOW, *args], cwd=cwd, env=env, capture_stdout=True, capture_stderr=True,
            check=False,
        )  # fmt: skip
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def run_reference(
    directory: Path, store_url: str, base_url: str, items: int, ray_address: str | None = None
) -> Reference:
    """One uninterrupted run (on the Ray cluster at `ray_address`, if given): the events
    it commits and its result."""
    pipeline = prepare(directory)
    env = _env(store_url, base_url, "sk-ant-crashloop-reference", ray_address)
    code, out = await _cli(_run_args(pipeline, items, ray_address), directory, env)
    assert code == 0, out
    probe = StoreProbe(store_url)
    (run_id,) = probe.run_ids()
    lines = probe.lines(run_id)
    usage = check_usage(lines, "the reference run")
    return Reference(events=len(lines), result=run_outcome(probe, run_id, lines), usage=usage)


_USAGE_COUNTS = ("input_tokens", "output_tokens", "model_calls")


def run_outcome(probe: StoreProbe, run_id: str, lines: list[str]) -> dict[str, Any]:
    """What must not depend on the crashes: `run_finished`'s payload (status, final state,
    item counts) but its usage, each item's `item_finished` payload, and the recorded
    final output.

    The usage is checked apart (`check_usage`): a call in flight at a kill whose
    `model_response` event was committed but whose memo row was not is made again, and
    both responses count (docs/resume.md, "What is not replayed exactly")."""
    finished: dict[str, Any] = {}
    items: dict[str, Any] = {}
    for line in lines:
        event = json.loads(line)
        if event["kind"] == "run_finished":
            finished = {k: v for k, v in event["payload"].items() if k != "usage"}
        elif event["kind"] == "item_finished":
            items[event["item"]] = event["payload"]
    return {"run_finished": finished, "items": items, "output": probe.output(run_id)}


def check_usage(lines: list[str], where: str) -> dict[str, int]:
    """`run_finished.usage` is the sum over every `model_response` in the whole log (every
    segment); that usage's counts."""
    summed = dict.fromkeys(_USAGE_COUNTS, 0)
    reported: dict[str, Any] = {}
    for line in lines:
        event = json.loads(line)
        if event["kind"] == "model_response":
            for name in _USAGE_COUNTS:
                summed[name] += event["payload"]["usage"][name]
        elif event["kind"] == "run_finished":
            reported = event["payload"]["usage"]
    shown = {name: reported.get(name) for name in _USAGE_COUNTS}
    assert shown == summed, f"{where}: run_finished.usage {shown} != the responses' {summed}"
    return summed


def _run_args(pipeline: Path, items: int, ray_address: str | None = None) -> list[str]:
    """`agentflow run`'s arguments; a resume takes the executor the run recorded."""
    on_ray = [] if ray_address is None else ["--executor", "ray", "--ray-address", ray_address]
    return [
        "run", str(pipeline), f"{items} topics", "--no-ui", "--model", "anthropic", "--quiet",
        "--no-prompt-cache", *on_ray,
    ]  # fmt: skip


async def _segment(
    trial: Trial, segment: Segment, args: list[str], env: Mapping[str, str], kill: Any
) -> None:
    """Start the segment's process; SIGKILL it when `kill` says; record how it ended."""
    probe = StoreProbe(trial.store_url)
    started = time.monotonic()
    log = (trial.directory / f"segment-{len(trial.segments) - 1}.out").open("wb")
    with log, trio.fail_after(SAFETY_TIMEOUT_S):
        process = await trio.lowlevel.open_process(
            [AGENTFLOW, *args], cwd=trial.directory, env=env, stdout=log, stderr=log
        )
        try:
            if kill is None:
                await process.wait()
            else:
                kind, amount = kill
                while process.poll() is None:
                    if kind == "events" and probe.events() >= amount:
                        break
                    if kind == "delay" and time.monotonic() - started >= amount:
                        break
                    await trio.sleep(0.005)
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    segment.killed = True
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    segment.returncode = process.returncode
    segment.wall_s = time.monotonic() - started


async def run_trial(
    seed: int,
    directory: Path,
    store_url: str,
    base_url: str,
    *,
    items: int,
    reference_events: int,
    max_kills: int = 3,
    ray_address: str | None = None,
) -> Trial:
    """Run, kill at random up to `max_kills` times (seeded), resume until the run ends.
    With `ray_address`, the run and so every resume use the Ray executor on that cluster."""
    rng = random.Random(seed)
    pipeline = prepare(directory)
    trial = Trial(seed=seed, directory=directory, store_url=store_url, pipeline=pipeline)
    probe = StoreProbe(store_url)
    kills_planned = rng.randint(1, max_kills)
    while True:
        ids = probe.run_ids()
        if len(ids) > 1:
            raise AssertionError(f"trial {seed}: several runs in the store: {ids}")
        trial.run_id = ids[0] if ids else None
        command = "run" if trial.run_id is None else "resume"
        args = (
            _run_args(pipeline, items, ray_address)
            if trial.run_id is None
            else ["resume", trial.run_id, "--no-ui", "--quiet"]
        )
        kill: tuple[str, float] | None = None
        shown = "none"
        if trial.kills < kills_planned:
            if rng.random() < 0.25:
                kill = ("delay", rng.uniform(0.0, 1.5))
                shown = f"after {kill[1]:.2f} s"
            else:
                now = probe.events()
                kill = ("events", now + rng.randint(1, max(1, reference_events - 5 - now)))
                shown = f"after {kill[1]:.0f} events"
        api_key = f"sk-ant-crashloop-{seed}-{len(trial.segments)}"
        segment = Segment(command=command, api_key=api_key, kill=shown)
        trial.segments.append(segment)
        await _segment(trial, segment, args, _env(store_url, base_url, api_key, ray_address), kill)
        ids = probe.run_ids()
        if ids:
            trial.run_id = ids[0]
            segment.committed_after = probe.model_call_keys(ids[0])
        if not segment.killed:
            # A kill after the run's end was committed (status `succeeded`) but before its
            # process finished: the resume completes the finished run's log if the kill
            # left it incomplete (exit 0, saying so), else refuses it (exit 2).
            trial.refused_finished = (
                command == "resume"
                and segment.returncode == 2
                and trial.run_id is not None
                and probe.status(trial.run_id) in _FINISHED
            )
            said = segment_output(trial, len(trial.segments) - 1)
            trial.export_lagged = "repaired from the run store" in said
            trial.unsealed = "its log sealed" in said
            break
        if len(trial.segments) > 3 * max_kills + 3:
            raise AssertionError(f"trial {seed}: no end after {len(trial.segments)} segments")
    return trial


def read_request_log(path: Path) -> list[dict[str, Any]]:
    """The fake server's request log (tests/fake_anthropic/server.py `request_log`)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def count_calls(trial: Trial, request_log: list[dict[str, Any]]) -> CallCounts:
    """Classify the trial's requests (the module says how) against the store's memo."""
    segment_of = {client_of(s.api_key): n for n, s in enumerate(trial.segments)}
    counts = CallCounts()
    asked_before: set[Key] = set()  # keys asked by earlier segments
    per_segment: dict[int, Counter[Key]] = {n: Counter() for n in range(len(trial.segments))}
    for line in request_log:
        n = segment_of.get(line["client"])
        if n is None:
            continue  # another trial's request (the server is shared)
        counts.requests += 1
        if line["key"] is None:
            counts.unkeyed += 1
            continue
        k = RequestKey(**line["key"])
        per_segment[n][(k.agent, k.item, k.attempt, k.turn)] += 1
    for n in range(len(trial.segments)):
        committed_before = trial.segments[n - 1].committed_after if n else set()
        for key, times in per_segment[n].items():
            counts.repeated_in_segment += times - 1
            if key in committed_before:
                counts.repeated_after_commit += times
            elif key in asked_before:
                counts.repeated_in_window += 1
        asked_before |= set(per_segment[n])
    counts.committed = len(trial.segments[-1].committed_after)
    return counts


def item_finishes(lines: list[str]) -> tuple[set[str], Counter[str]]:
    """The items the run created (and `main`), and how many times each finished."""
    created, finished = {"main"}, Counter[str]()
    for line in lines:
        event = json.loads(line)
        if event["kind"] == "item_created":
            created.add(event["item"])
        elif event["kind"] == "item_finished":
            finished[event["item"]] += 1
    return created, finished


def segment_output(trial: Trial, index: int) -> str:
    """What segment `index`'s process printed (stdout and stderr)."""
    path = trial.directory / f"segment-{index}.out"
    return path.read_text(errors="replace") if path.exists() else ""


def check_trial(
    trial: Trial, reference: Reference, request_log: list[dict[str, Any]]
) -> CallCounts:
    """Assert the trial's properties (the module lists them), in this process (what
    `agentflow verify` and `export` do: `check_with_cli` runs the commands); its call counts."""
    probe = StoreProbe(trial.store_url)
    where = f"trial seed={trial.seed} in {trial.directory}"
    last = trial.segments[-1]
    assert last.returncode == 0 or trial.refused_finished, (
        f"{where}: the last segment exited {last.returncode}"
    )
    assert trial.run_id is not None
    run_id = trial.run_id
    lines = probe.lines(run_id)
    created, finished = item_finishes(lines)
    assert set(finished) == created, f"{where}: unfinished {created - set(finished)}"
    twice = {item: n for item, n in finished.items() if n != 1}
    assert not twice, f"{where}: items finished more than once: {twice}"
    log = trial_log(trial)
    assert log.read_text().splitlines() == lines, f"{where}: the log is not the store's events"
    report = verify_run_log(log, load_for_inspection(str(trial.pipeline)).spec)
    assert report.ok, f"{where}: {log} does not verify: {report.render()}"
    result = run_outcome(probe, run_id, lines)
    assert result == reference.result, f"{where}: the result differs from an uninterrupted run"
    usage = check_usage(lines, where)
    counts = count_calls(trial, request_log)
    # a response counted twice was made again: a call repeated in the crash window
    extra = usage["model_calls"] - reference.usage["model_calls"]
    assert 0 <= extra <= counts.repeated_in_window, (where, usage, reference.usage, counts)
    counts.responses_counted_twice = extra
    assert counts.unkeyed == 0 and counts.repeated_in_segment == 0, (where, counts)
    assert counts.repeated_after_commit == 0, f"{where}: committed calls repeated: {counts}"
    asked = _asked_by(trial, request_log)
    assert asked == last.committed_after, (
        f"{where}: calls made but never committed: {sorted(asked - last.committed_after)}"
    )
    return counts


def trial_log(trial: Trial) -> Path:
    """The run's JSONL audit log (the path its `runs` row names)."""
    assert trial.run_id is not None
    log = Path(StoreProbe(trial.store_url).log_path(trial.run_id))
    return log if log.is_absolute() else trial.directory / log


async def check_with_cli(trial: Trial) -> None:
    """`agentflow verify` passes on the trial's log and `agentflow export` writes it exactly."""
    assert trial.run_id is not None
    env = _env(trial.store_url, CLOSED_PORT_URL, "sk-ant-crashloop-check")
    log = trial_log(trial)
    code, out = await _cli(
        ["verify", str(log), "--pipeline", str(trial.pipeline)], trial.directory, env
    )
    assert code == 0, f"agentflow verify {log}: {out}"
    exported = trial.directory / "export.jsonl"
    code, out = await _cli(["export", trial.run_id, "--jsonl", str(exported)], trial.directory, env)
    assert code == 0, f"agentflow export: {out}"
    assert exported.read_bytes() == log.read_bytes(), "the export is not the log"


def _asked_by(trial: Trial, request_log: list[dict[str, Any]]) -> set[Key]:
    clients = {client_of(s.api_key) for s in trial.segments}
    return {
        (k["agent"], k["item"], k["attempt"], k["turn"])
        for line in request_log
        if line["client"] in clients and (k := line["key"]) is not None
    }


def describe(trial: Trial) -> Iterator[str]:
    """One line a segment, for a failing trial's message and the soak's --verbose."""
    for n, segment in enumerate(trial.segments):
        yield (
            f"  segment {n}: {segment.command}, kill {segment.kill}, "
            f"{'killed' if segment.killed else f'exit {segment.returncode}'}, "
            f"{len(segment.committed_after)} calls committed, {segment.wall_s:.1f} s"
        )
