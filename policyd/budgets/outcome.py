"""Validation of the figures ``Engine.record()`` is given (tokens, cost) before they count.

A figure a store cannot count exactly (negative, NaN, infinite, not a number, or
beyond :data:`~policyd.budgets.ledger.MAX_AMOUNT`) is dropped from the outcome,
so the reservation settles as if it had not been reported, and the engine
raises :class:`~policyd.errors.OutcomeError` naming the argument afterwards.
"""

from __future__ import annotations

from decimal import Decimal

from policyd.budgets.ledger import MAX_AMOUNT
from policyd.errors import OutcomeError
from policyd.money import MICROS_PER_USD

#: The largest cost_usd record() accepts: MAX_AMOUNT micro-dollars.
MAX_COST_USD = Decimal(MAX_AMOUNT) / MICROS_PER_USD


def check_tokens(field: str, value: object) -> OutcomeError | None:
    """None when ``value`` is None or a whole number of tokens a store can count."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return OutcomeError(
            f"must be a whole number of tokens, got a {type(value).__name__}", field
        )
    if not 0 <= value <= MAX_AMOUNT:
        return OutcomeError(f"must be between 0 and {MAX_AMOUNT}, got {value}", field)
    return None


def check_cost(value: object) -> OutcomeError | None:
    """None when ``value`` is None or a USD cost a store can count."""
    field = "cost_usd"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return OutcomeError(f"must be a number of USD, got a {type(value).__name__}", field)
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    if not amount.is_finite():
        return OutcomeError(f"must be a finite number of USD, got {value}", field)
    if not 0 <= amount <= MAX_COST_USD:
        return OutcomeError(f"must be between 0 and {MAX_COST_USD} USD, got {value}", field)
    return None


def check_outcome(
    input_tokens: object, output_tokens: object, cost_usd: object
) -> OutcomeError | None:
    """The first problem with the reported figures, or None when all can be counted."""
    return (
        check_tokens("input_tokens", input_tokens)
        or check_tokens("output_tokens", output_tokens)
        or check_cost(cost_usd)
    )
