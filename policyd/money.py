"""Money: US dollars as integer micro-dollars, end to end.

Every amount the engine adds, compares or stores is an ``int`` of micro-dollars
(1 USD = 1,000,000). Conversion from user input goes through :class:`Decimal`
of the value's text, so ``0.1`` is exactly 100,000 micro-dollars and sums never
drift. Floats appear only at the edges, for display.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from policyd.errors import ConfigError

MICROS_PER_USD = 1_000_000
#: Largest amount any store accepts: integers up to 2**53 stay exact in every
#: store (Redis Lua numbers are doubles). That is about nine billion dollars.
MAX_MICROS = 2**53 - 1

_ONE = Decimal(1)


def usd_to_micros(value: int | float | str | Decimal) -> int:
    """Convert a USD amount to integer micro-dollars, rounding half away from zero.

    ``value`` is read through its decimal text (``Decimal(str(value))``), so
    ``usd_to_micros(0.1) == 100_000`` exactly. Raises :class:`ValueError` for
    booleans, text that is not a number, NaN and infinities.
    """
    if isinstance(value, bool):
        raise ConfigError(f"a USD amount must be a number, not {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ConfigError(f"a USD amount must be a number, got {value!r}") from None
    if not amount.is_finite():
        raise ConfigError(f"a USD amount must be finite, got {value!r}")
    return int((amount * MICROS_PER_USD).quantize(_ONE, rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> float:
    """Micro-dollars as a float number of USD, for display and JSON only."""
    return micros / MICROS_PER_USD
