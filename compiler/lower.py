"""Stage 2: schema-valid YAML data -> the frozen IR (`PipelineSpec`), every node with its `loc`.

Value checks that the IR itself states (id pattern, ranges, enum values,
required keys) are done by pydantic; each of its errors becomes a diagnostic
at the position of the offending key or value, all of them at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from agentflow.runtime.spec import (
    FieldSpec,
    Loc,
    NamedField,
    PipelineSpec,
    ShapeSpec,
    StateMachineSpec,
    StateSpec,
)

from .diagnostics import CompileError, Diagnostic, did_you_mean, sort_diagnostics
from .naming import IDENTIFIER_PATTERN, suggest_identifier
from .parse import Parsed, Path, SourceMap
from .shapes import lower_shape

__all__ = ["lower"]

_PLAIN_MAPS = frozenset({"config", "input", "output", "pipeline"})
"""Keys whose mapping is user data (`config`) or read by `lower_shape`: no `loc` added."""

ROUTE_FIELD = "route"
"""The field a router's `on` names by default: the one field of its implicit output."""

DEFAULT_STATE_MACHINE = StateMachineSpec(
    initial="running",
    terminal=("complete", "failed"),
    states=(StateSpec(id="running"), StateSpec(id="complete"), StateSpec(id="failed")),
)
"""The state machine of a pipeline that declares none (DSL v2 section 7)."""

_AGENT_KINDS = ("prompt", "instructions", "handler", "pipeline", "human")
"""What an agent is: exactly one of these keys (DSL v2 section 3; `human`: docs/human.md)."""


def lower(parsed: Parsed) -> PipelineSpec:
    """Build the IR from a parsed document.

    Raises:
        CompileError: every value the IR rejects, each at its source position.
    """
    source = parsed.source
    data = _with_locs(parsed.data, (), source)
    problems = _lower_v2_parts(data, source)
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems += [_diagnostic(error, parsed) for error in exc.errors()]
    if problems:
        raise CompileError(sort_diagnostics(problems, source.file))
    return spec


def _lower_v2_parts(data: dict[str, Any], source: SourceMap) -> list[Diagnostic]:
    """Read the DSL v2 parts pydantic cannot (shapes, the agent kind, the default state
    machine) into `data` in place; the problems found, each at its position."""
    problems: list[Diagnostic] = []
    if "input" in data:
        shape, found = lower_shape(data["input"], ("input",), source, "'input'")
        data["input"], problems = shape, problems + found
    if "state_machine" not in data:
        data["state_machine"] = DEFAULT_STATE_MACHINE
        data["implicit_state_machine"] = True
    agents = data.get("agents")
    for index, agent in enumerate(agents if isinstance(agents, list) else ()):
        if not isinstance(agent, dict):
            continue
        path: Path = ("agents", index)
        name = f"agent '{agent['id']}'" if isinstance(agent.get("id"), str) else "an agent"
        if "output" in agent:
            what = f"the output of {name}"
            shape, found = lower_shape(agent["output"], (*path, "output"), source, what)
            agent["output"], problems = shape, problems + found
        problems += _lower_human_kind(agent, path, source, name)
        if isinstance(agent.get("dispatch"), dict):
            _lower_route(agent, agent["dispatch"], (*path, "dispatch"), source, _gates(data))
        kinds = [key for key in _AGENT_KINDS if key in agent]
        human = agent.get("human")
        if "instructions" in kinds and isinstance(human, dict) and "question" not in human:
            kinds.remove("instructions")  # a human agent's inline question
        if len(kinds) == 1:
            asks = "instructions" in agent or (isinstance(human, dict) and "question" in human)
            if kinds == ["human"] and not asks:
                loc = source.key((*path, "human"))
                problems.append(
                    Diagnostic(
                        loc.file,
                        loc.line,
                        loc.column,
                        f"{name} is answered by a person but asks no question: add "
                        "'question: prompts/x.md' under 'human:' (a template file, like "
                        "'prompt:') or the question inline as 'instructions: \"...\"'",
                    )
                )
            continue
        if kinds:
            loc = source.key((*path, kinds[1]))
            kinds_listed = (
                "'prompt' (a file), 'instructions' (inline text), 'handler' (a function) "
                "or 'pipeline' (a sub-pipeline file)"
            )
            if "human" in kinds:
                kinds_listed = kinds_listed.replace(" or ", ", ") + " or 'human' (a person answers)"
            message = (
                f"{name} has both '{kinds[0]}' and '{kinds[1]}'; an agent is exactly one "
                f"of {kinds_listed}"
            )
        else:
            loc = source.key(path)
            message = (
                f"{name} needs one of 'prompt: prompts/x.md', 'instructions: \"inline "
                "text\"', 'handler: \"package.module:function\"' or 'pipeline: child.yaml'"
            )
        problems.append(Diagnostic(loc.file, loc.line, loc.column, message))
    return problems


