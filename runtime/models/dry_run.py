"""`DryRunModel`: synthetic, deterministic answers, so a pipeline's flow can be walked offline.

No network, no API key, no cassette: a new pipeline can be run end to end
(`agentflow run x.yaml --model dry-run`, or `run(model=DryRunModel())`) to
see its state machine, dispatch, fan-out, QA loop and events before any model
is called. The answers say what they are:

* text turns: `[dry-run] <agent> on <item>, attempt <n>: "<start of its system prompt>"`;
* QA verdicts pass, except that with `fail_first=N` each QA agent fails its
  first N attempts on every item with one synthetic blocking issue, so the
  feedback loop (and, with N >= max_attempts, the abort path) can be seen;
* fan-out agents get `items` synthetic work items (a typed fan-out: `items`
  elements in its `items:` list field);
* typed agents (`output:`) get a valid instance of their output schema, chosen
  deterministically from (agent, item, attempt): enum values, numbers and
  booleans vary with that seed, strings say where they come from;
* a router (`strategy: route`) takes its first listed case, or the cases it is
  told with `routes={"router": ["a", "a", "b"]}`: its k-th invocation on an
  item takes the k-th case, the last one repeating (`"default"` picks a value no
  case covers). The request's `dispatch` says which agent routes and on which
  field;
* no tool is ever called, and usage is zero tokens, zero cost.
"""

from __future__ import annotations

import difflib
import random
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from ..errors import AgentflowError
from ..pipeline import CompiledPipeline
from ..spec import AgentSpec, DispatchSpec, PipelineSpec
from ..usage import Usage
from .base import ModelRequest, ModelTurn, TextSink

__all__ = [
    "DEFAULT_CASE",
    "ROUTE_FIELD",
    "DryRunModel",
    "RouteChoiceError",
    "RouteChoices",
    "schema_instance",
]

_CHUNK = 24

ROUTE_FIELD = "route"
"""The output field a router routes on when its dispatch names no `on`."""
DEFAULT_CASE = "default"
"""The case name that makes a router take its `default` (a value no case covers)."""

RouteChoices = Mapping[str, Sequence[str] | str]
"""Router id -> the cases its 1st, 2nd, ... invocation on an item takes (a str: one case)."""


