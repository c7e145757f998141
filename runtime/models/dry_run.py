"""`DryRunModel`: synthetic, deterministic answers, so a pipeline's flow can be walked offline.

No network, no API key, no cassette: a new pipeline can be run end to end
(`agentflow run x.yaml --model dry-run`, or `run(model=DryRunModel())`) to
see its state machine, dispatch, fan-out, QA loop and events before any model
is called. The answers say what they are:

* text turns: `[dry-run] <agent> on <item>, attempt <n>: "<start of its system prompt>"`;
* QA verdicts pass, except that with `fail_first=N` each QA agent fails its
  first N attempts on every item with one synthetic blocking issue, so the
  feedback loop (and, with N >= max_attempts, the abort path) can be seen;
* fan-out agents get `items` synthetic work items;
* no tool is ever called, and usage is zero tokens, zero cost.
"""

from __future__ import annotations

import trio

from ..agents import Usage
from ..errors import AgentflowError
from .base import ModelRequest, ModelTurn, TextSink

__all__ = ["DryRunModel"]

_CHUNK = 24


def excerpt(text: str, limit: int) -> str:
    """The start of `text` on one line, at most `limit` characters; a cut ends on a word and "…"."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: max(0, limit - 1)]
    if " " in cut and flat[len(cut)] != " ":  # do not end in the middle of a word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


class DryRunModel:
    """A model that answers every turn with synthetic text, verdicts or work items.

    Args:
        fail_first: each QA agent fails its first `fail_first` attempts per item.
        items: how many work items a fan-out agent returns.
        excerpt_chars: how much of the system prompt a text answer quotes.
    """

    name = "dry-run"

    def __init__(self, *, fail_first: int = 0, items: int = 3, excerpt_chars: int = 80) -> None:
        if fail_first < 0 or items < 0 or excerpt_chars < 0:
            raise AgentflowError(
                f"DryRunModel(fail_first={fail_first}, items={items}, "
                f"excerpt_chars={excerpt_chars}): each must be >= 0; pass non-negative counts"
            )
        self.fail_first = fail_first
        self.items = items
        self.excerpt_chars = excerpt_chars

    def __repr__(self) -> str:
        return f"DryRunModel(fail_first={self.fail_first}, items={self.items})"

    async def complete(self, request: ModelRequest, on_text: TextSink | None = None) -> ModelTurn:
        """Answer `request` synthetically; the text is streamed to `on_text` in small pieces."""
        head = f"[dry-run] {request.agent} on {request.item}, attempt {request.attempt}"
        usage = Usage(model_calls=1)
        if request.output == "verdict":
            turn = self._verdict(request, head, usage)
        elif request.output == "items":
            work = [
                f"[dry-run] work item {k} of {self.items} from {request.agent}"
                for k in range(1, self.items + 1)
            ]
            text = f"{head}: {self.items} synthetic work items"
            turn = ModelTurn(text=text, structured={"items": work}, usage=usage, model=self.name)
        else:
            prompt = excerpt(request.system, self.excerpt_chars)
            text = f'{head}: "{prompt}"' if prompt else head
            turn = ModelTurn(text=text, usage=usage, model=self.name)
        for start in range(0, len(turn.text), _CHUNK):
            if on_text is not None:
                on_text(turn.text[start : start + _CHUNK])
        await trio.lowlevel.checkpoint()
        return turn

    def _verdict(self, request: ModelRequest, head: str, usage: Usage) -> ModelTurn:
        if request.attempt > self.fail_first:
            verdict = {"passed": True, "issues": [], "summary": f"{head}: passed"}
        else:
            issue = {
                "severity": "blocking",
                "message": (
                    f"[dry-run] synthetic blocking issue {request.attempt} of "
                    f"{self.fail_first} (fail_first={self.fail_first})"
                ),
                "suggestion": "nothing to fix: a dry run fails the first attempts on purpose",
            }
            verdict = {"passed": False, "issues": [issue], "summary": f"{head}: failed"}
        return ModelTurn(
            text=str(verdict["summary"]), structured=verdict, usage=usage, model=self.name
        )
