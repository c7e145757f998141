"""DSL v2 section 1: `input:` and `output:` shapes are parsed, lowered and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.runtime.spec import FieldSpec, NamedField, ShapeSpec

from .v2_helpers import compile_text, errors, line_of

TYPE_HELP = (
    "a type is str, int, float, bool, list[T], optional[T], or a mapping such as "
    "{enum: [a, b]}, {type: list, items: ...} or {type: object, fields: {...}}"
)

CONTRACT_EXAMPLE = """\
name: shapes
input:                       # optional: the run input's shape
  ticket: str
  tier: {enum: [free, pro, enterprise]}
agents:
  - id: classifier
    prompt: p.md
    output:
      category: {enum: [billing, bug, question]}
      urgency: int
      summary: str
      tags: list[str]
      note: optional[str]
      steps:
        type: list
        items: {title: str, done: bool}
      author:
        type: object
        fields: {name: str, email: optional[str]}
"""


def _field(shape: ShapeSpec, name: str) -> FieldSpec:
    return next(f.type for f in shape.fields if f.name == name)


def test_contract_example_lowers_to_the_ir(tmp_path: Path) -> None:
    spec = compile_text(CONTRACT_EXAMPLE, tmp_path).spec
    assert spec.input is not None
    assert [f.name for f in spec.input.fields] == ["ticket", "tier"]
    assert _field(spec.input, "tier") == FieldSpec(
        kind="enum", values=("free", "pro", "enterprise")
    )
    output = spec.agent("classifier").output
    assert output is not None
    assert _field(output, "urgency") == FieldSpec(kind="int")
    assert _field(output, "tags") == FieldSpec(kind="list", items=FieldSpec(kind="str"))
    assert _field(output, "note") == FieldSpec(kind="str", optional=True)
    assert _field(output, "steps") == FieldSpec(
        kind="list",
        items=FieldSpec(
            kind="object",
            fields=(
                NamedField(name="title", type=FieldSpec(kind="str")),
                NamedField(name="done", type=FieldSpec(kind="bool")),
            ),
        ),
    )
    assert _field(output, "author") == FieldSpec(
        kind="object",
        fields=(
            NamedField(name="name", type=FieldSpec(kind="str")),
            NamedField(name="email", type=FieldSpec(kind="str", optional=True)),
        ),
    )


def test_mapping_forms_with_description_and_optional(tmp_path: Path) -> None:
    text = """\
name: shapes
agents:
  - id: a
    prompt: p.md
    output:
      plain: {type: str}
      nested: {type: "optional[list[int]]"}
      scored:
        type: float
        description: How sure, 0..1.
        optional: true
      choice: {enum: [x, y], description: Pick one.}
      labels: {type: list, items: str}
