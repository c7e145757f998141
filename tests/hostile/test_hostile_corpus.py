"""Every hostile pipeline in tests/hostile/corpus/ is handled cleanly by both CLIs.

For each entry (see generate_corpus.py and manifest.json) the test runs what a
user would: `agentflowc` (compile, --explain, --graph mermaid, --check),
`agentflow verify --pipeline` against a small foreign log, `agentflow run
--model dry-run` and `agentflow verify` of that run's own log. Each command
runs in a forked child with a memory cap and a 20 s safety timeout
(harness.py); nothing here measures time. Entries marked slow in the manifest
(seconds each) run only with AGENTFLOW_HOSTILE_SLOW=1.

Every command must: exit 0, 1 or 2 (never 70, never an uncaught exception, a
crash or a hang); print no traceback and no raw control characters; leave no
canary (code run or files touched that the pipeline does not declare) and leak
no secret. An entry expected to be invalid must fail with a diagnostic naming a
file, line and column; one expected to be valid must compile, describe itself,
be up to date after compiling, run and verify.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    CORPUS,
    CommandOutcome,
    Workspace,
    canaries,
    leaks,
    raw_controls,
    run_forked,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST: dict[str, dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text())
ENTRIES = sorted(MANIFEST)

# Entries that fail today because of a finding another helper is fixing. Strict:
# an entry that starts passing fails the suite until its mark is removed here.
KNOWN_FAILURES: dict[str, str] = {}

_DIAGNOSTIC = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): error: \S", re.MULTILINE)


RUN_SLOW = os.environ.get("AGENTFLOW_HOSTILE_SLOW") == "1"
# For an invalid pipeline `verify --pipeline` repeats the compile; it matters (what it reads,
# whether it imports) for plugins and prompts, so only those entries pay for it.
VERIFY_INVALID = ("plugin_", "prompt_", "jinja_")


def _params() -> list[Any]:
    params = []
    for name in ENTRIES:
        marks = []
        if MANIFEST[name].get("slow") and not RUN_SLOW:
            marks.append(pytest.mark.skip(reason="slow entry: AGENTFLOW_HOSTILE_SLOW=1 runs it"))
        if name in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(reason=KNOWN_FAILURES[name], strict=True))
        params.append(pytest.param(name, marks=marks, id=name.removesuffix(".yaml")))
    return params


def test_corpus_is_large_and_every_file_is_in_the_manifest() -> None:
    on_disk = {p.name for p in CORPUS.glob("*.yaml")}
    assert on_disk == set(MANIFEST)
    assert len(MANIFEST) >= 150
    expectations = {meta["expect"] for meta in MANIFEST.values()}
    assert expectations == {"ok", "error", "any"}


@pytest.fixture(scope="module")
def foreign_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small finished log of another pipeline (hello_world, dry run)."""
    root = tmp_path_factory.mktemp("foreign")
    source = (ROOT / "pipelines" / "hello_world.yaml").read_bytes()
    workspace = Workspace.create(root, "hello_world.yaml", source)
    for prompt in (ROOT / "pipelines" / "prompts").glob("*.md"):
        (workspace.ws / "prompts" / prompt.name).write_bytes(prompt.read_bytes())
    argv = ["run", "hello_world.yaml", "--model", "dry-run", "--no-ui", "--quiet"]
    outcome = run_forked(workspace, "agentflow", [*argv, "--jsonl", "small.jsonl"], "foreign")
    assert outcome.status == 0, outcome.describe()
    return workspace.ws / "small.jsonl"


