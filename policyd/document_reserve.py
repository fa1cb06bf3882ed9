"""Typed model of how a budget prices a reservation: ``reserve:`` and ``budget_defaults:``.

Split from :mod:`policyd.document`, which re-exports every name here. ``reserve`` is
``worst_case``, ``{output_tokens: N}`` (a cap), ``{estimate: pNN}`` (a quantile of the
output tokens recorded for the policy and model, :mod:`policyd.budgets.learned`), or a
cap and an estimate together (the cap bounds the estimate and is its fallback).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from policyd.budgets.histogram import QUANTILE_PATTERN, parse_quantile
from policyd.fields import Strict, problem


def _quantile_number(value: Any) -> Any:
    """``estimate: 95`` or ``0.95``: a bare number is not a quantile (say how to write it)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raw = getattr(value, "raw", None) or f"{value:g}"
        percent = value * 100 if 0 < value < 1 else value
        raise problem(
            "quantile",
            f"unknown quantile {raw}: a quantile is written p and a percentile",
            f"write p{percent:g}" if 1 <= percent < 100 else "write e.g. p95 or p99",
        )
    return value


def _check_quantile(value: str) -> str:
    try:
        parse_quantile(value)
    except ValueError:
        raise problem(
            "quantile",
            f"unknown quantile {value[:24]!r}",
            "write p and a percentile from 1 to 99.99 (at most two decimals), e.g. p50, "
            "p95 or p99.9",
        ) from None
    return value


Quantile = Annotated[
    str,
    BeforeValidator(_quantile_number),
    AfterValidator(_check_quantile),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": QUANTILE_PATTERN,
            "description": "A percentile: p1 .. p99.99, e.g. p50, p95, p99.9",
        }
    ),
]
DEFAULT_MIN_SAMPLES = 100


class Reserve(Strict):
    """``reserve: {output_tokens: N}`` (a cap), ``{estimate: p95}`` (learned), or both."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [n], "properties": {n: {"not": {"type": "null"}}}}
                for n in ("output_tokens", "estimate")
            ],
            "dependentRequired": {"min_samples": ["estimate"]},
        }
    )

    output_tokens: int | None = Field(
        None,
        ge=1,
        le=2**53 - 1,
        description="Output tokens a reservation assumes at most (the request's max_tokens "
        "when lower); with estimate, also the fallback below min_samples",
    )
    estimate: Quantile | None = Field(
        None,
        description="Reserve this quantile of the output tokens recorded for the policy "
        "and model (shared through the store); the settle corrects to the actual cost",
    )
    min_samples: int | None = Field(
        None,
        ge=1,
        le=1_000_000_000,
        description=f"Recorded outcomes an estimate needs (default {DEFAULT_MIN_SAMPLES}); "
        "below it output_tokens applies if given, else the worst case",
    )

    @model_validator(mode="after")
    def _a_mode(self) -> Reserve:
        if self.output_tokens is None and self.estimate is None:
            raise problem(
                "reserve",
                "needs output_tokens, estimate or both",
                "for example {output_tokens: 1024} or {estimate: p95, output_tokens: 4096}",
            )
        if self.min_samples is not None and self.estimate is None:
            raise problem(
                "reserve",
                "min_samples is only used with estimate",
                "add estimate: p95 (for example), or remove min_samples",
            )
        return self


ReserveCap = Reserve  # the name before estimates (#14)
ReserveMode: TypeAlias = Literal["worst_case"] | Reserve


class BudgetDefaults(Strict):
    """``budget_defaults:``: settings every budget of the policy has unless it sets its own."""

    reserve: ReserveMode = Field(
        "worst_case", description="The reserve of every budget that sets none"
    )
