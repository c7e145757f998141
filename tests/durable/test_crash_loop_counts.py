"""How the crash loop classifies requests across killed processes (tests/durable/crash_loop.py):
a synthetic request log against synthetic commit snapshots, so the classifier can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .crash_loop import Key, Segment, Trial, client_of, count_calls

A1: Key = ("worker", "item-1", 1, 1)
A2: Key = ("worker", "item-1", 1, 2)
B1: Key = ("checker", "item-2", 1, 1)


def _request(api_key: str, key: Key | None) -> dict[str, Any]:
    shown = (
        None if key is None else dict(zip(("agent", "item", "attempt", "turn"), key, strict=True))
    )
    return {"client": client_of(api_key), "key": shown}


def _trial(*committed_after: set[Key]) -> Trial:
    trial = Trial(seed=1, directory=Path("."), store_url="", pipeline=Path("p.yaml"))
    for n, keys in enumerate(committed_after):
        last = n == len(committed_after) - 1
        trial.segments.append(
            Segment(command="resume" if n else "run", api_key=f"k{n}", kill="x",
                    killed=not last, returncode=0 if last else -9, committed_after=keys)
        )  # fmt: skip
    return trial


def test_a_key_committed_before_a_segment_and_asked_in_it_is_repeated_after_commit() -> None:
    trial = _trial({A1}, {A1, A2})
    log = [_request("k0", A1), _request("k1", A1), _request("k1", A2)]
    counts = count_calls(trial, log)
    assert (counts.repeated_after_commit, counts.repeated_in_window) == (1, 0)
    assert (counts.requests, counts.committed) == (3, 2)


def test_a_key_asked_before_a_kill_and_not_committed_is_repeated_in_the_window() -> None:
    trial = _trial({A1}, {A1, A2})
    log = [_request("k0", A1), _request("k0", A2), _request("k1", A2)]
    counts = count_calls(trial, log)
    assert (counts.repeated_after_commit, counts.repeated_in_window) == (0, 1)


def test_requests_of_other_clients_are_not_counted_and_a_key_asked_twice_by_one_process_is() -> (
    None
):
    trial = _trial({B1})
    log = [_request("someone-else", B1), _request("k0", B1), _request("k0", B1)]
    log.append(_request("k0", None))
    counts = count_calls(trial, log)
    assert (counts.requests, counts.repeated_in_segment, counts.unkeyed) == (3, 1, 1)


def test_a_commit_two_segments_back_still_counts() -> None:
    trial = _trial({A1}, {A1}, {A1, B1})
    log = [_request("k0", A1), _request("k2", A1), _request("k2", B1)]
    assert count_calls(trial, log).repeated_after_commit == 1