def _lower_human_kind(
    agent: dict[str, Any], path: Path, source: SourceMap, name: str
) -> list[Diagnostic]:
    """`kind: human` -> `human:` in place (`kind` stays as written): its `prompt:` becomes
    `human.question`, its `instructions:` stay the inline question (docs/human.md). Any
    other `kind` is left for the IR to refuse (did-you-mean)."""
    if agent.get("kind") != "human":
        return []
    loc = source.key((*path, "kind"))
    if "human" in agent:
        message = (
            f"{name} has both 'kind: human' and 'human:'; they are two spellings of one "
            "thing: keep 'human:' (with 'question:' and 'assignee:') and remove 'kind'"
        )
        return [Diagnostic(loc.file, loc.line, loc.column, message)]
    human: dict[str, Any] = {"loc": loc}
    if "prompt" in agent:
        human["question"] = agent.pop("prompt")
    elif "instructions" not in agent:
        agent["human"] = {**human, "question": None}  # counted as the agent's kind
        message = (
            f"{name} is 'kind: human' but asks no question: add 'prompt: prompts/x.md' (a "
            "template file) or 'instructions: \"...\"' (inline), the question the person answers"
        )
        return [Diagnostic(loc.file, loc.line, loc.column, message)]
    agent["human"] = human
    return []


def _gates(data: dict[str, Any]) -> set[str]:
    aggregation = data.get("aggregation")
    gates = aggregation.get("gates") if isinstance(aggregation, dict) else None
    return {gate for gate in gates if isinstance(gate, str)} if isinstance(gates, list) else set()


def _lower_route(
    agent: dict[str, Any], dispatch: dict[str, Any], path: Path, source: SourceMap, gates: set[str]
) -> None:
    """Route cases in place: `case: target` -> `{target: ...}` (also `default`), a bool key
    -> "true"/"false"; a router gets `on: route` and, without `output:`, the implicit
    output `{route: {enum: [<case names>]}}` (DSL v2 section 4)."""
    cases = dispatch.get("cases")
    if isinstance(cases, dict):
        lowered: dict[str, Any] = {}
        for key, case in cases.items():
            name = str(key).lower() if isinstance(key, bool) else key
            lowered[name] = _case(case, (*path, "cases", key), source)
        dispatch["cases"] = cases = lowered
    if "default" in dispatch:
        dispatch["default"] = _case(dispatch["default"], (*path, "default"), source)
    if dispatch.get("strategy") != "route":
        return
    dispatch.setdefault("on", ROUTE_FIELD)
    gives_verdict = "on_fail" in agent or agent.get("id") in gates
    if "output" in agent or gives_verdict or not isinstance(cases, dict) or not cases:
        return  # a QA router or one without cases is reported by the checks
    if "human" in agent:
        return  # a person's answer has the shape declared for it: checks_human reports none
    values = FieldSpec(kind="enum", values=tuple(cases), loc=source.key((*path, "cases")))
    route = NamedField(name=ROUTE_FIELD, type=values, loc=values.loc)
    agent["output"] = ShapeSpec(fields=(route,), loc=values.loc)


