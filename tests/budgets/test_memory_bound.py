"""The memory store's settled-id records stay bounded and still settle exactly once (#17).

A busy store remembers every decision settled in the last ``settle_grace_s``; these
tests check that it forgets them on time (so memory follows the rate, not the total),
that a decision is counted once however often and whenever it is settled within the
grace, and what the ``max_settled`` cap does when a counter would hold more.
"""

from __future__ import annotations

from datetime import timedelta

from budget_helpers import NOW
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.budgets import Amount, Limit, Line, Window
from policyd.stores import MemoryStore

DAY = Window("calendar_day")
MINUTE = Window("rolling", rolling_s=60)


def lines() -> list[Line]:
    amount = Amount(10, 1, 1)
    return [
        Line("daily", "acme", DAY, Limit(usd_micros=10**12), amount, True),
        Line("rate", "acme", MINUTE, Limit(requests=10**9), amount, True),
    ]


def held(store: MemoryStore) -> int:
    return int(store.stats()["settled_ids"])  # type: ignore[call-overload]


def test_settled_ids_follow_the_rate_not_the_total() -> None:
    store = MemoryStore(settle_grace_s=60)
    rate = 10  # decisions a second, for 10 minutes of the caller's clock
    for i in range(6_000):
        now = NOW + timedelta(seconds=i / rate)
        store.settle(store.reserve(f"d{i}", lines(), now, 30), Amount(5, 1, 1), now)
    # two counters, each remembering at most grace + one generation (grace / 4) of ids
    assert held(store) <= 2 * rate * (60 + 15) + 2
    assert held(store) >= 2 * rate * 60 - 2
    assert store.stats()["settled_dropped"] == 0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 19), st.integers(0, 200)),  # decision, seconds later
        min_size=1,
        max_size=60,
    )
)
def test_a_settle_within_the_grace_counts_once(settles: list[tuple[int, int]]) -> None:
    store = MemoryStore(settle_grace_s=60)
    reservations = {d: store.reserve(f"d{d}", lines()[:1], NOW, 30) for d in range(20)}
    counted: dict[int, int] = {}
    for decision, later in sorted(settles, key=lambda s: s[1]):
        now = NOW + timedelta(seconds=later)
        if store.settle(reservations[decision], Amount(7, 1, 1), now):
            counted[decision] = counted.get(decision, 0) + 1
    for decision, n in counted.items():
        assert n == 1, f"decision {decision} counted {n} times"
    usage = store.usage("daily", "acme", DAY, NOW + timedelta(seconds=200))
    assert usage.usd_micros == 7 * len(counted)


def test_the_cap_forgets_the_oldest_ids_early_and_counts_them() -> None:
    store = MemoryStore(settle_grace_s=600, max_settled=100)
    kept = []
    for i in range(1_000):
        now = NOW + timedelta(seconds=i)
        result = store.reserve(f"d{i}", lines()[:1], now, 30)
        store.settle(result, Amount(5, 1, 1), now)
        kept.append(result)
    stats = store.stats()
    assert stats["settled_dropped"] > 0
    assert held(store) <= 100 + 150  # the cap, plus the generation being filled
    # a decision forgotten early is unknown: settling it again still counts nothing
    now = NOW + timedelta(seconds=1_000)
    before = store.usage("daily", "acme", DAY, now)
    assert store.settle(kept[0], Amount(5, 1, 1), now) is False
    assert store.usage("daily", "acme", DAY, now) == before
