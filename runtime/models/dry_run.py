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
* typed agents (`output:`) get a valid instance of their output schema, chosen
  deterministically from (agent, item, attempt): enum values, numbers and
  booleans vary with that seed, strings say where they come from;
* no tool is ever called, and usage is zero tokens, zero cost.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import trio

from ..errors import AgentflowError
from ..usage import Usage
from .base import ModelRequest, ModelTurn, TextSink

__all__ = ["DryRunModel", "schema_instance"]

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
        elif request.output == "output":
            seed = f"{request.agent}|{request.item}|{request.attempt}"
            answer = schema_instance(request.output_schema or {}, random.Random(seed))
            if not isinstance(answer, dict):
                raise AgentflowError(
                    f"dry-run: the output schema of '{request.agent}' is not an object schema"
                )
            text = f"{head}: a synthetic {request.agent} output"
            turn = ModelTurn(text=text, structured=answer, usage=usage, model=self.name)
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


_LIST_LENGTH = 2


def schema_instance(
    schema: Mapping[str, Any],
    rng: random.Random,
    defs: Mapping[str, Any] | None = None,
    label: str = "text",
) -> Any:
    """A value valid for the JSON `schema` (as pydantic writes it), drawn from `rng`.

    Covers what output shapes produce: objects (every property, optional ones
    included), arrays, `enum`/`const`, strings (`"[dry-run] <label>"`, the label
    being the field name), integers, numbers, booleans, `anyOf` (the first
    non-null branch) and local `$ref`s into `$defs`.
    """
    defs = schema.get("$defs", defs or {})
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return schema_instance(defs[ref.removeprefix("#/$defs/")], rng, defs, label)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return schema_instance(branches[0], rng, defs, label)
    kind = schema.get("type")
    if kind == "object":
        properties: Mapping[str, Any] = schema.get("properties", {})
        return {name: schema_instance(sub, rng, defs, name) for name, sub in properties.items()}
    if kind == "array":
        low = int(schema.get("minItems", 0))
        count = max(low, min(_LIST_LENGTH, int(schema.get("maxItems", _LIST_LENGTH))))
        return [schema_instance(schema.get("items", {}), rng, defs, label) for _ in range(count)]
    if kind == "integer":
        least = int(schema.get("minimum", 0))
        return rng.randint(least, int(schema.get("maximum", least + 9)))
    if kind == "number":
        bottom = float(schema.get("minimum", 0.0))
        return round(rng.uniform(bottom, float(schema.get("maximum", bottom + 1.0))), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return f"[dry-run] {label}"
