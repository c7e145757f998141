"""Resume a run from the run store: `resume_run` (docs/resume.md).

A resume re-executes the run from item `main` with the memos the store holds
(DURABLE.md "Resume"; the lead's design, s17): invocations whose output is in
`steps` return it without calling their handler, model turns and tool results
come from `model_calls` / `tool_calls`, and the events already committed are
consumed by a replay filter instead of being published again. The first step
with no memo goes live. The log's hash chain continues after a `run_resumed`
event.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CannotStartError
from ..events.event import EventKind
from ..events.sink import LogSink
from ..models.base import Model
from ..pipeline import CompiledPipeline
from ..tools.base import Tool
from .replay import ReplayFilter, ReplayHub, ReplayStats

if TYPE_CHECKING:
    from ..store import RunRecord, RunStore
    from .run_result import RunResult
    from .runner import RunOptions

__all__ = [
    "FINISHED",
    "RESUMABLE",
    "ResumeRefused",
    "Resumption",
    "check_resumable",
    "complete_finished_log",
    "open_resume",
    "repair_export",
    "resume_run",
    "set_aside_diverged_export",
]

RESUMABLE = frozenset({"running", "cancelled", "error", "waiting"})
"""The run statuses a resume accepts."""

FINISHED = frozenset({"succeeded", "failed", "incomplete"})
"""The statuses of a run that finished: its outcome is final, a resume refuses it."""


class ResumeRefused(CannotStartError):
    """The run cannot be resumed: it finished, its pipeline's source changed, or a live
    process owns it. The message says which and what to do; `agentflow resume` exits 2."""


def _owner_alive(owner: str) -> bool | None:
    """Whether the lease owner `host:pid` is a live process: True/False on this host, None
    when it is another host's (nothing here can tell)."""
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, another user's
        return True
    return True


def check_resumable(
    record: RunRecord, source_hash: str, *, allow_changed: bool = False, force: bool = False
) -> None:
    """Refuse a resume that must not happen (see `ResumeRefused`).

    Raises:
        ResumeRefused: the run finished, its source changed (without `allow_changed`),
            or it is `running` under a live owner (without `force`).
    """
    run = record.id
    if record.status in FINISHED or record.status not in RESUMABLE:
        raise ResumeRefused(
            f"run {run} finished ({record.status}); only an unfinished run (running, "
            "cancelled, error, waiting) can be resumed. Start a new run with agentflow run"
        )
    if record.source_hash != source_hash and not allow_changed:
        raise ResumeRefused(
            f"run {run} ran another version of pipeline '{record.pipeline}' (source sha256 "
            f"{record.source_hash[:12]}..., now {source_hash[:12]}...); resuming it with the "
            "changed pipeline may not give what either version would. Pass --allow-changed "
            "to resume anyway (allow_changed=True)"
        )
    if record.status == "running" and not force:
        alive = _owner_alive(record.owner)
        if alive is not False:
            where = (
                "is alive" if alive else "runs on another host (this one cannot tell if it lives)"
            )
            raise ResumeRefused(
                f"run {run} is running: its owner {record.owner} {where}. Resume it only once "
                "that process is gone, or pass --force (force=True) to take it over (the "
                "owner's next write then fails)"
            )


def repair_export(path: str | os.PathLike[str], lines: Sequence[str]) -> bool:
    """Make the JSONL export at `path` hold exactly the run's committed `lines`.

    The export is fed from committed events (commit, then publish), so it can only lag
    the store: a process killed between a commit and its write, or a torn last line.
    The file is repaired in place (the lines it lacks appended after the last whole
    line it shares with the store; a file that is no prefix of the store is rewritten),
    so a lock held on it stays valid. Returns whether it changed.
    """
    target = Path(path)
    expected = "".join(line + "\n" for line in lines).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a+b") as export:
        export.seek(0)
        data = export.read()
        if data == expected:
            return False
        shared = _common_prefix(data, expected)
        keep = expected.rfind(b"\n", 0, shared) + 1  # whole lines only
        export.truncate(keep)
        export.write(expected[keep:])  # "a" mode: written at the (new) end
        export.flush()
        os.fsync(export.fileno())
    return True


def set_aside_diverged_export(path: str | os.PathLike[str], lines: Sequence[str]) -> Path | None:
    """Copy an export that disagrees with the store to `<path>.diverged-<n>` before the
    repair rewrites it; return the copy, or None when there is nothing to keep.

    A lagging export (a prefix of the store's lines, maybe ending in a torn line) is
    what a crash leaves and is repaired in place. A whole line that differs, or lines
    the store lacks, mean the file was edited: the run store wins, but the edited file
    is evidence (`agentflow verify` would have flagged it), so it is kept, never
    overwritten by a later copy.
    """
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return None
    expected = "".join(line + "\n" for line in lines).encode()
    keep = expected.rfind(b"\n", 0, _common_prefix(data, expected)) + 1
    if b"\n" not in data[keep:]:
        return None  # a prefix of the store's lines, at most a torn last line after it
    n = 1
    while (copy := target.with_name(f"{target.name}.diverged-{n}")).exists():
        n += 1
    copy.write_bytes(data)
    return copy


