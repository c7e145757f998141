"""`item.<field>` in a prompt is checked against the work item's declared shape.

A typed fan-out (`items: field`) gives its children a known element shape, and the
main item is the run input (`input:`): a typo such as `item.titel` compiled and then
aborted every child at run time.
"""

from __future__ import annotations

from pathlib import Path

from .v2_helpers import compile_text, errors, line_of

FAN_OUT = """\
name: items
input:
  topic: str
agents:
  - id: planner
    instructions: "Plan {{ item.topic }}."
    output:
      parts:
        type: list
        items: {title: str, depth: int}
    dispatch: {strategy: parallel_fan_out, target: worker, items: parts}
  - id: worker
    instructions: "Write {{ item.TITLE_FIELD }} at depth {{ item.depth }}."
"""


def test_a_typo_in_a_typed_work_items_field_is_an_error(tmp_path: Path) -> None:
    text = FAN_OUT.replace("TITLE_FIELD", "titel")
    found = errors(text, tmp_path)
    assert any(
        f"v.yaml:{line_of(text, 'Write {{')}:" in e
        and "'item.titel': each work item of fan-out 'planner' has no field 'titel'" in e
        and "did you mean 'title'" in e
        for e in found
    ), found


def test_the_declared_fields_of_work_items_and_input_compile(tmp_path: Path) -> None:
    compile_text(FAN_OUT.replace("TITLE_FIELD", "title"), tmp_path)


def test_a_typo_in_the_main_items_input_field_is_an_error(tmp_path: Path) -> None:
    text = FAN_OUT.replace("TITLE_FIELD", "title").replace("item.topic", "item.topik")
    found = errors(text, tmp_path)
    assert any("'item.topik': the run input has no field 'topik'" in e for e in found), found


def test_items_of_unknown_shape_are_not_checked(tmp_path: Path) -> None:
    untyped = """\
name: v1items
agents:
  - id: planner
    instructions: "Plan."
    dispatch: {strategy: parallel_fan_out, target: worker}
  - id: worker
    instructions: "Write {{ item.anything }}."
"""
    compile_text(untyped, tmp_path)
