"""`agentflow runs / show / export / output`: the run history kept in the store.

    agentflow runs [--pipeline NAME] [--status S] [--limit N]
    agentflow show RUN            # summary, per-item outcomes, the final output in full
    agentflow export RUN [--jsonl PATH]   # the run's log, byte for byte
    agentflow output RUN          # the final output alone

RUN is a run id, or a prefix naming one run. A run still marked `running` whose
owner was a process on this machine that no longer exists is shown as
`interrupted` (it crashed or was killed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable

from ..models.pricing import PriceTable
from ..sinks.console import printable
from ..store import RunNotFoundError, RunRecord, RunStore
from ..store.liveness import shown_status
from .store_options import StoreUsageError, open_store_for_reading

__all__ = ["cmd_export", "cmd_output", "cmd_runs", "cmd_show", "for_terminal", "shown_status"]


def for_terminal(text: str) -> str:
    """Untrusted multi-line text (a model's output) made safe to print: every
    non-printable character but newline and tab escaped (`\\x1b`), so no terminal
    escape in it reaches the terminal."""
    if text.isprintable():
        return text
    return "\n".join(
        "\t".join(printable(part) for part in line.split("\t")) for line in text.split("\n")
    )


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _times(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _duration(record: RunRecord) -> str:
    if record.finished_at is None:
        return "-"
    seconds = max(0.0, record.finished_at - record.started_at)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _with_store(args: argparse.Namespace, command: object) -> int:
    store = open_store_for_reading(args)
    try:
        return command(store)  # type: ignore[operator, no-any-return]
    except RunNotFoundError as exc:
        raise StoreUsageError(str(exc)) from None
    finally:
        store.close()


def cmd_runs(args: argparse.Namespace) -> int:
    """`agentflow runs`: the store's runs, newest first, as a table (or JSON lines)."""

    def table(store: RunStore) -> int:
        limit = args.limit or None
        if args.status in ("running", "interrupted"):  # told apart by the owner's liveness
            records = store.runs(pipeline=args.pipeline, status="running", limit=None)
            records = [r for r in records if shown_status(r) == args.status][:limit]
        else:
            records = store.runs(pipeline=args.pipeline, status=args.status, limit=limit)
        if args.json:
            for r in records:
                summary = _summary(r)
                if r.status == "waiting":
                    summary["waiting_for"] = _waiting_for(store, r.id)
                print(json.dumps(summary))
            return 0
        if not records:
            print(f"no runs in {store.location.shown}")
            return 0
        header = ("RUN", "PIPELINE", "STATUS", "STARTED", "TOOK", "PASSED", "FAILED",
                  "CALLS", "TOKENS", "COST")  # fmt: skip
        rows = [_row(r) for r in records]
        widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        return 0

    return _with_store(args, table)


def _waiting_for(store: RunStore, run_id: str) -> list[dict[str, object]]:
    from ..engine.human import human_steps

    return [
        {"agent": s.agent, "item": s.item, "assignee": s.assignee, "answered_by": s.answered_by}
        for s in human_steps(store, run_id)
    ]


def _row(r: RunRecord) -> tuple[str, ...]:
    run = (r.id, r.pipeline, shown_status(r), _when(r.started_at), _duration(r))
    if r.finished_at is None:  # the counts are written by run_finished: none yet
        return (*run, "-", "-", "-", "-", "-")
    passed = r.items_passed + r.items_completed
    failed = r.items_failed + r.items_aborted
    tokens = r.input_tokens + r.output_tokens
    return (*run, str(passed), str(failed), str(r.model_calls), str(tokens), f"${r.cost_usd:.4f}")


def _summary(r: RunRecord) -> dict[str, object]:
    """The run as `runs --json` prints it. The counts, tokens and cost are written by
    `run_finished`: null until the run has finished (the table shows "-")."""
    finished = r.finished_at is not None
    return {
        "id": r.id,
        "pipeline": r.pipeline,
        "status": shown_status(r),
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "final_state": r.final_state,
        "reason": r.reason,
        "items": {
            "passed": r.items_passed,
            "failed": r.items_failed,
            "aborted": r.items_aborted,
            "completed": r.items_completed,
        }
        if finished
        else None,
        "model_calls": r.model_calls if finished else None,
        "input_tokens": r.input_tokens if finished else None,
        "output_tokens": r.output_tokens if finished else None,
        "cost_usd": r.cost_usd if finished else None,
        "events": r.events,
        "jsonl": r.jsonl_path,
    }


def _item_outcomes(store: RunStore, run_id: str) -> list[tuple[str, str, str | None]]:
    """(item, status, reason) for each item, from its item_finished / item_aborted events."""
    statuses: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for line in store.lines(run_id, kinds=("item_created", "item_finished", "item_aborted")):
        event = json.loads(line)
        item = event.get("item") or "main"
        payload = event.get("payload") or {}
        if event["kind"] == "item_created":
            statuses.setdefault(item, "unfinished")
        elif event["kind"] == "item_finished":
            statuses[item] = str(payload.get("status"))
        else:
            reasons.setdefault(item, str(payload.get("reason")))
    if "main" not in statuses:  # main has no item_created event
        statuses = {"main": "unfinished", **statuses}
    else:
        statuses = {"main": statuses.pop("main"), **statuses}
    return [(item, status, reasons.get(item)) for item, status in statuses.items()]


def caching_report(responses: Iterable[str]) -> list[str]:
    """What prompt caching did in a run, from its `model_response` event lines: cache
    tokens written and read per agent, and what that saved against the same calls made
    without caching, at the built-in prices (a write costs more than plain input, a read
    far less). Nothing when no call wrote or read the cache."""
    prices = PriceTable.default()
    per_agent: dict[str, list[float]] = {}
    for line in responses:
        event = json.loads(line)
        payload = event.get("payload") or {}
        usage = payload.get("usage") or {}
        written = int(usage.get("cache_creation_input_tokens") or 0)
        read = int(usage.get("cache_read_input_tokens") or 0)
        if not (written or read):
            continue
        price = prices.price_for(str(payload.get("model") or ""))
        saved = 0.0
        if price is not None:
            saved = read * (price.input - price.cache_read) - written * (
                price.cache_write - price.input
            )
            saved /= 1_000_000
        totals = per_agent.setdefault(str(event.get("agent") or "-"), [0, 0, 0.0])
        totals[0] += written
        totals[1] += read
        totals[2] += saved
    if not per_agent:
        return []
    written = int(sum(t[0] for t in per_agent.values()))
    read = int(sum(t[1] for t in per_agent.values()))
    saved = sum(t[2] for t in per_agent.values())
    lines = [
        f"prompt caching: {written} tokens written, {read} read; saved {_usd(saved)} against "
        "the same calls uncached (built-in prices)"
    ]
    for agent, (w, r, s) in per_agent.items():
        lines.append(printable(f"  {agent}: {int(w)} written, {int(r)} read, saved {_usd(s)}"))
    return lines


def _usd(amount: float) -> str:
    """`$0.0525`, or `-$0.0015` when caching cost more than it saved (writes, no reads)."""
    return f"{'-' if amount < 0 else ''}${abs(amount):.4f}"


def cmd_show(args: argparse.Namespace) -> int:
    """`agentflow show RUN`: the run's summary, its items, and its final output in full."""

    def show(store: RunStore) -> int:
        r = store.run(args.run)
        status = shown_status(r)
        state = f" in state '{r.final_state}'" if r.final_state else ""
        print(f"run {r.id}: {status.upper()}{state}")
        where = f" ({r.pipeline_path})" if r.pipeline_path else ""
        print(f"pipeline: {r.pipeline}{where}, source sha256 {r.source_hash[:12]}")
        print(f"agentflow {r.agentflow_version}, model {r.model or '-'}, owner {r.owner}")
        resumes = [json.loads(line) for line in store.lines(r.id, kinds=("run_resumed",))]
        across = f" (wall time from its start, across {_times(len(resumes), 'resume')})"
        print(f"started: {_when(r.started_at)}, took {_duration(r)}" + (across if resumes else ""))
        if resumes:
            sources = ", ".join(str(e["payload"].get("resumed_from")) for e in resumes)
            print(f"resumed {_times(len(resumes), 'time')} (from {sources})")
        print(f"input: {printable(json.dumps(r.input, ensure_ascii=False))}")
        print(
            f"items: {r.items_passed} passed, {r.items_failed} failed, "
            f"{r.items_aborted} aborted, {r.items_completed} completed"
        )
        print(
            f"usage: {r.model_calls} model call{'' if r.model_calls == 1 else 's'}, "
            f"{r.input_tokens}+{r.output_tokens} tokens, ${r.cost_usd:.4f}"
        )
        for line in caching_report(store.lines(r.id, kinds=("model_response",))):
            print(line)
        if r.reason:
            print(f"reason: {printable(r.reason)}")
        print(f"events: {r.events} committed" + (f"; log {r.jsonl_path}" if r.jsonl_path else ""))
        print("per item:")
        for item, item_status, reason in _item_outcomes(store, r.id):
            if r.status == "waiting" and item_status == "unfinished":
                item_status = "waiting"  # for a human step (below), or a child item's
            line = f"  {item}: {item_status}" + (f": {reason}" if reason else "")
            print(printable(line))
        if r.status == "waiting":
            _print_human_steps(store, r.id)
        if r.output is None:
            print("output: none recorded")
        else:
            print("output:")
            print(for_terminal(r.output))
        return 0

    return _with_store(args, show)


def _print_human_steps(store: RunStore, run_id: str) -> None:
    """A waiting run's open human steps: who is asked what, and the command that answers."""
    from ..engine.human import answer_command, human_steps

    for step in human_steps(store, run_id):
        who = f", assignee {step.assignee}" if step.assignee else ""
        state = f" (answered by {step.answered_by}; resume it)" if step.answered_by else ""
        asked = f"agent {step.agent} on item {step.item}{who}{state}"
        print(printable(f"waiting for a person: {asked}"))
        print(printable(f"  question: {step.question}"))
        if step.answered_by is None:
            print(f"  answer it: {answer_command(run_id, step)}")


def cmd_export(args: argparse.Namespace) -> int:
    """`agentflow export RUN [--jsonl PATH]`: the run's committed events, exactly the
    bytes of its log (to stdout, or written to PATH)."""

    def export(store: RunStore) -> int:
        r = store.run(args.run)
        if args.jsonl:
            written = 0
            with open(args.jsonl, "w", encoding="utf-8", newline="") as out:
                for line in store.lines(r.id):
                    out.write(line + "\n")
                    written += 1
            print(f"{args.jsonl}: {written} events of run {r.id}", file=sys.stderr)
            return 0
        stdout = sys.stdout
        for line in store.lines(r.id):
            stdout.write(line + "\n")
        return 0

    return _with_store(args, export)


def cmd_output(args: argparse.Namespace) -> int:
    """`agentflow output RUN`: the run's final output alone (exit 1 if it has none):
    exactly as recorded into a pipe or file, its control characters escaped on a
    terminal."""

    def output(store: RunStore) -> int:
        r = store.run(args.run)
        if r.output is None:
            print(
                f"agentflow: error: run {r.id} has no recorded output (status {shown_status(r)})",
                file=sys.stderr,
            )
            return 1
        text = r.output if r.output.endswith("\n") else r.output + "\n"
        sys.stdout.write(for_terminal(text) if sys.stdout.isatty() else text)
        return 0

    return _with_store(args, output)
