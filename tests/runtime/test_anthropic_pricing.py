"""Price table, and the structured-output tool schemas sent to the Messages API."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agentflow.runtime.agents import QAVerdict, WorkItems
from agentflow.runtime.models.pricing import DEFAULT_PRICES, ModelPrice, PriceTable, PricingError
from agentflow.runtime.models.structured import (
    inline_schema,
    structured_tool,
    structured_tool_choice,
)
from agentflow.runtime.usage import Usage

USAGE = Usage(
    input_tokens=2_000_000,
    output_tokens=1_000_000,
    cache_creation_input_tokens=1_000_000,
    cache_read_input_tokens=10_000_000,
)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # in, out, cache write (1.25x in), cache read (0.1x in), per million
        ("claude-sonnet-4-6", 2 * 3 + 15 + 3.75 + 10 * 0.3),
        ("claude-sonnet-4-5-20250929", 2 * 3 + 15 + 3.75 + 10 * 0.3),
        ("claude-haiku-4-5", 2 * 1 + 5 + 1.25 + 10 * 0.1),
        ("claude-opus-4-6", 2 * 5 + 25 + 6.25 + 10 * 0.5),
        ("claude-opus-4-1-20250805", 2 * 15 + 75 + 18.75 + 10 * 1.5),
        ("claude-opus-4-20250514", 2 * 15 + 75 + 18.75 + 10 * 1.5),
    ],
)
def test_default_prices_match_by_longest_prefix(model: str, expected: float) -> None:
    assert PriceTable.default().cost_usd(model, USAGE) == pytest.approx(expected)


def test_unknown_model_costs_zero_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.default()
    with caplog.at_level(logging.WARNING, logger="agentflow.models.pricing"):
        assert table.cost_usd("gpt-nothing", USAGE) == 0.0
        assert table.cost_usd("gpt-nothing", USAGE) == 0.0
    warnings = [r for r in caplog.records if "gpt-nothing" in r.getMessage()]
    assert len(warnings) == 1 and "price table" in warnings[0].getMessage()


def test_overrides_from_a_json_file_merge_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "claude-sonnet-4-6": {"input": 1, "output": 2},
                "my-model": {"input": 4, "output": 8, "cache_read": 0},
            }
        )
    )
    table = PriceTable.from_file(path)
    assert table.price_for("claude-sonnet-4-6") == ModelPrice(1.0, 2.0, 1.25, 0.1)
    assert table.price_for("claude-sonnet-4-5") == DEFAULT_PRICES["claude-sonnet-4"]
    assert table.price_for("my-model-v2") == ModelPrice(4.0, 8.0, 5.0, 0.0)
    only = PriceTable.from_file(path, replace=True)
    assert only.price_for("claude-haiku-4-5") is None


@pytest.mark.parametrize(
    "content",
    ["not json", "[1, 2]", '{"m": 3}', '{"m": {"input": 1}}', '{"m": {"input": "x", "output": 1}}'],
)
def test_malformed_price_files_are_rejected_with_a_fix(tmp_path: Path, content: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(PricingError, match="input"):
        PriceTable.from_file(path)


def test_verdict_schema_is_inline_and_matches_the_pydantic_model() -> None:
    tool = structured_tool("verdict")
    schema = tool.input_schema
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert tool.name == "submit_verdict"
    assert schema["required"] == ["passed"]
    issue = schema["properties"]["issues"]["items"]
    assert issue["required"] == ["message"]
    assert issue["properties"]["severity"]["enum"] == ["blocking", "warning", "info"]
    assert QAVerdict.model_validate({"passed": False, "issues": [{"message": "x"}]}).issues


def test_items_schema() -> None:
    tool = structured_tool("items")
    assert tool.name == "submit_work_items"
    assert tool.input_schema["required"] == ["items"]
    assert WorkItems.model_validate({"items": ["a", {"b": 1}]}).items == ["a", {"b": 1}]


def test_inline_schema_rejects_recursive_models() -> None:
    schema = {
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node",
    }
    with pytest.raises(ValueError, match="recursive"):
        inline_schema(schema)


def test_tool_choice_rules() -> None:
    assert structured_tool_choice("text", has_other_tools=True) is None
    assert structured_tool_choice("verdict", has_other_tools=False) == {
        "type": "tool",
        "name": "submit_verdict",
    }
    assert structured_tool_choice("items", has_other_tools=True) == {"type": "any"}
