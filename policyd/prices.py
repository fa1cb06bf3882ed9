"""Model facts: context window, output limit and price, from the policy alone.

Decisions and ``policyd check`` use only what the policy files say
(``price:``, ``context_window:``, ``max_output_tokens:``), so one bundle decides and
checks the same with and without the ``[litellm]`` extra installed; ``check``
requires ``price:`` wherever a price matters (a ``usd`` budget limit, PD410) and
warns where a missing window or price changes routing (PD502). Prices are kept as
integer micro-dollars per million tokens so that cost arithmetic is exact.

LiteLLM's shipped price map (read straight from its JSON file, without importing
litellm) is used only by the LiteLLM integration, which talks to LiteLLM anyway:
:func:`litellm_entry`.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from policyd import document

_PRICE_FILE = "model_prices_and_context_window_backup.json"

#: Output tokens a reservation assumes when neither the request's max_tokens nor the
#: model's output limit is known: a reservation must assume something.
DEFAULT_MAX_OUTPUT = 4096


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model id of a policy, with everything the engine needs to know about it."""

    id: str
    litellm: str
    context_window: int | None
    max_output_tokens: int | None
    input_micros_per_mtok: int | None  # USD micro-dollars per million input tokens
    output_micros_per_mtok: int | None
    source: str  # "policy" when the policy gives a price or window, else "unknown"

    @property
    def priced(self) -> bool:
        return self.input_micros_per_mtok is not None and self.output_micros_per_mtok is not None

    def cost_micros(self, input_tokens: int, output_tokens: int) -> int:
        """Cost in micro-dollars, rounded up (a reservation never under-counts)."""
        if not self.priced:
            return 0
        assert self.input_micros_per_mtok is not None and self.output_micros_per_mtok is not None
        total = (
            input_tokens * self.input_micros_per_mtok + output_tokens * self.output_micros_per_mtok
        )
        return -(-total // 1_000_000)

    def blended_price(self) -> float:
        """Input + output price per million tokens, for the cheapest strategy (unknown: inf)."""
        if not self.priced:
            return math.inf
        assert self.input_micros_per_mtok is not None and self.output_micros_per_mtok is not None
        return float(self.input_micros_per_mtok + self.output_micros_per_mtok)


def _micros_per_mtok(usd_per_mtok: float) -> int:
    return int((Decimal(str(usd_per_mtok)) * 1_000_000).to_integral_value())


@functools.lru_cache(maxsize=1)
def litellm_price_map() -> dict[str, Any] | None:
    """LiteLLM's shipped price map, or None when litellm is not installed."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / _PRICE_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None


def litellm_entry(litellm_model: str) -> dict[str, Any] | None:
    """The price-map entry for a LiteLLM model string (``openai/gpt-4o`` or ``gpt-4o``)."""
    data = litellm_price_map()
    if not data:
        return None
    for key in (litellm_model, litellm_model.split("/", 1)[-1]):
        entry = data.get(key)
        if isinstance(entry, dict):
            return entry
    return None


def resolve(model_id: str, spec: document.ModelSpec) -> ModelInfo:
    """The policy's facts about one model; what it does not say is unknown (None)."""
    if spec.price is not None:
        price_in: int | None = _micros_per_mtok(spec.price.input_per_mtok)
        price_out: int | None = _micros_per_mtok(spec.price.output_per_mtok)
    else:
        price_in = price_out = None
    described = spec.price is not None or spec.context_window is not None
    return ModelInfo(
        model_id,
        spec.litellm,
        spec.context_window,
        spec.max_output_tokens,
        price_in,
        price_out,
        "policy" if described else "unknown",
    )