async def complete_finished_log(
    store: RunStore, record: RunRecord, audit_log: str | os.PathLike[str] | None
) -> list[str]:
    """Make a finished run's log whole: what `agentflow resume` does for a finished run.

    A process killed after its run's `run_finished` was committed but before
    `log_sealed` was leaves a finished run whose log `agentflow verify` rejects (not
    sealed), in the store and in the JSONL export; one killed before its last committed
    lines reached the export leaves the export lagging. Nothing is re-run: the export
    is repaired from the store (an edited one kept aside first), and an unsealed log
    is sealed under a new lease, chained after its last event. Returns what was done,
    for the user (empty: the log was whole).

    Raises:
        ResumeRefused: the run's owner may still be alive (it may be sealing it now), or
            another process took the run over meanwhile.
    """
    from ..events.hub import EventHub
    from ..sinks.file import FileSink
    from ..store import LeaseLostError, default_owner

    run_id = record.id
    lines = list(store.lines(run_id))
    sealed = bool(lines) and json.loads(lines[-1]).get("kind") == EventKind.LOG_SEALED.value
    done: list[str] = []
    if not sealed and _owner_alive(record.owner) is not False:
        raise ResumeRefused(
            f"run {run_id} finished ({record.status}) but its log is not sealed yet, and its "
            f"owner {record.owner} may still be sealing it; try again once it has exited"
        )
    if audit_log is not None:
        set_aside = set_aside_diverged_export(audit_log, lines)
        if set_aside is not None:
            done.append(f"the edited log kept as {set_aside}")
        if repair_export(audit_log, lines):
            done.append(f"{audit_log} repaired from the run store")
    if sealed:
        return done
    try:
        committer = await store.take_over(run_id, default_owner(), expect_epoch=record.epoch)
    except LeaseLostError:
        raise ResumeRefused(
            f"run {run_id} was taken over by another process meanwhile; nothing was done"
        ) from None
    hub = EventHub(
        run_id=run_id,
        pipeline_hash=record.source_hash,
        sinks=() if audit_log is None else (FileSink(audit_log),),
        keep_history=False,
        committer=committer,
    )
    last_hash = hashlib.sha256(lines[-1].encode()).hexdigest() if lines else ""
    hub.continue_chain(
        len(lines), last_hash, audit_lines_before=len(lines) if audit_log is not None else 0
    )
    hub.seal_on_close = True
    async with hub.running():
        pass  # closing the hub seals the log: log_sealed committed, then written
    failure = hub.audit_failure_message()
    if failure is not None:
        raise ResumeRefused(f"run {run_id}: its log could not be sealed: {failure}")
    done.append("its log sealed (log_sealed)")
    return done


def _refuse_foreign_log(path: str | os.PathLike[str], run_id: str) -> None:
    """Refuse to repair (rewrite) a JSONL file that holds another run's log: two runs
    were given one path. Only a whole first line naming another run counts (a torn or
    empty file is this run's, cut short, and is repaired).

    Raises:
        ResumeRefused: the file's first event is another run's.
    """
    try:
        with open(path, "rb") as export:
            first = export.readline()
    except FileNotFoundError:
        return
    except OSError:
        return  # the repair reports what is wrong with the file
    if not first.endswith(b"\n"):
        return
    try:
        other = json.loads(first).get("run_id")
    except (ValueError, AttributeError):
        return
    if isinstance(other, str) and other != run_id:
        raise ResumeRefused(
            f"the audit log {os.fspath(path)} holds run {other}'s log, not run {run_id}'s "
            "(both were given this path); a resume would overwrite it. Move it away: the "
            "resume then rebuilds this run's log there from the run store"
        )


def _common_prefix(a: bytes, b: bytes) -> int:
    """The length of the longest common prefix of `a` and `b` (slices compared in C)."""
    if b.startswith(a):
        return len(a)
    low, high = 0, min(len(a), len(b))
    while low < high:  # invariant: a[:low] == b[:low]; they differ within [:high]
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class Resumption:
    """A run taken over for its resume, ready to go on (`open_resume`): its replaying
    `hub` exists (a UI can attach to it) but nothing was published yet."""

    def __init__(
        self,
        compiled: CompiledPipeline,
        record: RunRecord,
        hub: ReplayHub,
        options: RunOptions,
        resumed: dict[str, object],
    ) -> None:
        self.compiled = compiled
        self.record = record
        self.hub = hub
        self.options = options
        self._resumed = resumed

    @property
    def stats(self) -> ReplayStats:
        """What the resume served from the memo and what it ran (filled in as it runs)."""
        return self.hub.replay.stats

    async def run(
        self,
        *,
        handlers: object,
        model: Model | None,
        tools: Mapping[str, Tool] | None = None,
    ) -> RunResult:
        """Publish `run_resumed` and run to the end (see `resume_run`)."""
        from .run_result import with_audit_outcome
        from .runner import run_pipeline

        hub = self.hub
        async with hub.running():
            hub.publish(EventKind.RUN_RESUMED, payload=self._resumed)
            result = await run_pipeline(
                self.compiled,
                self.record.input,
                handlers=handlers,
                model=model,
                tools=tools,
                hub=hub,
                options=self.options,
            )
        return with_audit_outcome(result, hub)


