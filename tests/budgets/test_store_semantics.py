"""Reserve, then settle: the accounting every store must do, run on memory and Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from budget_helpers import NOW

from policyd.budgets import Amount, Limit, Line, Window
from policyd.stores import Store

DAY = Window("calendar_day")
MINUTE = Window("rolling", rolling_s=60)


def usd(micros: int, tokens: int = 0) -> Amount:
    return Amount(usd_micros=micros, tokens=tokens, requests=1)


def line(
    budget: str = "daily",
    amount: Amount | None = None,
    *,
    limit: Limit | None = None,
    key: str = "acme",
    window: Window = DAY,
    enforce: bool = True,
    alerts: tuple[float, ...] = (),
) -> Line:
    return Line(
        budget=budget,
        key=key,
        window=window,
        limit=limit or Limit(usd_micros=1_000),
        amount=amount or usd(400),
        enforce=enforce,
        alerts=alerts,
    )


def test_reserve_until_the_limit_then_block(store: Store) -> None:
    first = store.reserve("d1", [line()], NOW, ttl_s=60)
    second = store.reserve("d2", [line()], NOW, ttl_s=60)
    third = store.reserve("d3", [line()], NOW, ttl_s=60)
    assert (first.ok, second.ok, third.ok) == (True, True, False)
    assert third.lines[0].spent_before == Amount(800, 0, 2)
    assert not third.lines[0].fits
    assert third.lines[0].retry_after_s == 12 * 3600  # to midnight UTC
    assert second.lines[0].retry_after_s is None
    assert store.usage("daily", "acme", DAY, NOW) == Amount(800, 0, 2)


def test_settle_replaces_the_reservation_with_the_actual_cost(store: Store) -> None:
    reservation = store.reserve("d1", [line()], NOW, ttl_s=60)
    assert store.settle(reservation, usd(123, tokens=50), NOW)
    assert store.usage("daily", "acme", DAY, NOW) == Amount(123, 50, 1)
    # the freed headroom admits more
    assert store.reserve("d2", [line(amount=usd(877))], NOW, ttl_s=60).ok
    assert not store.reserve("d3", [line(amount=usd(1))], NOW, ttl_s=60).ok


def test_settling_twice_counts_once(store: Store) -> None:
    reservation = store.reserve("d1", [line()], NOW, ttl_s=60)
    assert store.settle(reservation, usd(300), NOW)
    assert not store.settle(reservation, usd(300), NOW + timedelta(seconds=1))
    assert not store.settle(reservation, None, NOW + timedelta(seconds=2))
    assert store.usage("daily", "acme", DAY, NOW) == usd(300)


def test_release_frees_everything(store: Store) -> None:
    reservation = store.reserve("d1", [line()], NOW, ttl_s=60)
    assert store.settle(reservation, None, NOW)
    assert store.usage("daily", "acme", DAY, NOW) == Amount()


def test_refused_reservation_cannot_be_settled(store: Store) -> None:
    refused = store.reserve("d1", [line(amount=usd(5_000))], NOW, ttl_s=60)
    assert not refused.ok
    assert not store.settle(refused, usd(5_000), NOW)
    assert store.usage("daily", "acme", DAY, NOW) == Amount()


def test_all_or_nothing_over_enforced_budgets(store: Store) -> None:
    small = line("small", limit=Limit(usd_micros=500), amount=usd(400))
    big = line("big", limit=Limit(usd_micros=10_000), amount=usd(400))
    assert store.reserve("d1", [small, big], NOW, ttl_s=60).ok
    refused = store.reserve("d2", [small, big], NOW, ttl_s=60)
    assert not refused.ok
    assert [ln.fits for ln in refused.lines] == [False, True]
    # the budget that had room was not charged for the refused decision
    assert store.usage("big", "acme", DAY, NOW) == usd(400)
    # and a refusal leaves no trace: the same decision id may try again with a cheaper model
    retry = store.reserve("d2", [big], NOW, ttl_s=60)
    assert retry.ok
    assert store.usage("big", "acme", DAY, NOW) == Amount(800, 0, 2)


def test_a_refusal_leaves_the_lines_before_it_as_they_were(store: Store) -> None:
    # a rolling line and an alerting one come before the line that refuses: whatever a
    # store did on them (Redis reserves line by line and puts them back) leaves no trace
    rate = line(
        "rate", amount=usd(300), limit=Limit(usd_micros=1_000), window=MINUTE, alerts=(0.5,)
    )
    warn = line("warn", amount=usd(600), enforce=False, alerts=(0.5,))
    small = line("small", limit=Limit(usd_micros=500), amount=usd(400))
    assert store.reserve("d1", [rate], NOW, ttl_s=60).ok
    before = [store.read(ln.budget, "acme", ln.window, NOW, ("0.5",)) for ln in (rate, warn)]
    assert store.reserve("d0", [small], NOW, ttl_s=60).ok
    refused = store.reserve("d2", [rate, warn, small], NOW, ttl_s=60)
    assert not refused.ok and [ln.alerts_fired for ln in refused.lines] == [(), (), ()]
    after = [store.read(ln.budget, "acme", ln.window, NOW, ("0.5",)) for ln in (rate, warn)]
    assert after == before
    # the same decision may try again: reserved once, and the alerts fire now
    again = store.reserve("d2", [rate, warn], NOW, ttl_s=60)
    assert again.ok and [ln.alerts_fired for ln in again.lines] == [(0.5,), (0.5,)]
    assert store.usage("rate", "acme", MINUTE, NOW) == Amount(600, 0, 2)
    assert store.settle(again, usd(100), NOW)
    assert store.usage("warn", "acme", DAY, NOW) == usd(100)


def test_unenforced_lines_reserve_over_the_limit_and_say_so(store: Store) -> None:
    warn = line("warn", limit=Limit(usd_micros=500), amount=usd(400), enforce=False)
    assert store.reserve("d1", [warn], NOW, ttl_s=60).lines[0].fits
    result = store.reserve("d2", [warn], NOW, ttl_s=60)
    assert result.ok and not result.lines[0].fits
    assert result.lines[0].retry_after_s == 12 * 3600
    assert store.usage("warn", "acme", DAY, NOW) == Amount(800, 0, 2)


def test_every_dimension_limits(store: Store) -> None:
    limit = Limit(usd_micros=None, tokens=1_000, requests=3)
    tokens = line("mix", amount=Amount(0, 600, 1), limit=limit)
    assert store.reserve("d1", [tokens], NOW, ttl_s=60).ok
    assert not store.reserve("d2", [tokens], NOW, ttl_s=60).ok  # 1200 tokens > 1000
    light = line("mix", amount=Amount(0, 100, 1), limit=limit)
    assert store.reserve("d3", [light], NOW, ttl_s=60).ok
    assert store.reserve("d4", [light], NOW, ttl_s=60).ok
    assert not store.reserve("d5", [light], NOW, ttl_s=60).ok  # a 4th request
    assert store.usage("mix", "acme", DAY, NOW) == Amount(0, 800, 3)


def test_keys_and_windows_are_separate_counters(store: Store) -> None:
    assert store.reserve("d1", [line(key="acme")], NOW, ttl_s=60).ok
    assert store.reserve("d2", [line(key="globex")], NOW, ttl_s=60).ok
    assert store.usage("daily", "acme", DAY, NOW) == usd(400)
    assert store.usage("daily", "globex", DAY, NOW) == usd(400)
    tomorrow = NOW + timedelta(days=1)
    assert store.usage("daily", "acme", DAY, tomorrow) == Amount()
    assert store.reserve("d3", [line(key="acme", amount=usd(1_000))], tomorrow, ttl_s=60).ok
    assert store.usage("daily", "acme", DAY, tomorrow) == usd(1_000)


@pytest.mark.parametrize("key", ["_missing", "a:b}{c", "x" * 500, "ünïcödé ✓", "", "{tag}"])
def test_any_key_text_is_its_own_counter(store: Store, key: str) -> None:
    assert store.reserve("d1", [line(key=key)], NOW, ttl_s=60).ok
    assert store.usage("daily", key, DAY, NOW) == usd(400)
    assert store.usage("daily", key + "-other", DAY, NOW) == Amount()


def test_unsettled_reservation_expires(store: Store) -> None:
    assert store.reserve("d1", [line(amount=usd(1_000))], NOW, ttl_s=30).ok
    assert not store.reserve("d2", [line()], NOW + timedelta(seconds=29), ttl_s=30).ok
    later = NOW + timedelta(seconds=30)
    assert store.usage("daily", "acme", DAY, later) == Amount()
    assert store.reserve("d3", [line()], later, ttl_s=30).ok


def test_late_settle_after_expiry_still_counts_once(store: Store) -> None:
    reservation = store.reserve("d1", [line()], NOW, ttl_s=30)
    late = NOW + timedelta(seconds=90)
    assert store.usage("daily", "acme", DAY, late) == Amount()
    assert store.settle(reservation, usd(250), late)
    assert not store.settle(reservation, usd(250), late)
    assert store.usage("daily", "acme", DAY, late) == usd(250)


def test_settle_after_the_grace_period_is_not_counted(store: Store) -> None:
    reservation = store.reserve("d1", [line()], NOW, ttl_s=30)
    too_late = NOW + timedelta(seconds=30 + 600)  # ttl + default settle_grace_s
    assert not store.settle(reservation, usd(250), too_late)
    assert store.usage("daily", "acme", DAY, too_late) == Amount()


def test_reserving_the_same_decision_twice_reserves_once(store: Store) -> None:
    assert store.reserve("d1", [line()], NOW, ttl_s=60).ok
    again = store.reserve("d1", [line()], NOW, ttl_s=60)
    assert again.ok and again.lines[0].fits
    assert store.usage("daily", "acme", DAY, NOW) == usd(400)


def test_settlement_counts_in_the_window_it_was_reserved_in(store: Store) -> None:
    evening = NOW.replace(hour=23, minute=59, second=50)
    reservation = store.reserve("d1", [line()], evening, ttl_s=60)
    after_midnight = evening + timedelta(seconds=20)
    assert store.settle(reservation, usd(700), after_midnight)
    assert store.usage("daily", "acme", DAY, evening) == usd(700)
    assert store.usage("daily", "acme", DAY, after_midnight) == Amount()


def test_alerts_fire_once_per_threshold_per_window(store: Store) -> None:
    alerting = line(amount=usd(300), alerts=(0.5, 0.8, 0.5))
    fired = [
        store.reserve(f"d{i}", [alerting], NOW, ttl_s=60).lines[0].alerts_fired for i in range(4)
    ]
    # 300 -> 600 crosses 0.5; 900 crosses 0.8; the 4th is refused (1200 > 1000)
    assert fired == [(), (0.5,), (0.8,), ()]
    # spend dropping and rising again in the same window does not fire again
    reservation = store.reserve("d9", [line(amount=usd(0), alerts=(0.5, 0.8))], NOW, ttl_s=60)
    assert reservation.lines[0].alerts_fired == ()
    tomorrow = NOW + timedelta(days=1)
    big = line(amount=usd(950), alerts=(0.5, 0.8, 0.95))
    assert store.reserve("t1", [big], tomorrow, ttl_s=60).lines[0].alerts_fired == (0.5, 0.8, 0.95)


def test_alerts_per_key_and_on_any_dimension(store: Store) -> None:
    limit = Limit(usd_micros=1_000_000, tokens=100)
    tokens_heavy = line(amount=Amount(1, 60, 1), limit=limit, alerts=(0.5,))
    assert store.reserve("a", [tokens_heavy], NOW, ttl_s=60).lines[0].alerts_fired == (0.5,)
    other_key = line(amount=Amount(1, 60, 1), limit=limit, alerts=(0.5,), key="globex")
    assert store.reserve("b", [other_key], NOW, ttl_s=60).lines[0].alerts_fired == (0.5,)


def test_rolling_window_slides(store: Store) -> None:
    rate = line("rate", amount=Amount(0, 0, 1), limit=Limit(requests=2), window=MINUTE)
    assert store.reserve("a", [rate], NOW, ttl_s=600).ok
    assert store.reserve("b", [rate], NOW + timedelta(seconds=30), ttl_s=600).ok
    blocked = store.reserve("c", [rate], NOW + timedelta(seconds=45), ttl_s=600)
    assert not blocked.ok
    # "a" (at :00) leaves the window at most one bucket (1s) after 60s
    assert blocked.lines[0].retry_after_s == 16.0
    assert not store.reserve("d", [rate], NOW + timedelta(seconds=60), ttl_s=600).ok
    assert store.reserve("e", [rate], NOW + timedelta(seconds=61), ttl_s=600).ok
    assert store.usage("rate", "acme", MINUTE, NOW + timedelta(seconds=61)).requests == 2
    assert store.usage("rate", "acme", MINUTE, NOW + timedelta(seconds=200)) == Amount()


def test_rolling_retry_after_when_the_amount_alone_is_too_big(store: Store) -> None:
    rate = line("rate", amount=Amount(0, 500, 1), limit=Limit(tokens=100), window=MINUTE)
    blocked = store.reserve("a", [rate], NOW, ttl_s=60)
    assert not blocked.ok and blocked.lines[0].retry_after_s == 61.0


def test_rolling_settlement_counts_where_it_was_reserved(store: Store) -> None:
    rate = line("rate", amount=usd(100), limit=Limit(usd_micros=1_000), window=MINUTE)
    reservation = store.reserve("a", [rate], NOW, ttl_s=600)
    assert store.settle(reservation, usd(40), NOW + timedelta(seconds=50))
    assert store.usage("rate", "acme", MINUTE, NOW + timedelta(seconds=55)) == usd(40)
    assert store.usage("rate", "acme", MINUTE, NOW + timedelta(seconds=62)) == Amount()


def test_rolling_alerts_rearm_after_a_window(store: Store) -> None:
    rate = line(
        "rate", amount=Amount(0, 0, 1), limit=Limit(requests=2), window=MINUTE, alerts=(0.5,)
    )
    assert store.reserve("a", [rate], NOW, ttl_s=1).lines[0].alerts_fired == (0.5,)
    assert (
        store.reserve("b", [rate], NOW + timedelta(seconds=5), ttl_s=1).lines[0].alerts_fired == ()
    )
    again = store.reserve("c", [rate], NOW + timedelta(seconds=90), ttl_s=1)
    assert again.lines[0].alerts_fired == (0.5,)


def test_large_amounts_stay_exact(store: Store) -> None:
    big = 2**52 + 1  # beyond float32 and %.14g: must not be rounded anywhere
    huge = line("huge", amount=Amount(big, big, 1), limit=Limit(usd_micros=2**53 - 1))
    reservation = store.reserve("d1", [huge], NOW, ttl_s=60)
    assert reservation.ok
    assert store.settle(reservation, Amount(big - 7, 3, 1), NOW)
    assert store.usage("huge", "acme", DAY, NOW) == Amount(big - 7, 3, 1)


def test_duplicate_lines_are_a_programming_error(store: Store) -> None:
    with pytest.raises(ValueError, match="appears twice in one call"):
        store.reserve("d1", [line(), line()], NOW, ttl_s=60)


async def test_async_api_matches(store: Store) -> None:
    first = await store.areserve("d1", [line()], NOW, ttl_s=60)
    assert first.ok
    assert await store.asettle(first, usd(10), NOW)
    assert not await store.asettle(first, usd(10), NOW)
    assert await store.ausage("daily", "acme", DAY, NOW) == usd(10)
    await store.aclose()
