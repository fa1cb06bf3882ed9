"""The ledger's edges: amounts at the ends of the exact range, each dimension on its own.

Written against mutants that survived the rest of the suite (tools/mutation.py):
every bound of ``check_lines`` is inclusive and checked per dimension.
"""

from __future__ import annotations

import pytest
from budget_helpers import NOW

from policyd.budgets import Amount, Limit, Line, Window
from policyd.budgets.ledger import check_lines
from policyd.money import MAX_MICROS
from policyd.stores import Store

DAY = Window("calendar_day")
BIG = Limit(usd_micros=MAX_MICROS, tokens=MAX_MICROS, requests=MAX_MICROS)


def line(amount: Amount, budget: str = "b", key: str = "k") -> Line:
    return Line(budget=budget, key=key, window=DAY, limit=BIG, amount=amount)


@pytest.mark.parametrize(
    "amount",
    [
        Amount(0, 0, 0),
        Amount(MAX_MICROS, 0, 0),
        Amount(0, MAX_MICROS, 0),
        Amount(0, 0, MAX_MICROS),
        Amount(MAX_MICROS, MAX_MICROS, MAX_MICROS),
    ],
)
def test_both_ends_of_the_range_are_accepted(store: Store, amount: Amount) -> None:
    reservation = store.reserve("d1", [line(amount)], NOW, ttl_s=60)
    assert reservation.ok
    assert store.settle(reservation, amount, NOW)
    assert store.usage("b", "k", DAY, NOW) == amount


@pytest.mark.parametrize(
    "amount",
    [
        Amount(MAX_MICROS + 1, 0, 0),
        Amount(0, MAX_MICROS + 1, 0),
        Amount(0, 0, MAX_MICROS + 1),
        Amount(-1, 0, 0),
        Amount(0, -1, 0),
        Amount(0, 0, -1),
    ],
)
def test_one_dimension_out_of_range_is_refused(store: Store, amount: Amount) -> None:
    with pytest.raises(ValueError) as raised:
        store.reserve("d1", [line(amount, budget="tenant-daily")], NOW, ttl_s=60)
    assert str(raised.value) == f"budget 'tenant-daily': amount out of range: {amount}"


def test_one_line_per_counter() -> None:
    check_lines([line(Amount(1, 1, 1))])
    check_lines([line(Amount(1, 1, 1)), line(Amount(1, 1, 1), key="other")])
    check_lines([line(Amount(1, 1, 1)), line(Amount(1, 1, 1), budget="other")])
    with pytest.raises(ValueError) as raised:
        check_lines([line(Amount(1, 1, 1)), line(Amount(2, 2, 2))])
    assert str(raised.value) == "a budget and key appears twice in one call: one line per counter"


@pytest.mark.parametrize(
    ("spent", "admitted"),
    [
        (Amount(10, 5, 2), True),  # exactly at every limit
        (Amount(11, 0, 0), False),
        (Amount(0, 6, 0), False),
        (Amount(0, 0, 3), False),
    ],
)
def test_a_limit_admits_up_to_and_including_each_cap(spent: Amount, admitted: bool) -> None:
    assert Limit(10, 5, 2).admits(spent) is admitted
    assert Limit().admits(spent)  # nothing limited
