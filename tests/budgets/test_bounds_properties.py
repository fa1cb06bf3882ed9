"""Bounded integer arithmetic: memory and Redis agree on every counter at the extremes (#11).

Random sequences of reserve / settle / release / expire with amounts at and past
the bounds (0, 1, near 2**53, 2**63, negative) run on the memory store and on
real Redis. After every step every counter must read the same on both, and
stay within [0, MAX_AMOUNT]: the Redis counter can never wrap to -2**63.
"""

from __future__ import annotations

import re
import struct
import uuid
from datetime import timedelta

from budget_helpers import NOW
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_helpers import PATIENT

from policyd.budgets import Amount, Limit, Line, ReserveResult, Window
from policyd.budgets.ledger import MAX_AMOUNT
from policyd.stores import MemoryStore, Store, open_store

TTL_S = 30
GRACE_S = 45
BIG = MAX_AMOUNT
POOL = (
    Line("block", "k", Window("calendar_day"), Limit(BIG, BIG, 1_000), Amount(), True),
    Line("warn", "k", Window("calendar_day"), Limit(usd_micros=10), Amount(), False, (0.5,)),
    Line("rate", "k", Window("rolling", rolling_s=60), Limit(requests=BIG), Amount(), True),
)
edge = st.sampled_from([0, 1, 2, BIG // 2, BIG - 1, BIG])
reserve_amount = st.one_of(edge, st.integers(0, BIG))
# what a store may be handed at settle time, hostile values included
settle_amount = st.one_of(
    edge, st.integers(0, BIG), st.sampled_from([BIG + 1, 2**63, 10**19, -1, -(2**63)])
)
ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(1, 7), reserve_amount, reserve_amount),
        st.tuples(
            st.just("settle"), st.integers(0, 30), settle_amount, settle_amount, st.booleans()
        ),
        st.tuples(st.just("tick"), st.sampled_from([1, 29, 30, 31, 45, 61, 76])),
    ),
    max_size=30,
)


def counters(store: Store, now) -> list[tuple[int, int, int]]:
    return [store.usage(ln.budget, ln.key, ln.window, now).as_tuple() for ln in POOL]


def run_ops(store: Store, ops: list[tuple]) -> list[object]:
    answers: list[object] = []
    now = NOW
    made: list[ReserveResult] = []
    for op in ops:
        if op[0] == "tick":
            now += timedelta(seconds=op[1])
        elif op[0] == "reserve":
            amount = Amount(op[2], op[3], 1)
            lines = [
                Line(ln.budget, ln.key, ln.window, ln.limit, amount, ln.enforce, ln.alerts)
                for bit, ln in enumerate(POOL)
                if op[1] & (1 << bit)
            ]
            result = store.reserve(f"d{len(made)}", lines, now, TTL_S)
            made.append(result)
            answers.append(result)
        elif made:
            result = made[op[1] % len(made)]
            actual = None if op[4] else Amount(op[2], op[3], 1)
            answers.append(store.settle(result, actual, now))
        seen = counters(store, now)
        for triple in seen:
            assert all(0 <= x <= MAX_AMOUNT for x in triple)
        answers.append(seen)
    return answers


def test_a_settle_past_the_bounds_is_clamped_the_same_on_both(redis_url, redis_prefix):
    line = POOL[0]
    for store in (MemoryStore(), open_store(redis_url, key_prefix=redis_prefix, **PATIENT)):
        result = store.reserve("d", [line], NOW, TTL_S)
        assert store.settle(result, Amount(-(10**6), 10**19, 1), NOW)
        assert store.usage("block", "k", line.window, NOW) == Amount(0, MAX_AMOUNT, 1)
        store.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops_strategy)
def test_memory_and_redis_agree_on_every_counter_at_the_bounds(
    redis_url: str, ops: list[tuple]
) -> None:
    import redis

    prefix = f"policyd-test:{uuid.uuid4().hex[:12]}:"
    redis_store = open_store(redis_url, key_prefix=prefix, settle_grace_s=GRACE_S, **PATIENT)
    client = redis.Redis.from_url(redis_url)
    try:
        expected = run_ops(MemoryStore(settle_grace_s=GRACE_S), ops)
        assert run_ops(redis_store, ops) == expected
        # every stored figure is an integer within the bounds (no wrap, no fraction, no
        # infinity): figures and entries are little-endian doubles, alert marks decimal text
        for key in client.scan_iter(match=prefix + "*", count=1000):
            if client.type(key) != b"hash":
                continue
            for name, value in client.hgetall(key).items():
                if name.startswith(b"e:"):
                    assert value[:1] in (b"L", b"X", b"S") and len(value) % 8 == 1
                    value = value[1:]
                elif name.startswith(b"a:"):
                    assert re.fullmatch(rb"[0-9]+", value), (name, value)
                    continue
                else:  # n: 10 figures; b<slot>: 6 per rolling bucket
                    assert len(value) == (80 if name == b"n" else 48), name
                for x in struct.unpack(f"<{len(value) // 8}d", value):
                    assert x == int(x) and 0 <= x <= MAX_AMOUNT, (key, name, x)
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        redis_store.close()
