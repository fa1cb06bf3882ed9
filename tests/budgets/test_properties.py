"""Random interleavings of reserve / settle / expire (Hypothesis).

1. The memory store agrees with a tiny oracle written from the spec, and keeps
   ``spent <= limit`` for enforced budgets and ``spent == sum(settled)`` at the end.
2. The Redis store (Lua) gives exactly the memory store's (Python) answers, on
   calendar and rolling budgets, alerts and retry_after included.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from budget_helpers import NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd.budgets import Amount, Limit, Line, ReserveResult, Window
from policyd.stores import MemoryStore, Store, open_store

TTL_S = 30
GRACE_S = 45
DAY = Window("calendar_day")
BLOCK = Line("block", "k", DAY, Limit(usd_micros=10_000, tokens=2_000), Amount(), True)
WARN = Line("warn", "k", DAY, Limit(usd_micros=5_000), Amount(), False, alerts=(0.5, 0.9))
RATE = Line(
    "rate", "k", Window("rolling", rolling_s=60), Limit(requests=4), Amount(), True, (0.75,)
)

reserve_op = st.tuples(
    st.just("reserve"),
    st.integers(1, 7),  # which of the lines, as a bit mask
    st.integers(0, 4_000),  # usd micros
    st.integers(0, 600),  # tokens
)
settle_op = st.tuples(
    st.just("settle"),
    st.integers(0, 60),  # which earlier reservation
    st.integers(0, 100),  # actual, in percent of what was reserved
    st.booleans(),  # release instead
)
# ticks land on the ttl / grace / rolling boundaries often, where off-by-ones hide
tick_op = st.tuples(
    st.just("tick"),
    st.one_of(st.sampled_from([1, 15, 30, 45, 60, 61, 75]), st.integers(0, 90)),
)
ops_strategy = st.lists(st.one_of(reserve_op, settle_op, tick_op), max_size=40)


def lines_for(mask: int, usd: int, tokens: int, pool: tuple[Line, ...]) -> list[Line]:
    amount = Amount(usd, tokens, 1)
    return [
        Line(ln.budget, ln.key, ln.window, ln.limit, amount, ln.enforce, ln.alerts)
        for bit, ln in enumerate(pool)
        if mask & (1 << bit)
    ]


def actual_of(reserved: Amount, percent: int) -> Amount:
    return Amount(reserved.usd_micros * percent // 100, reserved.tokens * percent // 100, 1)


@dataclass
class Oracle:
    """The spec, for calendar budgets inside one window, as directly as it can be said."""

    settled: dict[str, Amount] = field(default_factory=dict)  # budget -> sum of actuals
    live: dict[str, tuple[datetime, list[Line]]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    def spent(self, budget: str, now: datetime) -> Amount:
        total = self.settled.get(budget, Amount())
        for reserved_at, lines in self.live.values():
            if now < reserved_at + timedelta(seconds=TTL_S):
                total += sum((ln.amount for ln in lines if ln.budget == budget), Amount())
        return total

    def reserve(self, did: str, lines: list[Line], now: datetime) -> bool:
        fits = [ln.limit.admits(self.spent(ln.budget, now) + ln.amount) for ln in lines]
        ok = all(fit or not ln.enforce for ln, fit in zip(lines, fits, strict=True))
        if ok:
            self.live[did] = (now, lines)
        return ok

    def settle(self, did: str, actual: Amount | None, now: datetime) -> bool:
        if did in self.done or did not in self.live:
            return False
        reserved_at, lines = self.live[did]
        if now >= reserved_at + timedelta(seconds=TTL_S + GRACE_S):
            return False  # forgotten: too late
        del self.live[did]
        self.done.add(did)
        for ln in lines:
            if actual is not None:
                self.settled[ln.budget] = self.settled.get(ln.budget, Amount()) + actual
        return True


@settings(max_examples=300, deadline=None)
@given(ops_strategy)
def test_memory_store_follows_the_spec(ops: list[tuple]) -> None:
    store, oracle = MemoryStore(settle_grace_s=GRACE_S), Oracle()
    now = NOW
    reservations: list[tuple[ReserveResult, Amount]] = []
    for op in ops:
        if op[0] == "tick":
            now += timedelta(seconds=op[1])
        elif op[0] == "reserve":
            did = f"d{len(reservations)}"
            lines = lines_for(op[1] & 3 or 1, op[2], op[3], (BLOCK, WARN))
            result = store.reserve(did, lines, now, TTL_S)
            assert result.ok == oracle.reserve(did, lines, now)
            reservations.append((result, lines[0].amount))
        elif reservations:
            result, reserved = reservations[op[1] % len(reservations)]
            actual = None if op[3] else actual_of(reserved, op[2])
            assert store.settle(result, actual, now) == oracle.settle(
                result.decision_id, actual, now
            )
        for ln in (BLOCK, WARN):
            spent = store.usage(ln.budget, ln.key, ln.window, now)
            assert spent == oracle.spent(ln.budget, now)
            if ln.enforce:
                assert ln.limit.admits(spent)
    # settle or release whatever is still open: what remains is exactly what was settled
    for result, _ in reservations:
        store.settle(result, None, now)
        oracle.settle(result.decision_id, None, now)
    for ln in (BLOCK, WARN):
        assert store.usage(ln.budget, ln.key, ln.window, now) == oracle.settled.get(
            ln.budget, Amount()
        )


def run_ops(store: Store, ops: list[tuple]) -> list[object]:
    """Apply ``ops`` to ``store``; every answer it gave, in order."""
    answers: list[object] = []
    now = NOW
    reservations: list[tuple[ReserveResult, Amount]] = []
    pool = (BLOCK, WARN, RATE)
    for op in ops:
        if op[0] == "tick":
            now += timedelta(seconds=op[1])
            continue
        if op[0] == "reserve":
            lines = lines_for(op[1], op[2], op[3], pool)
            result = store.reserve(f"d{len(reservations)}", lines, now, TTL_S)
            reservations.append((result, lines[0].amount))
            answers.append(result)
            for ln in lines:
                spent = store.usage(ln.budget, ln.key, ln.window, now)
                answers.append(spent)
                if ln.enforce and ln.budget != "rate":
                    assert ln.limit.admits(spent)
        elif reservations:
            result, reserved = reservations[op[1] % len(reservations)]
            actual = None if op[3] else actual_of(reserved, op[2])
            answers.append(store.settle(result, actual, now))
    return answers


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops_strategy)
def test_redis_store_answers_exactly_like_memory(redis_url: str, ops: list[tuple]) -> None:
    prefix = f"policyd-test:{uuid.uuid4().hex[:12]}:"
    redis_store = open_store(redis_url, key_prefix=prefix, settle_grace_s=GRACE_S)
    try:
        expected = run_ops(MemoryStore(settle_grace_s=GRACE_S), ops)
        assert run_ops(redis_store, ops) == expected
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        redis_store.close()
