"""Compare a replayed run with the run it replays: where does the new path depart?

Concurrent fan-outs interleave differently from run to run, so paths are
compared per work item (each item's steps are sequential), then the run's
outcome is compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["compare_logs", "compare_paths", "path_steps"]

_PATH_KINDS = frozenset(
    {
        "agent_started",
        "agent_failed",
        "qa_verdict",
        "retry_scheduled",
        "item_aborted",
        "item_finished",
    }
)


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _step(event: dict[str, Any]) -> str:
    kind = event["kind"]
    payload = event.get("payload") or {}
    detail = ""
    if kind == "qa_verdict":
        detail = f" passed={payload.get('passed')}"
    elif kind == "item_finished":
        detail = f" status={payload.get('status')}"
    elif kind == "retry_scheduled":
        detail = f" target={payload.get('target')}"
    return f"{kind} {event.get('agent') or '-'} attempt {event.get('attempt')}{detail}"


def path_steps(events: Iterable[dict[str, Any]]) -> tuple[dict[str, list[str]], str]:
    """Per-item step lists and the run's outcome line."""
    per_item: dict[str, list[str]] = {}
    outcome = "no run_finished event"
    for event in events:
        kind = event.get("kind")
        if kind in _PATH_KINDS:
            per_item.setdefault(event.get("item") or "-", []).append(_step(event))
        elif kind == "run_finished":
            payload = event.get("payload") or {}
            outcome = f"{payload.get('status')} in state {payload.get('final_state')!r}"
    return per_item, outcome


def compare_paths(
    recorded: Iterable[dict[str, Any]], replayed: Iterable[dict[str, Any]]
) -> str | None:
    """None if the paths match, else a readable description of the first departure."""
    old_items, old_outcome = path_steps(recorded)
    new_items, new_outcome = path_steps(replayed)
    problems: list[str] = []
    for item in sorted(set(old_items) | set(new_items)):
        old, new = old_items.get(item, []), new_items.get(item, [])
        for index in range(max(len(old), len(new))):
            was = old[index] if index < len(old) else "(nothing)"
            now = new[index] if index < len(new) else "(nothing)"
            if was != now:
                problems.append(f"  item {item}, step {index + 1}: recorded {was!r}, now {now!r}")
                break
    if old_outcome != new_outcome:
        problems.append(f"  outcome: recorded {old_outcome}, now {new_outcome}")
    return "\n".join(problems) if problems else None


def compare_logs(recorded: Path, replayed: Path) -> str | None:
    """`compare_paths` over two JSONL audit logs."""
    return compare_paths(_read(recorded), _read(replayed))