def excerpt(text: str, limit: int) -> str:
    """The start of `text` on one line, at most `limit` characters; a cut ends on a word and "…"."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: max(0, limit - 1)]
    if " " in cut and flat[len(cut)] != " ":  # do not end in the middle of a word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


class RouteChoiceError(AgentflowError):
    """Raised when a route choice names no router of the pipeline, or no case of it."""

    def __init__(self, message: str, router: str) -> None:
        super().__init__(message)
        self.router = router


class DryRunModel:
    """A model that answers every turn with synthetic text, verdicts or work items.

    Args:
        fail_first: each QA agent fails its first `fail_first` attempts per item.
        items: how many work items a fan-out agent returns.
        excerpt_chars: how much of the system prompt a text answer quotes.
        routes: router id -> the case keys its 1st, 2nd, ... invocation on an
            item takes (the last repeats); a router not named takes its first
            listed case. `check_routes(spec)` checks them against a pipeline.

    Raises:
        AgentflowError: a negative count, or a router given no case.
    """

    name = "dry-run"

    def __init__(
        self,
        *,
        fail_first: int = 0,
        items: int = 3,
        excerpt_chars: int = 80,
        routes: RouteChoices | None = None,
    ) -> None:
        if fail_first < 0 or items < 0 or excerpt_chars < 0:
            raise AgentflowError(
                f"DryRunModel(fail_first={fail_first}, items={items}, "
                f"excerpt_chars={excerpt_chars}): each must be >= 0; pass non-negative counts"
            )
        self.fail_first = fail_first
        self.items = items
        self.excerpt_chars = excerpt_chars
        self.routes: dict[str, tuple[str, ...]] = {
            router: (told,) if isinstance(told, str) else tuple(told)
            for router, told in (routes or {}).items()
        }
        for router, told in self.routes.items():
            if not told or not all(told):
                raise AgentflowError(
                    f"DryRunModel(routes=...): router '{router}' is given no case; name the "
                    f"case(s) it takes, e.g. routes={{'{router}': ['<case>']}}"
                )

    def __repr__(self) -> str:
        routes = f", routes={self.routes}" if self.routes else ""
        return f"DryRunModel(fail_first={self.fail_first}, items={self.items}{routes})"

    def check_routes(self, pipeline: PipelineSpec | CompiledPipeline) -> None:
        """Check every route choice against `pipeline`, before a run starts.

        A router inside a sub-pipeline is named as its events name it,
        `<agent>.<child agent>`; it is found through `CompiledPipeline.children`.

        Raises:
            RouteChoiceError: a choice names an agent that is not a router (with
                did-you-mean), a router that runs its handler or a child
                pipeline, or a case the router does not have.
        """
        spec = pipeline.spec if isinstance(pipeline, CompiledPipeline) else pipeline
        agents = _agents_by_name(pipeline)
        routers = [name for name, agent in agents.items() if _is_router(agent)]
        known = (
            f"its routers: {', '.join(routers)}"
            if routers
            else "it has no router (no agent with `strategy: route`)"
        )
        for router, told in self.routes.items():
            agent = agents.get(router)
            if agent is None:
                head = router.partition(".")[0]
                hint = (
                    " (its sub-pipelines' routers are found through the CompiledPipeline: "
                    "pass COMPILED, not PIPELINE)"
                    if isinstance(pipeline, PipelineSpec)
                    and head in agents
                    and agents[head].pipeline is not None
                    else ""
                )
                raise RouteChoiceError(
                    f"'{router}' is not an agent of pipeline '{spec.name}'"
                    f"{did_you_mean(router, routers)}; {known}{hint}",
                    router,
                )
            if agent.dispatch is None or agent.dispatch.strategy != "route":
                raise RouteChoiceError(
                    f"'{router}' is not a router (no `strategy: route`); the routers of "
                    f"pipeline '{spec.name}': {', '.join(routers) or 'none'}",
                    router,
                )
            runs = None
            if agent.handler is not None:
                runs = f"its handler {agent.handler}"
            elif agent.pipeline is not None:
                runs = f"pipeline {agent.pipeline}"
            if runs is not None:
                raise RouteChoiceError(
                    f"router '{router}' runs {runs}, not the model; "
                    "only a router that runs from its prompt can be told a case",
                    router,
                )
            for case in told:
                if case not in case_names(agent.dispatch):
                    raise RouteChoiceError(unknown_case(router, case, agent.dispatch), router)

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
            turn = self._typed(request, head, usage)
        else:
            prompt = excerpt(request.system, self.excerpt_chars)
            text = f'{head}: "{prompt}"' if prompt else head
            turn = ModelTurn(text=text, usage=usage, model=self.name)
        for start in range(0, len(turn.text), _CHUNK):
            if on_text is not None:
                on_text(turn.text[start : start + _CHUNK])
        await trio.lowlevel.checkpoint()
        return turn

    def _typed(self, request: ModelRequest, head: str, usage: Usage) -> ModelTurn:
        """A typed agent's answer; a router's `on` field set to its case, a typed
        fan-out's `items:` field filled with `self.items` work items."""
        schema = request.output_schema or {}
        rng = random.Random(f"{request.agent}|{request.item}|{request.attempt}")
        answer = schema_instance(schema, rng)
        if not isinstance(answer, dict):
            raise AgentflowError(
                f"dry-run: the output schema of '{request.agent}' is not an object schema"
            )
        text = f"{head}: a synthetic {request.agent} output"
        dispatch = request.dispatch
        if dispatch is not None and dispatch.strategy == "route":
            field = dispatch.on or ROUTE_FIELD
            case = self.case_for(request.agent, request.attempt, dispatch)
            answer[field] = _route_value(request.agent, schema, field, case, dispatch)
            text = f"{head}: {field} = {answer[field]!r} (case '{case}')"
        elif dispatch is not None and dispatch.strategy == "parallel_fan_out" and dispatch.items:
            answer[dispatch.items] = _work_items(schema, dispatch.items, self.items, rng)
            text = f"{head}: {self.items} synthetic work items in {dispatch.items}"
        return ModelTurn(text=text, structured=answer, usage=usage, model=self.name)

    def case_for(self, router: str, invocation: int, dispatch: DispatchSpec) -> str:
        """The case `router` takes on its `invocation`-th run on an item (1-based).

        Raises:
            AgentflowError: the case it was told is not one of its cases.
        """
        told = self.routes.get(router)
        if not told:
            return next(iter(dispatch.cases), DEFAULT_CASE)
        case = told[min(invocation, len(told)) - 1]
        if case not in dispatch.cases and not (
            case == DEFAULT_CASE and dispatch.default is not None
        ):
            raise AgentflowError(f"dry-run: {unknown_case(router, case, dispatch)}")
        return case

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


def _is_router(agent: AgentSpec) -> bool:
    return agent.dispatch is not None and agent.dispatch.strategy == "route"


