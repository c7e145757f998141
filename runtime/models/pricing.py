"""What a model call cost: a per-model price table and `cost_usd(model, usage)`.

Prices are USD per million tokens, matched by the longest model-name prefix
(`claude-sonnet-4` covers `claude-sonnet-4-6` and `claude-sonnet-4-5-20250929`).
A model the table does not know costs 0, with a one-time warning, so an unknown
model never breaks a run but never silently looks free either.

The default table is documented in docs/models.md ("Pricing"); override it with
`PriceTable.from_file(path)` (a JSON object: model prefix -> prices) or
`PriceTable.default().with_overrides({...})`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AgentflowError
from ..usage import Usage

__all__ = ["DEFAULT_PRICES", "PRICES_AS_OF", "ModelPrice", "PriceTable", "PricingError"]

log = logging.getLogger("agentflow.models.pricing")

PRICES_AS_OF = "2025-11-24"
"""When the default table was last checked against Anthropic's published prices."""


class PricingError(AgentflowError):
    """Raised when a price table file or mapping is malformed."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens for one model family."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    @classmethod
    def standard(cls, input: float, output: float) -> ModelPrice:
        """Anthropic's usual ratios: 5-minute cache writes 1.25x input, cache reads 0.1x."""
        return cls(input, output, round(input * 1.25, 6), round(input * 0.1, 6))


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    # Opus 4 and 4.1 kept the old Opus price; 4.5 and later are cheaper.
    "claude-opus-4-0": ModelPrice.standard(15.0, 75.0),
    "claude-opus-4-1": ModelPrice.standard(15.0, 75.0),
    "claude-opus-4-2025": ModelPrice.standard(15.0, 75.0),
    "claude-opus-4": ModelPrice.standard(5.0, 25.0),
    "claude-sonnet-4": ModelPrice.standard(3.0, 15.0),
    "claude-haiku-4": ModelPrice.standard(1.0, 5.0),
    "claude-3-5-haiku": ModelPrice.standard(0.8, 4.0),
    "claude-3-haiku": ModelPrice.standard(0.25, 1.25),
}
"""Prices as of PRICES_AS_OF (standard tier, prompts up to 200k tokens)."""


@dataclass(frozen=True)
class PriceTable:
    """Per-model prices, matched by the longest prefix of the model name."""

    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    # Models already warned about as unknown; grows only, so each warns once per table.
    _warned: set[str] = field(default_factory=set, compare=False, repr=False)

    @classmethod
    def default(cls) -> PriceTable:
        return cls(dict(DEFAULT_PRICES))

    def with_overrides(self, overrides: Mapping[str, Any]) -> PriceTable:
        """A copy with `overrides` (prefix -> ModelPrice or a dict of the four prices) applied.

        Raises:
            PricingError: an entry is not a price or is missing a field.
        """
        merged = dict(self.prices)
        for prefix, value in overrides.items():
            merged[prefix] = value if isinstance(value, ModelPrice) else _parse_price(prefix, value)
        return PriceTable(merged)

    @classmethod
    def from_file(cls, path: Path, *, replace: bool = False) -> PriceTable:
        """Load prices from a JSON file, merged over the defaults (or replacing them).

        The file maps a model prefix to {"input", "output", "cache_write",
        "cache_read"} in USD per million tokens; cache prices default to the
        standard ratios of `input`.

        Raises:
            PricingError: the file cannot be read or is not such a mapping.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PricingError(
                f"cannot read price table {path}: {exc}. Fix the file: a JSON object "
                'mapping a model prefix to {"input": ..., "output": ...} USD per million tokens.'
            ) from None
        if not isinstance(data, dict):
            raise PricingError(
                f"price table {path} must be a JSON object mapping a model prefix to "
                '{"input": ..., "output": ...} USD per million tokens'
            )
        base = cls({}) if replace else cls.default()
        return base.with_overrides(data)

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of the longest matching prefix, or None."""
        matches = [prefix for prefix in self.prices if model.startswith(prefix)]
        if not matches:
            return None
        return self.prices[max(matches, key=len)]

    def cost_usd(self, model: str, usage: Usage) -> float:
        """The USD cost of `usage` tokens on `model`; 0 (warned once) for an unknown model."""
        price = self.price_for(model)
        if price is None:
            if model not in self._warned:
                self._warned.add(model)
                log.warning(
                    "no price known for model %r: its cost is counted as 0. "
                    "Add it with a price table file (see docs/models.md, 'Pricing').",
                    model,
                )
            return 0.0
        total = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_creation_input_tokens * price.cache_write
            + usage.cache_read_input_tokens * price.cache_read
        )
        return total / 1_000_000


def _parse_price(prefix: str, value: Any) -> ModelPrice:
    if not isinstance(value, dict):
        raise PricingError(
            f"price for {prefix!r} must be an object with 'input' and 'output' USD per "
            f"million tokens, not {type(value).__name__}"
        )
    try:
        input_price = float(value["input"])
        output_price = float(value["output"])
        standard = ModelPrice.standard(input_price, output_price)
        return ModelPrice(
            input_price,
            output_price,
            float(value.get("cache_write", standard.cache_write)),
            float(value.get("cache_read", standard.cache_read)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PricingError(
            f"price for {prefix!r} is malformed ({exc!r}): give numbers for 'input' and "
            "'output' (and optionally 'cache_write', 'cache_read'), USD per million tokens"
        ) from None