async def open_resume(
    compiled: CompiledPipeline,
    store: RunStore,
    run_id: str,
    *,
    sinks: Sequence[LogSink] = (),
    options: RunOptions | None = None,
    allow_changed: bool = False,
    force: bool = False,
) -> Resumption:
    """Check the run can be resumed, take its lease, load its memo and committed events,
    repair its JSONL export (`options.audit_log`) and build its replaying hub.

    Raises:
        ResumeRefused: the run finished, its source changed, or a live process owns it.
        RunNotFoundError: no such run in the store.
    """
    from ..sinks.file import FileSink
    from ..store import LeaseLostError, default_owner
    from .runner import RunOptions

    record = store.run(run_id)
    run_id = record.id
    check_resumable(record, compiled.source_sha256, allow_changed=allow_changed, force=force)
    options = options or RunOptions()
    if options.audit_log is not None:
        _refuse_foreign_log(options.audit_log, run_id)
    owner = default_owner()
    try:  # only if no one took the run over since it was read: one of two resumes wins
        committer = await store.take_over(
            run_id, owner, status="running", expect_epoch=record.epoch
        )
    except LeaseLostError:
        raise ResumeRefused(
            f"run {run_id} was resumed by another process meanwhile (its lease changed "
            f"hands after it was read: now {store.run(run_id).owner}); nothing was done"
        ) from None
    lines = list(store.lines(run_id))
    replay = ReplayFilter.from_lines(lines, store.memo(run_id))
    repaired, set_aside = False, None
    if options.audit_log is not None:
        set_aside = set_aside_diverged_export(options.audit_log, lines)
        repaired = repair_export(options.audit_log, lines)
        sinks = (FileSink(options.audit_log), *sinks)
    hub = ReplayHub(
        replay=replay,
        run_id=run_id,
        pipeline_hash=compiled.source_sha256,
        sinks=sinks,
        keep_history=options.keep_history,
        committer=committer,
    )
    last_hash = hashlib.sha256(lines[-1].encode()).hexdigest() if lines else ""
    hub.continue_chain(
        len(lines), last_hash, audit_lines_before=len(lines) if options.audit_log else 0
    )
    resumed: dict[str, object] = {
        "resumed_from": record.status,
        "last_seq": len(lines) - 1,
        "owner": owner,
        "previous_owner": record.owner,
        "epoch": committer.epoch,
        "export_repaired": repaired,
    }
    if set_aside is not None:
        resumed["export_set_aside"] = str(set_aside)
    return Resumption(
        compiled, record, hub, replace(options, run_id=run_id, audit_log=None), resumed
    )


async def resume_run(
    compiled: CompiledPipeline,
    store: RunStore,
    run_id: str,
    *,
    handlers: object,
    model: Model | None,
    tools: Mapping[str, Tool] | None = None,
    sinks: Sequence[LogSink] = (),
    options: RunOptions | None = None,
    allow_changed: bool = False,
    force: bool = False,
) -> RunResult:
    """Continue run `run_id` of `compiled` from what `store` recorded, to its end.

    The run takes the lease (its epoch bumps: a process still writing it is fenced
    out), its log continues from the last committed event after a `run_resumed`
    event, and the run re-executes with its memo: recorded invocations, model turns
    and tool results are served, not run again; the first step without a record goes
    live (docs/resume.md).

    Args:
        compiled: the pipeline the run ran (its source hash must match the run's unless
            `allow_changed`).
        store: the run store holding the run.
        run_id: the run's id (or a unique prefix of it).
        handlers, model, tools, sinks: as for `run_pipeline`.
        options: as for `run_pipeline`; the run id is the run's own. With `audit_log`,
            that JSONL export is first repaired from the store, then appended to.
        allow_changed: resume even though the pipeline's source changed.
        force: resume a `running` run whose owner still looks alive.

    Raises:
        ResumeRefused: the run finished, its source changed, or a live process owns it.
        RunNotFoundError: no such run in the store.
    """
    resumption = await open_resume(
        compiled, store, run_id, sinks=sinks, options=options,
        allow_changed=allow_changed, force=force,
    )  # fmt: skip
    return await resumption.run(handlers=handlers, model=model, tools=tools)