def _agents_by_name(pipeline: PipelineSpec | CompiledPipeline) -> dict[str, AgentSpec]:
    """Every agent by the id its events carry: a sub-pipeline's as `<agent>.<child agent>`."""
    found: dict[str, AgentSpec] = {}
    pending: deque[tuple[str, PipelineSpec | CompiledPipeline]] = deque([("", pipeline)])
    while pending:
        prefix, current = pending.popleft()
        spec = current.spec if isinstance(current, CompiledPipeline) else current
        for agent in spec.agents:
            found[prefix + agent.id] = agent
        if isinstance(current, CompiledPipeline):
            for agent_id, child in current.children.items():
                pending.append((f"{prefix}{agent_id}.", child))
    return found


def case_names(dispatch: DispatchSpec) -> list[str]:
    """The case names a router can be told: its cases in YAML order, then `default`."""
    names = list(dispatch.cases)
    if dispatch.default is not None and DEFAULT_CASE not in names:
        names.append(DEFAULT_CASE)
    return names


def unknown_case(router: str, case: str, dispatch: DispatchSpec) -> str:
    """Why `case` is not one of `router`'s cases, with the closest one and the list."""
    names = case_names(dispatch)
    return f"router '{router}' has no case '{case}'{did_you_mean(case, names)}; its cases: " + (
        ", ".join(names)
    )


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """` (did you mean 'x'?)` for the closest of `choices`, or '' if none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _field_schema(schema: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    """The JSON schema of top-level `field`, through `$ref`s and past a nullable `anyOf`."""
    defs: Mapping[str, Any] = schema.get("$defs", {})
    sub: Mapping[str, Any] = schema.get("properties", {}).get(field, {})
    while True:
        ref = sub.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            sub = defs.get(ref.removeprefix("#/$defs/"), {})
        elif "anyOf" in sub:
            branches = [b for b in sub["anyOf"] if b.get("type") != "null"]
            sub = branches[0] if branches else {}
        else:
            return sub


def _route_value(
    router: str, schema: Mapping[str, Any], field: str, case: str, dispatch: DispatchSpec
) -> Any:
    """The value of the router's `field` that selects `case` (a bool field's keys are
    "true"/"false"; `default`: the first value no case covers)."""
    sub = _field_schema(schema, field)
    is_bool = sub.get("type") == "boolean"
    if case != DEFAULT_CASE or case in dispatch.cases:
        return case == "true" if is_bool else case
    values: list[Any] = [True, False] if is_bool else list(sub.get("enum", ()))
    for value in values:
        key = str(value).lower() if is_bool else str(value)
        if key not in dispatch.cases:
            return value
    raise AgentflowError(
        f"dry-run: router '{router}' cannot take its default: its cases cover every value "
        f"of '{field}'"
    )


def _work_items(schema: Mapping[str, Any], field: str, count: int, rng: random.Random) -> list[Any]:
    """`count` elements for a typed fan-out's list `field`, each saying which one it is."""
    element = _field_schema(schema, field).get("items", {})
    defs: Mapping[str, Any] = schema.get("$defs", {})
    return [
        schema_instance(element, rng, defs, f"{field} {k} of {count}", f"{field} {k} of {count}")
        for k in range(1, count + 1)
    ]


_LIST_LENGTH = 2


def schema_instance(
    schema: Mapping[str, Any],
    rng: random.Random,
    defs: Mapping[str, Any] | None = None,
    label: str = "text",
    tag: str = "",
) -> Any:
    """A value valid for the JSON `schema` (as pydantic writes it), drawn from `rng`.

    Covers what output shapes produce: objects (every property, optional ones
    included), arrays, `enum`/`const`, strings (`"[dry-run] <label>"`, the label
    being the field name), integers, numbers, booleans, `anyOf` (the first
    non-null branch) and local `$ref`s into `$defs`. A `tag` (a work item's
    "subjects 2 of 3") follows into nested strings: `"[dry-run] <label> (<tag>)"`.
    """
    defs = schema.get("$defs", defs or {})
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return schema_instance(defs[ref.removeprefix("#/$defs/")], rng, defs, label, tag)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return schema_instance(branches[0], rng, defs, label, tag)
    kind = schema.get("type")
    if kind == "object":
        properties: Mapping[str, Any] = schema.get("properties", {})
        return {
            name: schema_instance(sub, rng, defs, name, tag) for name, sub in properties.items()
        }
    if kind == "array":
        low = int(schema.get("minItems", 0))
        count = max(low, min(_LIST_LENGTH, int(schema.get("maxItems", _LIST_LENGTH))))
        element = schema.get("items", {})
        return [schema_instance(element, rng, defs, label, tag) for _ in range(count)]
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
    return f"[dry-run] {label} ({tag})" if tag and tag != label else f"[dry-run] {label}"
