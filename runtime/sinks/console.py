"""`ConsoleSink`: a run as readable lines on a terminal (or JSON lines with `json=True`).

Human mode prints one line per run-level event, e.g.::

    12:03:04 writer_agent #2 ▶ started (feedback: 2 issues)
    12:03:09 reviewer_agent #1 ✗ failed: 2 blocking issues
    12:03:12 state running → complete

Events of fan-out items (any item but `main`) are summarised in one progress
line, "items 312/1000 passed 300 aborted 12": redrawn in place on a TTY, printed
at every 10% of finished items otherwise. Streamed `model_text` deltas are not
printed. Error messages keep their end (the cause): a long one loses its
middle. Anything that looks like an Anthropic API key (`sk-ant-...`) is
redacted from every line, in both modes, whatever the payload holds.

Model text is untrusted: a terminal escape in it (`\x1b]0;...\x07` retitles
the window, `\x1b[2J` clears it) would reach the terminal. Human lines show
every non-printable character escaped (`\x1b`, `\n`), so a line is one line;
JSON lines escape the C1 controls and bidi overrides that JSON leaves raw.
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

from ..events.event import EventKind, PipelineEvent

__all__ = ["ConsoleSink", "printable", "redact", "summarize"]

_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}")
_RED, _GREEN, _BLUE, _YELLOW, _DIM, _RESET = (
    "\x1b[31m",
    "\x1b[32m",
    "\x1b[34m",
    "\x1b[33m",
    "\x1b[2m",
    "\x1b[0m",
)
_ITEM_DONE = ("passed", "completed", "failed", "aborted")


def redact(text: str) -> str:
    """Replace anything shaped like an Anthropic API key with `sk-ant-***`."""
    return _KEY_PATTERN.sub("sk-ant-***", text)


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters JSON strings may hold raw that a terminal acts on: DEL, the C1
# controls (0x9b is a one-byte CSI), line/paragraph separators, bidi controls.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every non-printable character (controls, newlines) escaped."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else _NAMED_ESCAPES.get(ch) or ascii(ch)[1:-1] for ch in text
    )


def _json_safe(line: str) -> str:
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else jsonlib.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_text(value: Any, limit: int = 240) -> str:
    """An error message on one line; a long one loses its middle, never its end: the
    cause ("... failed: <why>") comes last."""
    text = " ".join(str(value).split())
    if len(text) <= limit:
        return text
    head = limit * 2 // 5
    return f"{text[:head]} … {text[len(text) - (limit - head - 3) :]}"


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


def _blocking(issues: Any) -> int:
    if not isinstance(issues, list):
        return 0
    return sum(1 for i in issues if not isinstance(i, dict) or i.get("severity") != "warning")


def summarize(event: PipelineEvent) -> str:
    """The short human text of one event (without time and agent prefix), on one line."""
    return printable(_summary(event))


def _summary(event: PipelineEvent) -> str:
    p = event.payload
    match event.kind:
        case EventKind.RUN_STARTED:
            return f"run started: {p.get('pipeline', '?')} (model {p.get('model', '?')})"
        case EventKind.RUN_FINISHED:
            return f"run finished: {p.get('status', '?')} in state {p.get('final_state', '?')}"
        case EventKind.RUN_CANCELLED:
            return f"run cancelled: {_error_text(p.get('reason', ''))}"
        case EventKind.TRANSITION:
            noop = " (no-op)" if p.get("noop") else ""
            return f"state {p.get('from', '?')} → {p.get('to', '?')}{noop}"
        case EventKind.TRANSITION_DEFERRED:
            return f"state → {p.get('to', '?')} deferred until the run ends ({p.get('trigger')})"
        case EventKind.AGENT_STARTED:
            n = _count(p.get("feedback"))
            return "▶ started" + (f" (feedback: {n} issue{'s' * (n != 1)})" if n else "")
        case EventKind.AGENT_COMPLETED:
            return "✓ completed" + (f": {_short(p['text'])}" if p.get("text") else "")
        case EventKind.AGENT_FAILED:
            return f"✗ error: {p.get('error', '')}: {_error_text(p.get('message', ''))}"
        case EventKind.QA_VERDICT:
            if p.get("passed"):
                return "✓ passed"
            n = _blocking(p.get("issues"))
            return f"✗ failed: {n} blocking issue{'s' * (n != 1)}"
        case EventKind.RETRY_SCHEDULED:
            delay = p.get("delay_ms")
            delay_text = f"{delay:.0f}" if isinstance(delay, int | float) else "?"
            return (
                f"↻ retry {p.get('target', '?')} (attempt {p.get('next_attempt', '?')}) "
                f"in {delay_text} ms"
            )
        case EventKind.ROUTE_CHOSEN:
            return _route_text(p)
        case EventKind.ITEM_CREATED:
            return f"item {event.item} created"
        case EventKind.ITEM_FINISHED:
            return f"item {event.item} {p.get('status', 'finished')}"
        case EventKind.MODEL_REQUEST:
            tools = p.get("tools") or []
            offered = f", tools: {', '.join(map(str, tools))}" if tools else ""
            return f"→ model turn {p.get('turn', '?')} ({p.get('model', '?')}{offered})"
        case EventKind.ITEM_ABORTED:
            return f"item aborted: {_error_text(p.get('reason', ''))}"
        case EventKind.AGGREGATION:
            return f"aggregation {p.get('strategy', '?')}: {p.get('decision', '?')}"
        case EventKind.MODEL_RESPONSE:
            usage = p.get("usage") or {}
            calls = _count(p.get("tool_calls"))
            tools = f", {calls} tool call{'s' * (calls != 1)}" if calls else ""
            return (
                f"model turn {p.get('turn', '?')}: {usage.get('input_tokens', 0)} in / "
                f"{usage.get('output_tokens', 0)} out tokens{tools}"
            )
        case EventKind.MODEL_ERROR:
            retry = " (retrying)" if p.get("retrying") else ""
            return f"model error{retry}: {_error_text(p.get('error', ''))}"
        case EventKind.TOOL_CALL:
            return f"tool {p.get('tool', '?')}({_short(p.get('input', {}), 50)})"
        case EventKind.TOOL_RESULT:
            if p.get("error"):
                return f"tool {p.get('tool', '?')} ✗ {_error_text(p['error'])}"
            return f"tool {p.get('tool', '?')} ✓ {_short(p.get('output', ''), 50)}"
        case EventKind.SINK_ERROR:
            return f"sink {p.get('sink', '?')}: {p.get('error', '')}"
        case EventKind.BUDGET_EXCEEDED:
            return f"budget exceeded: {p.get('limit', '?')} (spent {p.get('spent', '?')})"
        case _:
            return f"{event.kind.value} {_short(p, 80)}" if p else event.kind.value


def _route_text(p: Mapping[str, Any]) -> str:
    """`⤳ case 'more' (value 'more') → executor, iteration 2 of 4`, or the exhausted form."""
    case = p.get("case", "?")
    value = p.get("value")
    shown = f" ({p.get('on', '?')} = {_short(value, 40)})" if value != case else ""
    text = f"⤳ case {_short(case, 40)}{shown} → {p.get('to', '?')}"
    if p.get("exhausted"):
        return f"{text}: case exhausted after {p.get('max_iterations', '?')} iterations"
    if "iteration" in p:
        text += f", iteration {p['iteration']} of {p.get('max_iterations', '?')}"
    return text


def _color_of(event: PipelineEvent) -> str:
    kind, p = event.kind, event.payload
    if kind in (EventKind.AGENT_FAILED, EventKind.ITEM_ABORTED, EventKind.MODEL_ERROR):
        return _RED
    if kind is EventKind.QA_VERDICT:
        return _GREEN if p.get("passed") else _RED
    if kind in (EventKind.AGENT_COMPLETED,):
        return _GREEN
    if kind in (EventKind.AGENT_STARTED, EventKind.TRANSITION):
        return _BLUE
    if kind in (EventKind.RETRY_SCHEDULED, EventKind.SINK_ERROR, EventKind.WARNING):
        return _YELLOW
    return ""


_CHILD_RUN_END = frozenset({EventKind.ITEM_FINISHED, EventKind.TRANSITION})
"""A sub-pipeline run's own end: its items and state machine (not the run's) are not shown."""


class ConsoleSink:
    """Prints events to `stream`: readable lines by default, JSON lines with `json=True`.

    Writes are synchronous: a terminal or pipe takes a short line at once; if it
    blocks (a paused pager), the hub's bounded buffer drops the oldest console
    lines rather than stalling the run.
    """

    audit = False

    def __init__(
        self,
        stream: TextIO | None = None,
        json: bool = False,
        color: bool | Literal["auto"] = "auto",
        *,
        name: str = "console",
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.json = json
        self.name = name
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if color == "auto":
            color = self.tty and "NO_COLOR" not in os.environ
        self.color = color
        # Invariant: counts over fan-out items (every item but "main").
        self.items_total = 0
        self.items_done: dict[str, int] = dict.fromkeys(_ITEM_DONE, 0)
        self._progress_shown = False  # a TTY progress line is on screen, unterminated
        self._last_decile = 0
        self._last_draw = 0.0

    async def emit(self, event: PipelineEvent, *, line: str) -> None:
        if self.json:
            self._write(redact(_json_safe(line)) + "\n")
            return
        if event.kind is EventKind.MODEL_TEXT or event.kind is EventKind.LOG_SEALED:
            return  # streamed text is too much; the seal is in the run's summary
        if event.item not in (None, "main"):
            if "subpipeline" in event.payload:  # a child run's event: not a run item
                if event.item.startswith("main/") and event.kind not in _CHILD_RUN_END:
                    self._print_line(self._format(event))  # on the main item's path
                return
            self._on_item_event(event)
            return
        self._print_line(self._format(event))

    def _format(self, event: PipelineEvent) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
        who = ""
        if event.agent:
            who = printable(event.agent) + (f" #{event.attempt}" if event.attempt else "") + " "
        text = f"{who}{summarize(event)}"
        color = _color_of(event) if self.color else ""
        if color:
            return f"{_DIM}{stamp}{_RESET} {color}{text}{_RESET}"
        return f"{stamp} {text}"

    def progress(self) -> str:
        """`items 7/10: 5 passed, 1 completed, 1 aborted`: each status by its own name
        (an item no gate judged is `completed`, not `passed`)."""
        done = self.items_done
        finished = sum(done.values())
        counts = ", ".join(
            f"{done[status]} {status}"
            for status in ("passed", "completed", "failed", "aborted")
            if done[status]
        )
        return f"items {finished}/{self.items_total}" + (f": {counts}" if counts else "")

    def _on_item_event(self, event: PipelineEvent) -> None:
        if event.kind is EventKind.ITEM_CREATED:
            self.items_total += 1
        elif event.kind is EventKind.ITEM_FINISHED:
            status = str(event.payload.get("status", "completed"))
            self.items_done[status if status in self.items_done else "completed"] += 1
        else:
            return
        finished = sum(self.items_done.values())
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or finished == self.items_total:
                self._last_draw = now
                self._write("\r\x1b[K" + self.progress())
                self._progress_shown = True
        elif event.kind is EventKind.ITEM_FINISHED and self.items_total:
            decile = finished * 10 // self.items_total
            if decile > self._last_decile:
                self._last_decile = decile
                self._print_line(self.progress())

    def _print_line(self, text: str) -> None:
        if self._progress_shown:
            self._write("\r\x1b[K" + redact(text) + "\n" + self.progress())
        else:
            self._write(redact(text) + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    async def aclose(self) -> None:
        if self._progress_shown:
            self._write("\n")
            self._progress_shown = False
