"""`agentflow run` records every run in the store, each with its own log; `agentflow
runs / show / export / output` read the history (as a user runs them: subprocesses)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import trio

from agentflow.runtime.events.verify import verify_log
from agentflow.runtime.store import RunStore

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "pipelines" / "hello_world.yaml"
BIN = Path(sys.executable).parent


def agentflow(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "AGENTFLOW_STORE")
    }
    environ.update(env or {})
    return subprocess.run(
        [str(BIN / "agentflow"), *map(str, args)],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def run_id_of(done: subprocess.CompletedProcess[str]) -> str:
    line = next(x for x in (done.stdout + done.stderr).splitlines() if x.startswith("run run-"))
    return line.split()[1].rstrip(":")


def test_a_run_is_recorded_and_its_history_reads_back(tmp_path: Path) -> None:
    done = agentflow("run", HELLO, "a topic", "--no-ui", "--quiet", "--output", "out.md",
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done)
    log = tmp_path / ".agentflow" / "runs" / f"{run_id}.jsonl"
    assert (tmp_path / ".agentflow" / "agentflow.db").is_file() and verify_log(log).ok
    # The final output, in full, at the end; the same in --output and `agentflow output`.
    printed = done.stdout.split("output:\n", 1)[1]
    output = agentflow("output", run_id, cwd=tmp_path)
    assert output.returncode == 0 and output.stdout == printed
    assert (tmp_path / "out.md").read_text() == printed and "ownership" in printed
    # export is the run's log, byte for byte (stdout, or a file).
    exported = agentflow("export", run_id, cwd=tmp_path)
    assert exported.returncode == 0 and exported.stdout.encode() == log.read_bytes()
    assert agentflow("export", run_id[:10], "--jsonl", "copy.jsonl", cwd=tmp_path).returncode == 0
    assert (tmp_path / "copy.jsonl").read_bytes() == log.read_bytes()
    # runs: a table with the run's numbers.
    runs = agentflow("runs", cwd=tmp_path)
    header, row = runs.stdout.splitlines()
    assert header.split() == ["RUN", "PIPELINE", "STATUS", "STARTED", "TOOK", "PASSED",
                              "FAILED", "CALLS", "TOKENS", "COST"]  # fmt: skip
    cells = row.split()
    assert cells[:3] == [run_id, "hello-world", "succeeded"]
    assert cells[-5:] == ["1", "0", "6", "6628", "$0.0353"]
    # show: the summary, per-item outcomes, the output in full.
    shown = agentflow("show", run_id, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"run {run_id}: SUCCEEDED in state 'complete'\n")
    assert "items: 1 passed, 0 failed, 0 aborted, 0 completed" in shown.stdout
    assert "per item:\n  main: passed\n" in shown.stdout
    assert shown.stdout.endswith("output:\n" + printed)


def test_json_keeps_stdout_pure_json_and_the_output_goes_to_stderr(tmp_path: Path) -> None:
    done = agentflow("run", HELLO, "--no-ui", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert all(isinstance(json.loads(line), dict) for line in done.stdout.splitlines())
    assert "output:\n" in done.stderr and "ownership" in done.stderr


def test_no_store_writes_no_store_and_still_gives_the_run_its_own_log(tmp_path: Path) -> None:
    done = agentflow("run", HELLO, "--no-ui", "--quiet", "--no-store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".agentflow" / "agentflow.db").exists()
    (log,) = (tmp_path / ".agentflow" / "runs").glob("run-*.jsonl")
    assert verify_log(log).ok
    missing = agentflow("runs", cwd=tmp_path)
    assert missing.returncode == 2 and "no run store at .agentflow/agentflow.db" in missing.stderr


def test_the_store_option_and_the_environment_variable_name_the_store(
    tmp_path: Path, store_url: str
) -> None:
    by_option = agentflow("run", HELLO, "--no-ui", "--quiet", "--store", store_url, cwd=tmp_path)
    by_env = agentflow("run", HELLO, "--no-ui", "--quiet", cwd=tmp_path,
                       env={"AGENTFLOW_STORE": store_url})  # fmt: skip
    assert by_option.returncode == by_env.returncode == 0, by_option.stderr + by_env.stderr
    assert not (tmp_path / ".agentflow" / "agentflow.db").exists()  # not the default store
    listed = agentflow("runs", "--json", cwd=tmp_path, env={"AGENTFLOW_STORE": store_url})
    ids = {json.loads(line)["id"] for line in listed.stdout.splitlines()}
    assert ids == {run_id_of(by_option), run_id_of(by_env)}
    shown = agentflow("show", run_id_of(by_env), "--store", store_url, cwd=tmp_path)
    assert "SUCCEEDED" in shown.stdout


def test_runs_filters_and_run_prefixes(tmp_path: Path) -> None:
    ok = agentflow("run", HELLO, "--no-ui", "--quiet", cwd=tmp_path)
    failed = agentflow("run", HELLO, "--no-ui", "--quiet", "--model", "dry-run",
                       "--fail-first", "9", cwd=tmp_path)  # fmt: skip
    assert (ok.returncode, failed.returncode) == (0, 1)
    only_failed = agentflow("runs", "--status", "failed", "--json", cwd=tmp_path)
    assert [json.loads(x)["id"] for x in only_failed.stdout.splitlines()] == [run_id_of(failed)]
    other = agentflow("runs", "--pipeline", "nope", cwd=tmp_path)
    assert other.stdout.startswith("no runs in")
    ambiguous = agentflow("show", "run-", cwd=tmp_path)
    assert ambiguous.returncode == 2 and "names several runs" in ambiguous.stderr
    unknown = agentflow("output", "run-000000000000", cwd=tmp_path)
    assert unknown.returncode == 2 and "no run 'run-000000000000'" in unknown.stderr
    assert "Traceback" not in ambiguous.stderr + unknown.stderr


def test_a_run_whose_process_is_gone_shows_as_interrupted(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    owner = f"{socket.gethostname()}:{gone.stdout.strip()}"
    db = tmp_path / ".agentflow" / "agentflow.db"

    async def record() -> None:
        with RunStore.open(str(db)) as store:
            await store.begin_run(run_id="run-00000000dead", pipeline="p", source_hash="h",
                                  input="x", options={}, owner=owner)  # fmt: skip

    trio.run(record)
    listed = agentflow("runs", "--status", "interrupted", cwd=tmp_path)
    assert "run-00000000dead" in listed.stdout and "interrupted" in listed.stdout
    row = json.loads(agentflow("runs", "--json", cwd=tmp_path).stdout)
    assert row["status"] == "interrupted" and row["finished_at"] is None
    # counted by run_finished: unknown, not zero (the table shows "-")
    assert (row["items"], row["model_calls"], row["input_tokens"], row["cost_usd"]) == (
        None, None, None, None,
    )  # fmt: skip
    assert "none recorded" in agentflow("show", "run-00000000dead", cwd=tmp_path).stdout
    assert agentflow("output", "run-00000000dead", cwd=tmp_path).returncode == 1


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_a_run_that_cannot_start_leaves_every_existing_file_untouched(tmp_path: Path) -> None:
    first = agentflow("run", HELLO, "--no-ui", "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "mine.jsonl").write_text("an earlier run's log\n")
    before = _snapshot(tmp_path)
    with socket.socket() as taken:  # a busy UI port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = agentflow("run", HELLO, "--port", str(port), "--jsonl", "mine.jsonl", cwd=tmp_path)
    assert busy.returncode == 2 and str(port) in busy.stderr
    # a store that cannot be reached: refused before the log is emptied
    nowhere = "postgresql://nobody@127.0.0.1:1/none"
    unreachable = agentflow("run", HELLO, "--no-ui", "--jsonl", "mine.jsonl",
                            "--store", nowhere, cwd=tmp_path)  # fmt: skip
    assert unreachable.returncode == 2, unreachable.stderr
    assert "run store postgresql://nobody@127.0.0.1:1/none: cannot" in unreachable.stderr
    bad_input = agentflow("run", HELLO, "--no-ui", "--input", "@nope", cwd=tmp_path)
    assert bad_input.returncode == 2
    assert "Traceback" not in busy.stderr + unreachable.stderr + bad_input.stderr
    assert _snapshot(tmp_path) == before
    assert len(agentflow("runs", "--json", cwd=tmp_path).stdout.splitlines()) == 1


def test_eight_concurrent_runs_of_one_pipeline_share_one_store(
    tmp_path: Path, store_url: str
) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    environ["AGENTFLOW_STORE"] = store_url
    command = [str(BIN / "agentflow"), "run", str(HELLO), "--no-ui", "--quiet"]
    procs = [
        subprocess.Popen(
            [*command, f"topic {n}"],
            cwd=tmp_path,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    results = [proc.communicate(timeout=180) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 8, results
    logs = sorted((tmp_path / ".agentflow" / "runs").glob("run-*.jsonl"))
    assert len(logs) == 8
    with RunStore.open(store_url) as store:
        assert len(store.runs(limit=None)) == 8
        for log in logs:
            assert verify_log(log).ok, verify_log(log).render()
            stored = list(store.lines(log.stem))
            assert log.read_text().splitlines() == stored
            assert store.run(log.stem).status == "succeeded"


def test_a_store_that_cannot_be_written_is_a_run_that_cannot_start(tmp_path: Path) -> None:
    def limit() -> None:  # the kernel refuses every write past 8 KiB (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    done = subprocess.run(
        [str(BIN / "agentflow"), "run", str(HELLO), "--no-ui", "--quiet"],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120,
        preexec_fn=limit, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "agentflow: error: run store .agentflow/agentflow.db: cannot open it" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / ".agentflow" / "runs").glob("*"))  # no log of a run that never ran


def test_a_final_output_with_terminal_escapes_is_printed_escaped_and_kept_exact(
    tmp_path: Path,
) -> None:
    corpus = REPO / "tests" / "hostile" / "corpus"
    (tmp_path / "prompts").mkdir()
    for name in ("jinja_controls.yaml", "prompts/jinja_controls.md", "prompts/review.md"):
        shutil.copy(corpus / name, tmp_path / name)
    done = agentflow("run", "jinja_controls.yaml", "--model", "dry-run", "--no-ui", "--quiet",
                     "--output", "out.txt", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    exact = (tmp_path / "out.txt").read_text()
    assert "\x1b" in exact and "\x07" in exact  # --output FILE: the output as it is
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "\\x1b" in done.stdout.split("output:\n", 1)[1]  # shown, escaped
    run_id = run_id_of(done)
    assert agentflow("output", run_id, cwd=tmp_path).stdout == exact  # into a pipe: exact
    shown = agentflow("show", run_id, cwd=tmp_path).stdout
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b" in shown