class _Judge:
    """Runs an entry's commands and collects every broken promise."""

    def __init__(self, workspace: Workspace, declares_import_canary: bool) -> None:
        self.workspace = workspace
        self.declares_import_canary = declares_import_canary
        self.outcomes: list[CommandOutcome] = []
        self.problems: list[str] = []
        self.stopped = False

    def run(
        self, program: str, argv: list[str], phase: str, allowed: set[int]
    ) -> CommandOutcome | None:
        if self.stopped:
            return None
        outcome = run_forked(self.workspace, program, argv, phase)
        self.outcomes.append(outcome)
        where = f"{program} {' '.join(argv)}"
        if outcome.hung or outcome.signal or outcome.uncaught or outcome.status is None:
            self.problems.append(f"{where}: did not finish cleanly\n{outcome.describe()}")
            self.stopped = True  # one hang is enough: do not wait out the timeout again
            return outcome
        output = outcome.stdout + outcome.stderr
        if outcome.status not in allowed:
            self.problems.append(
                f"{where}: exit {outcome.status}, expected one of {sorted(allowed)}\n"
                f"{outcome.describe()}"
            )
        if "Traceback (most recent call last)" in output or "internal error" in output:
            self.problems.append(f"{where}: a traceback or internal error\n{outcome.describe()}")
        controls = raw_controls(output)
        if controls:
            self.problems.append(f"{where}: raw control characters {controls} in its output")
        found = canaries(self.workspace, declared_import_ok=self.declares_import_canary)
        if found:
            self.problems.append(f"{where}: CANARY {found}")
            self.stopped = True
        return outcome


def _names_a_location(outcome: CommandOutcome) -> bool:
    return any(
        match.group("file") for match in _DIAGNOSTIC.finditer(outcome.stderr)
    ) and outcome.stderr.rstrip().splitlines()[-1].split(",")[0].endswith(("error", "errors"))


@pytest.mark.parametrize("name", _params())
def test_hostile_pipeline_is_handled_cleanly(name: str, tmp_path: Path, foreign_log: Path) -> None:
    meta = MANIFEST[name]
    expect = meta["expect"]
    source = (CORPUS / name).read_bytes()
    workspace = Workspace.create(tmp_path, name, source)
    (workspace.ws / "foreign.jsonl").write_bytes(foreign_log.read_bytes())
    judge = _Judge(workspace, declares_import_canary=b"hostile_canary_import" in source)

    allowed = {"ok": {0}, "error": {1}, "any": {0, 1}}[expect]
    compiled = judge.run("agentflowc", [name, "-o", "out"], "compile", allowed)
    if compiled is None or compiled.status not in (0, 1):
        pytest.fail("\n\n".join(judge.problems) or f"{name}: compile did not finish")
    ok = compiled.status == 0
    if not ok and not _names_a_location(compiled):
        judge.problems.append(
            f"{name}: rejected without a 'file:line:col: error:' diagnostic and a summary:\n"
            f"{compiled.stderr[-2000:]}"
        )
    if not ok and (workspace.ws / "out").exists() and any((workspace.ws / "out").iterdir()):
        judge.problems.append(f"{name}: rejected, yet files were written to out/")
    if ok:  # (for an invalid pipeline these would repeat the same load and diagnostics)
        judge.run("agentflowc", [name, "--explain"], "explain", {0})
        judge.run("agentflowc", [name, "--graph", "mermaid"], "graph", {0})
        judge.run("agentflowc", [name, "--check", "-o", "out"], "check", {0})
    if meta.get("run", True) or not ok:
        run_exit = set(meta.get("run_exit", [0])) if expect == "ok" else {0, 1, 2}
        run_args = meta.get("run_args", []) if ok else []
        run_argv = ["run", name, "--model", "dry-run", "--no-ui", "--quiet", "--jsonl", "run.jsonl"]
        judge.run("agentflow", [*run_argv, *run_args], "run", run_exit if ok else {1, 2})
    log = workspace.ws / "run.jsonl"
    if ok and log.is_file() and log.stat().st_size:
        judge.run("agentflow", ["verify", "run.jsonl", "--pipeline", name], "verify-own", {0})
    elif ok or name.startswith(VERIFY_INVALID):
        # another pipeline's log: refused, after the pipeline is checked (and not imported)
        judge.run("agentflow", ["verify", "foreign.jsonl", "--pipeline", name], "verify", {1, 2})
    judge.problems += leaks(workspace, judge.outcomes)
    assert not judge.problems, f"{name}: {meta['why']}\n\n" + "\n\n".join(judge.problems)


def test_corpus_is_what_the_generator_writes(tmp_path: Path) -> None:
    from .generate_corpus import write_corpus

    write_corpus(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file())
    assert written == committed, "regenerate: .venv/bin/python tests/hostile/generate_corpus.py"
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (CORPUS / relative).read_bytes(), relative
