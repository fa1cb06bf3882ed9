"""Ledger types shared by the budgets stage and every store.

An :class:`Amount` is what one call costs or a budget has spent (integer
micro-dollars, tokens, requests); a :class:`Limit` caps any of the three. A
:class:`Line` asks a store to reserve an amount against one budget × key ×
window for one decision; the store answers with a :class:`LineResult` per line
inside one :class:`ReserveResult`, which is also the handle to settle with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from policyd.budgets.windows import Window
from policyd.errors import ConfigError
from policyd.money import MAX_MICROS

#: The counter that a budget key goes to when its expression errors or is null.
MISSING_KEY = "_missing"
#: Largest value of any dimension of one amount, and of any counter field, in every
#: store: 2**53 - 1 (exact as a Lua number in Redis; about 9 billion USD in
#: micro-dollars). Settled amounts are clamped to [0, MAX_AMOUNT] and counters
#: saturate at MAX_AMOUNT (and never go below 0), the same way in memory and Redis,
#: so no counter can wrap.
MAX_AMOUNT = MAX_MICROS


def clamp(value: int) -> int:
    """``value`` within [0, MAX_AMOUNT]: the bounded arithmetic every store shares."""
    return 0 if value < 0 else MAX_AMOUNT if value > MAX_AMOUNT else value


@dataclass(frozen=True, slots=True)
class Amount:
    """Spend in the three dimensions a budget can limit."""

    usd_micros: int = 0
    tokens: int = 0
    requests: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.usd_micros, self.tokens, self.requests)

    def __add__(self, other: Amount) -> Amount:
        return Amount(
            self.usd_micros + other.usd_micros,
            self.tokens + other.tokens,
            self.requests + other.requests,
        )

    def clamped(self) -> Amount:
        """Each dimension within [0, MAX_AMOUNT] (what a store settles, whatever it is given)."""
        return Amount(clamp(self.usd_micros), clamp(self.tokens), clamp(self.requests))


@dataclass(frozen=True, slots=True)
class Limit:
    """A cap per dimension; ``None`` leaves that dimension unlimited."""

    usd_micros: int | None = None
    tokens: int | None = None
    requests: int | None = None

    def as_tuple(self) -> tuple[int | None, int | None, int | None]:
        return (self.usd_micros, self.tokens, self.requests)

    def admits(self, spent: Amount) -> bool:
        """True when ``spent`` is within every limited dimension."""
        return all(
            lim is None or value <= lim
            for value, lim in zip(spent.as_tuple(), self.as_tuple(), strict=True)
        )


@dataclass(frozen=True, slots=True)
class Line:
    """Reserve ``amount`` against one budget × key for one decision.

    ``enforce=True`` (a ``block`` budget) means the line must fit or the whole
    reservation is refused; otherwise the amount is reserved even over the limit
    and :attr:`LineResult.fits` tells the stage to downgrade or warn.
    """

    budget: str
    key: str
    window: Window
    limit: Limit
    amount: Amount
    enforce: bool = True
    alerts: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class LineResult:
    """What a store saw for one line: spend before this decision, and the verdict.

    ``spent_before`` is settled spend plus live reservations in the window.
    ``retry_after_s`` is set when the line does not fit: seconds until the
    calendar window resets, or until enough rolling spend has slid out for the
    amount to fit. ``alerts_fired`` are thresholds crossed by this reservation
    that no earlier reservation in this window already fired.
    """

    budget: str
    key: str
    window: Window
    window_id: str
    limit: Limit
    spent_before: Amount
    fits: bool
    alerts_fired: tuple[float, ...] = ()
    retry_after_s: float | None = None
    reset_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """The answer to one reservation, and the handle to settle it with.

    ``ok`` is True when the amounts are reserved on every line. ``store_error``
    is set when the store could not be reached: nothing is known about spend
    (``spent_before`` is zero, ``fits`` True) and the budgets' ``on_store_error``
    decides; settling such a result still records the spend (journaled until
    the store is back).
    """

    decision_id: str
    ok: bool
    lines: tuple[LineResult, ...]
    store_error: str | None = None
    #: when the reservation stops counting (caller's clock, epoch ms; 0: unknown). A
    #: settle uses it to tell a reservation lost by the store from a late settle.
    deadline_ms: int = 0


@dataclass(frozen=True, slots=True)
class CounterUsage:
    """One counter's current window, read without changing it: settled spend, live
    reservations, and the alert thresholds (names such as ``'0.8'``) fired and live."""

    settled: Amount
    reserved: Amount
    alerts: tuple[str, ...] = ()

    @property
    def spent(self) -> Amount:
        """What a reservation is checked against: settled plus reserved (bounded)."""
        return (self.settled + self.reserved).clamped()


def check_lines(lines: Sequence[Line]) -> None:
    """Reject line sets a store cannot account for exactly (a programming error)."""
    for line in lines:
        amount = line.amount
        if not (
            0 <= amount.usd_micros <= MAX_MICROS
            and 0 <= amount.tokens <= MAX_MICROS
            and 0 <= amount.requests <= MAX_MICROS
        ):
            raise ConfigError(f"budget {line.budget!r}: amount out of range: {amount}")
    if len(lines) > 1 and len({(ln.budget, ln.key, ln.window) for ln in lines}) < len(lines):
        raise ConfigError("a budget and key appears twice in one call: one line per counter")


@lru_cache(maxsize=4096)
def alert_levels(
    limit: Limit, alerts: tuple[float, ...]
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Each alert threshold as (name, integer spend per dimension; -1 where unlimited).

    Spend ``s`` has crossed fraction ``f`` of limit ``L`` when ``s >= ceil(f * L)``,
    computed in :class:`Decimal` so no float rounding decides an alert.
    """
    levels = []
    for fraction in sorted(set(alerts)):
        exact = Decimal(str(fraction))
        dims = tuple(-1 if lim is None else math.ceil(exact * lim) for lim in limit.as_tuple())
        levels.append((repr(float(fraction)), dims))
    return tuple(levels)


def counter_suffix(window: Window, window_id: str) -> str:
    """Name of the counter a line's spend lives in, within its budget and key.

    A calendar counter is one window (``d20261124``): it ends with the window.
    A rolling counter lives on and forgets old buckets (``r60s``).
    """
    return window.counter_name if window.is_rolling else window_id
