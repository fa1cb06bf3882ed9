"""Redis asyncio pool exhaustion is back-pressure, never an outage (#11)."""

from __future__ import annotations

import asyncio

import pytest
from engine_bundles import policy
from redis_helpers import PATIENT

from policyd.stores import StoreError, open_store
from policyd.stores.redis import RedisStore

BODY = """
tiers:
  t: {targets: [{model: small}]}
routing: {default: t, timeout: 10s}
budgets:
  - name: per-tenant
    key: request.tenant.id
    window: calendar_day
    limit: {requests: 1000}
    on_exceed: {action: block, message: Daily limit reached}
    on_store_error: allow
"""


def req() -> dict:
    return {
        "tenant": {"id": "t1", "tier": "pro"},
        "user": {"id": "u1"},
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_1500_concurrent_adecide_admit_exactly_the_limit(make_engine, redis_url, redis_prefix):
    # a pool of 100 (the default) and 1,500 tasks at once: before, 1,400 of them got
    # MaxConnectionsError, were treated as an outage and allowed (on_store_error: allow)
    engine = make_engine(
        policy(BODY),
        store=redis_url,
        key_prefix=redis_prefix,
        # generous: on a loaded 2-core host, 1,500 tasks' CPU work between a connect's
        # steps can starve it; this test is about back-pressure, not latency
        command_timeout_s=10,
        connect_timeout_s=10,
    )
    store = engine._runtime.store
    assert isinstance(store, RedisStore) and store.pool_size == 100

    async def run() -> list:
        return await asyncio.gather(*(engine.adecide(req()) for _ in range(1500)))

    decisions = asyncio.run(run())
    states = [d.budgets[0].state for d in decisions]
    assert states.count("store_error") == 0
    assert sum(d.allowed for d in decisions) == 1000
    assert states.count("blocked") == 500
    stats = store.stats()
    assert stats["failures"] == 0 and stats["pool_busy"] == 0
    assert stats["pool_waits"] > 0  # the burst did queue for connections
    engine.close()


def test_pool_size_is_an_option_and_a_url_parameter(redis_url, redis_prefix):
    store = open_store(redis_url, key_prefix=redis_prefix, pool_size=7, **PATIENT)
    assert isinstance(store, RedisStore) and store.pool_size == 7
    store.close()
    sep = "&" if "?" in redis_url else "?"
    store = open_store(f"{redis_url}{sep}pool_size=3&pool_timeout_s=1.5")
    assert isinstance(store, RedisStore)
    assert (store.pool_size, store.pool_timeout_s) == (3, 1.5)
    assert store.stats()["pool_size"] == 3
    store.close()
    with pytest.raises(StoreError, match="pool_size must be a whole number"):
        open_store(f"{redis_url}{sep}pool_size=lots")
    with pytest.raises(StoreError, match="pool_size must be a whole number"):
        open_store(redis_url, pool_size=0)


def test_a_small_pool_serves_a_burst_of_async_reservations(redis_url, redis_prefix):
    from datetime import UTC, datetime

    from policyd.budgets import Amount, Limit, Line, Window

    store = open_store(
        redis_url, key_prefix=redis_prefix, pool_size=2, command_timeout_s=10, connect_timeout_s=10
    )
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    line = Line("b", "k", Window("calendar_day"), Limit(requests=120), Amount(0, 0, 1))

    async def run() -> list:
        return await asyncio.gather(*(store.areserve(f"d{i}", [line], now, 60) for i in range(300)))

    results = asyncio.run(run())
    assert sum(r.ok for r in results) == 120
    assert [r.store_error for r in results if r.store_error] == []
    store.close()
