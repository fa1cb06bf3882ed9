"""Money is integer micro-dollars; conversions are exact and never drift."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policyd.money import micros_to_usd, usd_to_micros


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        (0, 0),
        (1, 1_000_000),
        (0.1, 100_000),
        (2.00, 2_000_000),
        ("500", 500_000_000),
        ("0.0000005", 1),  # half rounds away from zero
        ("0.00000049", 0),
        ("-0.0000005", -1),
        (Decimal("1.2345675"), 1_234_568),
        (1e-7, 0),
        ("  3.5 ", 3_500_000),
    ],
)
def test_usd_to_micros(value: object, micros: int) -> None:
    assert usd_to_micros(value) == micros  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [True, "ten", "nan", float("inf"), "", None])
def test_usd_to_micros_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="USD amount"):
        usd_to_micros(bad)  # type: ignore[arg-type]


def test_tenths_sum_exactly() -> None:
    # the float sum of ten 0.1s is 0.9999999999999999; the micro-dollar sum is exact
    assert sum(usd_to_micros(0.1) for _ in range(10)) == usd_to_micros(1)


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False))
def test_six_decimal_places_round_trip(value: Decimal) -> None:
    assert Decimal(usd_to_micros(value)).scaleb(-6) == value


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_micros_to_usd_is_for_display(micros: int) -> None:
    assert micros_to_usd(micros) == pytest.approx(micros / 1e6)
    assert usd_to_micros(Decimal(micros).scaleb(-6)) == micros