def _case(case: Any, path: Path, source: SourceMap) -> Any:
    """A route case as the IR reads it: the short form `target` -> `{target: target}`."""
    if isinstance(case, str):
        return {"target": case, "loc": source.value(path)}
    return case


def _with_locs(value: Any, path: Path, source: SourceMap) -> Any:
    if isinstance(value, dict):
        if path and path[-1] in _PLAIN_MAPS:
            return dict(value)
        if len(path) > 1 and path[-2:] == ("dispatch", "cases"):
            # The case names are user data: no `loc` among them; each case gets its own.
            return {key: _with_locs(item, (*path, key), source) for key, item in value.items()}
        lowered = {key: _with_locs(item, (*path, key), source) for key, item in value.items()}
        lowered["loc"] = source.key(path) if path else Loc(file=source.file, line=1, column=1)
        return lowered
    if isinstance(value, list):
        return [_with_locs(item, (*path, index), source) for index, item in enumerate(value)]
    return value


def _field_name(path: Path) -> str:
    """`("agents", 0, "retry", "max_attempts")` -> `"retry.max_attempts"`."""
    names: list[str] = []
    while path and isinstance(path[-1], int):
        path = path[:-1]
    for part in reversed(path):
        if isinstance(part, int):
            break
        names.append(part)
    return ".".join(reversed(names)) or "item"


_SINGULAR = {"agents": "agent", "tools": "tool", "states": "state"}


def _describe(path: Path, data: Any) -> str:
    """How to name the mapping at `path` in a message: `agent 'writer_agent'`, `'retry'`."""
    if not path:
        return "the pipeline"
    if not isinstance(path[-1], int):
        return f"'{_field_name(path)}'"
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
            break
    kind = _SINGULAR.get(str(path[-2]), "item") if len(path) > 1 else "item"
    if isinstance(node, dict) and isinstance(node.get("id"), str):
        return f"{kind} '{node['id']}'"
    return f"{kind} {path[-1] + 1} of '{_field_name(path[:-1])}'"


def _diagnostic(error: ErrorDetails, parsed: Parsed) -> Diagnostic:
    source = parsed.source
    path: Path = tuple(part for part in error["loc"] if isinstance(part, int | str))
    kind = error["type"]
    given = error.get("input")
    ctx = error.get("ctx") or {}
    field = _field_name(path)
    if kind == "missing":
        loc = source.key(path[:-1]) if path[:-1] else Loc(file=source.file, line=1, column=1)
        message = f"{_describe(path[:-1], parsed.data)} is missing the required key '{path[-1]}'"
    else:
        loc = source.value(path)
        if kind == "string_pattern_mismatch" and ctx.get("pattern") == IDENTIFIER_PATTERN:
            suggestion = suggest_identifier(str(given))
            hint = f" (try '{suggestion}')" if suggestion else ""
            what = "" if field.endswith("id") else f" for '{field}'"
            message = (
                f"'{given}' is not a valid id{what}: ids must match "
                f"[a-z][a-z0-9_]* because they become Python identifiers{hint}"
            )
        elif kind == "literal_error":
            expected = str(ctx.get("expected", "")).replace(" or ", ",")
            choices = [choice.strip(" '") for choice in expected.split(",")]
            message = (
                f"'{field}' must be {ctx.get('expected')}, got '{given}'"
                f"{did_you_mean(str(given), choices)}"
            )
        elif kind in _BOUNDS:
            op, bound = _BOUNDS[kind], next(iter(ctx.values()), "?")
            message = f"'{field}' must be {op} {bound}, got {given}"
        else:
            message = f"'{field}': {error['msg']}"
    return Diagnostic(loc.file, loc.line, loc.column, message)


_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}