"""
    output = compile_text(text, tmp_path).spec.agent("a").output
    assert output is not None
    assert _field(output, "plain") == FieldSpec(kind="str")
    assert _field(output, "nested") == FieldSpec(
        kind="list", items=FieldSpec(kind="int"), optional=True
    )
    assert _field(output, "scored") == FieldSpec(
        kind="float", optional=True, description="How sure, 0..1."
    )
    assert _field(output, "choice") == FieldSpec(
        kind="enum", values=("x", "y"), description="Pick one."
    )
    assert _field(output, "labels") == FieldSpec(kind="list", items=FieldSpec(kind="str"))


def test_block_and_flow_spellings_lower_alike(tmp_path: Path) -> None:
    head = "name: s\nagents:\n  - id: a\n    prompt: p.md\n"
    flow = head + "    output: {tags: list[str], n: int}\n"
    block = head + "    output:\n      tags: list[str]\n      n: int\n"
    assert compile_text(flow, tmp_path).spec == compile_text(block, tmp_path).spec


def _agent_output(fields: str) -> str:
    return "name: s\nagents:\n  - id: a\n    prompt: p.md\n    output:\n" + fields


@pytest.mark.parametrize(
    ("fields", "snippet", "column", "message"),
    [
        (
            "      summary: strin\n",
            "strin",
            16,
            "unknown type 'strin' for field 'summary' (did you mean 'str'?); " + TYPE_HELP,
        ),
        (
            "      n: integer\n",
            "integer",
            10,
            "unknown type 'integer' for field 'n' (did you mean 'int'?); " + TYPE_HELP,
        ),
        (
            "      tags: list[strng]\n",
            "list[",
            13,
            "unknown type 'strng' in 'list[strng]' for field 'tags' (did you mean 'str'?); "
            + TYPE_HELP,
        ),
        (
            "      c: {enum: []}\n",
            "{enum",
            17,
            "field 'c': an enum needs at least one value, e.g. [a, b]",
        ),
        (
            "      c: {enum: [a, b, a]}\n",
            "{enum",
            24,
            "enum value 'a' of field 'c' is repeated",
        ),
        (
            "      c:\n        enum:\n          - a\n          - {x: y}\n",
            "{x: y}",
            13,
            "enum value 2 of field 'c' is not a string; enum values are non-empty text such as "
            "'billing'",
        ),
        (
            "      class: str\n",
            "class",
            7,
            "field name 'class' is a Python keyword; rename it (e.g. 'class_')",
        ),
        (
            "      json: str\n",
            "json",
            7,
            "field name 'json' clashes with a name the generated pydantic model uses; rename it "
            "(e.g. 'json_value')",
        ),
        (
            "      model_name: str\n",
            "model_name",
            7,
            "field name 'model_name' clashes with a name the generated pydantic model uses; "
            "rename it (e.g. 'model_name_value')",
        ),
        (
            '      "my field": str\n',
            '"my field"',
            7,
            "field name 'my field' is not an identifier: use letters, digits and '_', starting "
            "with a letter (it becomes a Python attribute)",
        ),
        (
            "      steps: {type: list}\n",
            "{type",
            14,
            "field 'steps' is a list without 'items:'; or write list[T]",
        ),
        (
            "      who: {type: object}\n",
            "{type",
            12,
            "the fields of 'who' must be a mapping of field name -> type with at least one field "
            "(e.g. 'summary: str')",
        ),
        (
            "      who: {typ: str}\n",
            "typ",
            13,
            "unknown key 'typ' in the type of field 'who' (did you mean 'type'?); allowed: type, "
            "enum, items, fields, description, optional (to declare nested fields write "
            "{type: object, fields: {typ: ...}})",
        ),
        (
            "      x: {type: str, optional: maybe}\n",
            "maybe",
            32,
            "field 'x': 'optional' must be true or false",
        ),
        (
            "      x: optional[optional[str]]\n",
            "optional[",
            10,
            "field 'x': optional[optional[...]] says it twice",
        ),
    ],
)
def test_shape_errors_name_the_field_at_its_position(
    tmp_path: Path, fields: str, snippet: str, column: int, message: str
) -> None:
    text = _agent_output(fields)
    line = line_of(text, snippet)
    assert errors(text, tmp_path) == [f"v.yaml:{line}:{column}: error: {message}"]


def test_nesting_depth_is_limited(tmp_path: Path) -> None:
    deep = "list[" * 8 + "str" + "]" * 8
    assert compile_text(_agent_output(f"      ok: {'list[' * 7}str{']' * 7}\n"), tmp_path)
    found = errors(_agent_output(f"      deep: {deep}\n"), tmp_path)
    assert found == [
        "v.yaml:6:13: error: field 'deep' nests types more than 8 levels deep; flatten the shape"
    ]


def test_deep_mapping_nesting_is_limited_without_recursion_error(tmp_path: Path) -> None:
    def nested(levels: int) -> str:
        text = "str"
        for _ in range(levels):
            text = "{type: object, fields: {x: " + text + "}}"
        return text

    found = errors(_agent_output(f"      deep: {nested(15)}\n"), tmp_path)
    assert len(found) == 1 and "nests types more than 8 levels deep" in found[0]
    # deeper still, the YAML front end refuses the flow nesting before parsing it
    found = errors(_agent_output(f"      deep: {nested(40)}\n"), tmp_path)
    assert len(found) == 1 and "nest deeper than 32 levels" in found[0]


def test_empty_shapes_are_rejected(tmp_path: Path) -> None:
    text = "name: s\ninput: {}\nagents:\n  - id: a\n    prompt: p.md\n"
    assert errors(text, tmp_path) == [
        "v.yaml:2:8: error: 'input' must be a mapping of field name -> type with at least one "
        "field (e.g. 'summary: str')"
    ]


def test_a_v1_pipeline_lowers_without_v2_parts(tmp_path: Path) -> None:
    spec = compile_text("name: s\nagents:\n  - id: a\n    prompt: p.md\n", tmp_path).spec
    assert spec.input is None and spec.agent("a").output is None


def test_strictyaml_path_reads_shapes_like_the_fast_path(tmp_path: Path) -> None:
    from agentflow.compiler.parse import _fast_parse, _hide_type_brackets

    reader = "Text {{ outputs.classifier.summary }}."
    slow = CONTRACT_EXAMPLE + f"  - id: extra\n    instructions: |\n      {reader}\n"
    fast = CONTRACT_EXAMPLE + f"  - id: extra\n    instructions: '{reader}\n\n'\n"
    assert _fast_parse(_hide_type_brackets(slow)[0], "v.yaml") is None  # strictyaml's path
    assert _fast_parse(_hide_type_brackets(fast)[0], "v.yaml") is not None
    slow_spec = compile_text(slow, tmp_path).spec
    fast_spec = compile_text(fast, tmp_path).spec
    assert slow_spec.input == fast_spec.input is not None
    assert slow_spec.agent("classifier").output == fast_spec.agent("classifier").output
    assert slow_spec.agent("extra").instructions == fast_spec.agent("extra").instructions


def test_items_may_be_a_type_mapping_or_object_fields(tmp_path: Path) -> None:
    text = _agent_output(
        "      labels: {type: list, items: {enum: [x, y]}}\n"
        "      counts: {type: list, items: {type: int, description: A count.}}\n"
        "      pairs: {type: list, items: {type: str, other: int}}\n"
    )
    output = compile_text(text, tmp_path).spec.agent("a").output
    assert output is not None
    assert _field(output, "labels") == FieldSpec(
        kind="list", items=FieldSpec(kind="enum", values=("x", "y"))
    )
    assert _field(output, "counts") == FieldSpec(
        kind="list", items=FieldSpec(kind="int", description="A count.")
    )
    pairs = _field(output, "pairs")  # not only type keys: the fields of object elements
    assert pairs.items is not None and [f.name for f in pairs.items.fields] == ["type", "other"]
