"""`UiSource`: the events the UI serves, from a live hub or a finished run's JSONL.

The UI never touches the run's hot path. A source keeps one append-only list of
the run's JSON event lines (shared by every client: a client is only a cursor
into it, so a slow client costs no memory and cannot slow the run) and a
`trio.Event` that is replaced each time lines arrive, so any number of client
tasks can wait for "more than N lines" without polling.

A live source follows its hub from one feeder task (`UiSource.run`): through
one `hub.subscribe()`. Secrets found in the environment are scrubbed from every line on the way
in (`Redactor`), so nothing served can carry an API key even if a payload did.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import trio

from ..errors import CannotStartError
from ..events.hub import EventHub
from ..events.verify import VerifyReport, verify_run_log
from ..pipeline import CompiledPipeline
from .graph import model_badge

__all__ = ["SUBSCRIPTION_BUFFER", "Redactor", "RunLogError", "UiSource"]

SUBSCRIPTION_BUFFER = 100_000
"""Events the UI's hub subscription may hold before it must be renewed."""

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
_MIN_SECRET_LEN = 8


class RunLogError(CannotStartError):
    """Raised when a run log given to `agentflow serve` cannot be read as JSONL events."""


class Redactor:
    """Replaces the values of secret-looking environment variables with `[redacted]`.

    A variable counts as secret when its name ends in KEY, TOKEN, SECRET,
    PASSWORD or CREDENTIALS and its value is at least 8 characters long
    (shorter values would redact ordinary words).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        secrets = {
            value
            for name, value in env.items()
            if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LEN
        }
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text


class UiSource:
    """A run's events for the UI: history so far, then live ones as they come.

    Build one with `from_hub` (a live run) or `from_log` (a finished run's
    JSONL audit log). `lines[i]` is the JSON of the event with seq `i`.
    """

    def __init__(
        self,
        pipeline: CompiledPipeline | None,
        *,
        model_name: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        # None: a stored run whose YAML cannot be read any more (the page draws the
        # agents its events name).
        self.pipeline = pipeline
        self.run_id: str | None = None
        self._model_name = model_name
        self._redact = redactor or Redactor()
        # Invariant: append-only; lines[i] is the (redacted) JSON line of event i.
        self.lines: list[str] = []
        # Invariant: same length as `lines`; (kind, agent, item) of each event.
        self.index: list[tuple[str, str | None, str | None]] = []
        # Invariant: True once a run_finished event has been appended (and no
        # run_resumed after it: a resumed run is live again).
        self.finished = False
        # True while an owner may still append events: a live hub until it closes,
        # a stored run while its owner lives; never for a log file.
        self.live = False
        # From run_started / run_finished: what the runs list shows.
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.final_status = ""
        self.final_state: str | None = None
        # Invariant: sums over the events held (items finished, model_response usage).
        self.totals: dict[str, Any] = {
            "passed": 0, "failed": 0, "model_calls": 0, "tokens": 0, "cost_usd": 0.0,
        }  # fmt: skip
        # Invariant: set (and replaced) whenever `lines` grows; waiters re-check the length.
        self._changed = trio.Event()
        self._hub: EventHub | None = None
        # Invariant: events of the hub the UI never received (only without hub history).
        self.missed = 0
        # A finished run's log (`from_log`): what `agentflow verify` says of it, and that
        # as JSON data (/api/config serves it; the page warns unless `ok`). None when live.
        self.verify_report: VerifyReport | None = None
        self.verification: dict[str, Any] | None = None

    @classmethod
    def from_hub(
        cls,
        hub: EventHub,
        pipeline: CompiledPipeline,
        *,
        model_name: str | None = None,
        redactor: Redactor | None = None,
    ) -> UiSource:
        """A source that follows a live hub once `run()` is started in a nursery."""
        source = cls(pipeline, model_name=model_name, redactor=redactor)
        source._hub = hub
        source.live = True
        return source

    @classmethod
    def from_log(
        cls, path: str | Path, pipeline: CompiledPipeline, *, redactor: Redactor | None = None
    ) -> UiSource:
        """A source holding every event of a finished run's JSONL audit log, and what
        `agentflow verify` says of it (`verify_report`, `verification`).

        Raises:
            RunLogError: the file cannot be read, or a line is not a JSON event.
        """
        source = cls(pipeline, redactor=redactor)
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise RunLogError(
                f"cannot read run log {path}: {error.strerror}. "
                "Pass the .jsonl audit log that `agentflow run` wrote."
            ) from error
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise RunLogError(
                    f"{path}:{number}: not UTF-8 text ({error.reason} at byte "
                    f"{error.start + 1} of the line). Pass the .jsonl audit log that "
                    "`agentflow run` wrote, unedited."
                ) from None
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as error:
                why = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deep"
                raise RunLogError(
                    f"{path}:{number}: not a JSON event line ({why}). "
                    "Pass the .jsonl audit log that `agentflow run` wrote, unedited."
                ) from None
            if not isinstance(event, dict) or "kind" not in event:
                raise RunLogError(
                    f"{path}:{number}: a JSON value without a 'kind' is not a pipeline event. "
                    "Pass the .jsonl audit log that `agentflow run` wrote."
                )
            source.append(event, line)
        # Whatever reads this log, the UI shows it with its verdict (`agentflow verify`).
        source.verify_report = report = verify_run_log(path, pipeline.spec)
        source.verification = report.as_dict()
        return source

    # -- feeding -----------------------------------------------------------

    def append(self, event: Mapping[str, Any] | Any, line: str) -> None:
        """Add one event (a PipelineEvent or its dict) and its JSON line; wakes waiters."""
        self._add(event, line)
        self._wake()

    def extend(self, pairs: Iterable[tuple[Any, str]]) -> None:
        """Add several (event, line) pairs with one wake-up."""
        for event, line in pairs:
            self._add(event, line)
        self._wake()

    def _add(self, event: Mapping[str, Any] | Any, line: str) -> None:
        get = event.get if isinstance(event, Mapping) else lambda k: getattr(event, k, None)
        kind = str(get("kind"))
        self.lines.append(self._redact(line))
        self.index.append((kind, get("agent"), get("item")))
        if kind in _SUMMARISED:
            self._summarise(kind, get("item"), get("payload"), get("ts"))

    def _summarise(self, kind: str, item: Any, payload: Any, ts: Any) -> None:
        payload = payload if isinstance(payload, Mapping) else {}
        if kind == "model_response":
            usage = payload.get("usage") or {}
            self.totals["model_calls"] += 1
            tokens = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
            self.totals["tokens"] += tokens
            self.totals["cost_usd"] += usage.get("cost_usd") or 0.0
        elif kind == "item_finished" and item != "main":
            status = payload.get("status")
            if status in ("passed", "completed"):
                self.totals["passed"] += 1
            elif status in ("failed", "aborted"):
                self.totals["failed"] += 1
        elif kind == "run_started":
            self.started_at = ts if isinstance(ts, (int, float)) else None
            if self._model_name is None:
                self._model_name = _model_from_payload(payload)
        elif kind == "run_resumed":
            self.finished = False
            self.finished_at = None
        elif kind == "run_finished":
            self.finished = True
            self.finished_at = ts if isinstance(ts, (int, float)) else None
            self.final_status = str(payload.get("status") or "")
            self.final_state = payload.get("final_state")

    @property
    def run_state(self) -> str:
        """`live`, `finished`, `waiting` (for a person's answer) or `crashed` (no
        run_finished and nobody left to write one)."""
        if self.finished:
            return "waiting" if self.final_status == "waiting" else "finished"
        return "live" if self.live else "crashed"

    def redact(self, text: str) -> str:
        """`text` with secrets from the environment scrubbed (for any served document)."""
        return self._redact(text)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run(self) -> None:
        """Follow the hub until it closes (a log source returns at once).

        One subscription feeds every client. If it overflows (the run emitted
        more than `SUBSCRIPTION_BUFFER` events without yielding to trio), it is
        renewed: the hub replays its history and events already held are
        skipped by seq. Without history the skipped events are counted in
        `missed` (the UI is not the audit log; the JSONL sink is).
        """
        hub = self._hub
        if hub is None:
            return
        try:
            while True:
                subscription = hub.subscribe(max_buffer=SUBSCRIPTION_BUFFER)
                async for event, line in subscription:
                    seq = int(getattr(event, "seq", len(self.lines)))
                    if seq < len(self.lines) + self.missed:
                        continue
                    self.missed += seq - len(self.lines) - self.missed
                    self.append(event, line)
                if not subscription.overflowed:
                    return
        finally:
            self.live = False

    # -- reading -----------------------------------------------------------

    async def wait_beyond(self, count: int) -> None:
        """Return once more than `count` events are available."""
        while len(self.lines) <= count:
            await self._changed.wait()

    @property
    def model_name(self) -> str:
        """The model's name as the run reported it ("replay", "anthropic", ...), or ""."""
        return self._model_name or ""

    @property
    def offline(self) -> bool:
        """True when no model is called: offline replay or a dry run (the UI says so loudly)."""
        return bool(model_badge(self.model_name)["offline"])

    def select(
        self,
        *,
        item: str | None = None,
        agent: str | None = None,
        kind: str | None = None,
        after: int = -1,
        limit: int = 1000,
    ) -> list[int]:
        """Indexes of events with seq > `after` matching every filter given, at most `limit`."""
        found: list[int] = []
        for i in range(max(after + 1, 0), len(self.index)):
            e_kind, e_agent, e_item = self.index[i]
            if item is not None and e_item != item:
                continue
            if agent is not None and e_agent != agent:
                continue
            if kind is not None and e_kind != kind:
                continue
            found.append(i)
            if len(found) >= limit:
                break
        return found


_SUMMARISED = frozenset(
    {"model_response", "item_finished", "run_started", "run_resumed", "run_finished"}
)


def _model_from_payload(payload: Any) -> str | None:
    """The model name in a run_started payload: `model` as a string or {"name": ...}."""
    if not isinstance(payload, Mapping):
        return None
    model = payload.get("model")
    if isinstance(model, str):
        return model
    if isinstance(model, Mapping):
        name = model.get("name")
        return str(name) if name is not None else None
    return None
