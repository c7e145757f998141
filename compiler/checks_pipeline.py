"""Checks of sub-pipeline agents (`pipeline: child.yaml`, DSL v2 section 6).

A sub-pipeline agent runs its child pipeline as one agent: its output is the
child's result as text (the final output text of the child's main item), so it
declares no `output:`, gives no verdict, neither fans out nor routes, and the
model settings (`tools`, `model`, ...) belong to the child's agents.

What the parent passes becomes the child's run input (docs/semantics.md,
"Sub-pipelines"): the parent's run input for the entry agent, a fan-out target's
work item, else the upstream agent's output (its typed data, or its text). A
child without `input:` accepts anything. A child with `input:` accepts a value of
a declared object shape when every required field of the child's input is a
required field of the value and each common field's type is accepted (the child
takes the fields its `input:` declares and ignores the others; inside a nested
object every field must be one the child declares, as its input model forbids
extra fields there):
the same kind; an int where a float is wanted; an enum where a str is wanted, or
an enum whose values are all among the wanted enum's; a list whose items are
accepted; an object by these same rules; an optional field only where the wanted
one is optional too. Text, or a value with no declared shape (the run input of a
parent without `input:`, a v1 fan-out's work items), is not accepted.

Include cycles, unreadable and failing children are found by `load.py` (it reads
the files); these checks see only children that compiled.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from agentflow.runtime.spec import AgentSpec, FieldSpec, NamedField, PipelineSpec, ShapeSpec

from .diagnostics import Diagnostic
from .parse import SourceMap

__all__ = ["check_subpipelines", "describe_type", "passed_values"]

_MODEL_SETTINGS = ("tools", "model", "max_tokens", "temperature", "max_tool_rounds")
"""Agent keys that configure a model call: meaningless on a sub-pipeline agent."""


class _Child(Protocol):
    """What these checks read of a loaded child (`load.LoadedPipeline`)."""

    @property
    def spec(self) -> PipelineSpec: ...


@dataclass(frozen=True)
class Passed:
    """One value a parent may pass to an agent, as the checks see it.

    `what` names it in messages; `shape` is its declared object shape, `field` the
    type of a work item (an element of the fan-out's `items:` list), both None for
    text (`is_text`) or a value with no declared shape.
    """

    what: str
    shape: ShapeSpec | None = None
    field: FieldSpec | None = None
    is_text: bool = False


def check_subpipelines(
    spec: PipelineSpec, source: SourceMap, children: Mapping[str, _Child]
) -> Iterator[Diagnostic]:
    """Each sub-pipeline agent is a plain agent, and its child accepts what it is given."""
    for index, agent in enumerate(spec.agents):
        if agent.pipeline is None:
            continue
        path = ("agents", index)
        yield from _agent_problems(spec, agent, path, source)
        child = children.get(agent.id)
        if child is None or child.spec.input is None:
            continue
        wanted = child.spec.input
        for passed in passed_values(spec, agent.id):
            problem = _accepts(wanted, passed)
            if problem is None:
                continue
            loc = source.value((*path, "pipeline"))
            yield Diagnostic(
                loc.file,
                loc.line,
                loc.column,
                f"agent '{agent.id}': sub-pipeline '{agent.pipeline}' cannot take "
                f"{passed.what} as its input: {problem}",
            )


def _agent_problems(
    spec: PipelineSpec, agent: AgentSpec, path: tuple[str | int, ...], source: SourceMap
) -> Iterator[Diagnostic]:
    def at(key: str, message: str) -> Diagnostic:
        loc = source.key((*path, key))
        return Diagnostic(loc.file, loc.line, loc.column, message)

    who = f"agent '{agent.id}' runs sub-pipeline '{agent.pipeline}'"
    dispatch = agent.dispatch
    if agent.on_fail is not None:
        yield at("on_fail", f"{who}, which gives no QA verdict; remove 'on_fail' (a QA agent "
                 "after it, or inside the sub-pipeline, can check its result)")  # fmt: skip
    elif spec.aggregation is not None and agent.id in spec.aggregation.gates:
        yield at("id", f"{who}, which gives no QA verdict, so it cannot be an aggregation gate")
    if dispatch is not None and dispatch.strategy in ("parallel_fan_out", "route"):
        what = "fan out" if dispatch.strategy == "parallel_fan_out" else "route"
        yield at(
            "dispatch",
            f"{who}: its output is the sub-pipeline's result as text, so it cannot {what}; "
            f"{what} from an agent after it",
        )
    elif agent.output is not None:
        yield at(
            "output",
            f"{who}: its output is the sub-pipeline's result as text; remove 'output:'",
        )
    for key in _MODEL_SETTINGS:
        if key in agent.model_fields_set:
            yield at(
                key,
                f"{who}: '{key}' has no effect here (the sub-pipeline's agents make the "
                f"model calls); set it in '{agent.pipeline}'",
            )


def passed_values(spec: PipelineSpec, agent_id: str) -> list[Passed]:
    """Every value the parent may hand agent `agent_id` as its input, in agent order."""
    found: list[Passed] = []
    if spec.entry_agent == agent_id:
        what = "the run input"
        found.append(Passed(what, shape=spec.input))
    for other in spec.agents:
        dispatch = other.dispatch
        if dispatch is None:
            continue
        if dispatch.strategy == "parallel_fan_out" and dispatch.target == agent_id:
            found.append(_work_item(other))
            continue
        targets = [dispatch.target, *dispatch.targets, dispatch.join, dispatch.reduce]
        targets += [case.target for case in dispatch.cases.values()]
        if dispatch.default is not None:
            targets.append(dispatch.default.target)
        if agent_id in targets:
            what = f"the output of '{other.id}'"
            if other.output is None:
                found.append(Passed(what, is_text=True))
            else:
                found.append(Passed(what, shape=other.output))
    return found


def _work_item(fan_out: AgentSpec) -> Passed:
    what = f"a work item of '{fan_out.id}'"
    items = fan_out.dispatch.items if fan_out.dispatch is not None else None
    if items is None or fan_out.output is None:
        return Passed(what)
    for named in fan_out.output.fields:
        if named.name == items and named.type.kind == "list" and named.type.items is not None:
            return Passed(what, field=named.type.items)
    return Passed(what)  # a wrong `items:` is reported by the fan-out checks


def _accepts(wanted: ShapeSpec, passed: Passed) -> str | None:
    """None if the child's `input:` shape `wanted` accepts `passed`, else why not."""
    fields = ", ".join(named.name for named in wanted.fields)
    if passed.is_text:
        return (
            f"that is text (it declares no 'output:'), but the sub-pipeline's 'input:' wants "
            f"an object with the fields {fields}; declare an 'output:' with those fields"
        )
    given: tuple[NamedField, ...] | None = None
    if passed.shape is not None:
        given = passed.shape.fields
    elif passed.field is not None:
        if passed.field.kind != "object":
            return (
                f"that is {describe_type(passed.field)}, but the sub-pipeline's 'input:' wants "
                f"an object with the fields {fields}"
            )
        given = passed.field.fields
    if given is None:
        return (
            f"that has no declared shape, but the sub-pipeline's 'input:' wants an object "
            f"with the fields {fields}; declare its shape ('input:' on this pipeline, or the "
            "fan-out's typed 'items:')"
        )
    return _object_problem(wanted.fields, given, "")


def _object_problem(
    wanted: tuple[NamedField, ...], given: tuple[NamedField, ...], prefix: str
) -> str | None:
    wanted_by_name = {named.name: named.type for named in wanted}
    given_by_name = {named.name: named.type for named in given}
    for name in given_by_name:
        if name not in wanted_by_name and prefix:  # top level: the child takes its fields
            return (
                f"field '{prefix}{name}' is not in the sub-pipeline's 'input:' (it accepts "
                f"{', '.join(wanted_by_name) or 'no fields'})"
            )
    for name, field in wanted_by_name.items():
        if name not in given_by_name:
            if field.optional:
                continue
            return f"the sub-pipeline's 'input:' requires field '{prefix}{name}', which it lacks"
        problem = _type_problem(field, given_by_name[name], f"{prefix}{name}")
        if problem is not None:
            return problem
    return None


def _type_problem(wanted: FieldSpec, given: FieldSpec, name: str) -> str | None:
    if given.optional and not wanted.optional:
        return (
            f"field '{name}' is optional there (it may be null), but the sub-pipeline's "
            "'input:' requires it"
        )
    mismatch = (
        f"field '{name}' is {describe_type(given)} there, but the sub-pipeline's 'input:' "
        f"wants {describe_type(wanted)}"
    )
    if wanted.kind == given.kind and wanted.kind in ("str", "int", "float", "bool"):
        return None
    if wanted.kind == "float" and given.kind == "int":
        return None
    if wanted.kind == "str" and given.kind == "enum":
        return None
    if wanted.kind == "enum" and given.kind == "enum":
        extra = [value for value in given.values if value not in wanted.values]
        return None if not extra else f"{mismatch} (it lacks '{extra[0]}')"
    if wanted.kind == "list" and given.kind == "list":
        if wanted.items is None or given.items is None:  # pragma: no cover - lowering sets them
            return None
        return _type_problem(wanted.items, given.items, f"{name}[]")
    if wanted.kind == "object" and given.kind == "object":
        return _object_problem(wanted.fields, given.fields, f"{name}.")
    return mismatch


def describe_type(field: FieldSpec) -> str:
    """A field type as messages show it: `int`, `enum [a, b]`, `list[str]`, `an object`."""
    text: str
    if field.kind == "enum":
        text = f"enum [{', '.join(field.values)}]"
    elif field.kind == "list" and field.items is not None:
        text = f"list[{describe_type(field.items)}]"
    elif field.kind == "object":
        text = f"an object {{{', '.join(named.name for named in field.fields)}}}"
    else:
        text = field.kind
    return f"{text} (optional)" if field.optional else text
