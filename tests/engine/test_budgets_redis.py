"""Budgets shared through a real Redis: two engines (two app instances) and one limit."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from engine_bundles import policy

BODY = """
tiers:
  t: {targets: [{model: small}]}
routing: {default: t, timeout: 10s}
budgets:
  - name: per-user
    key: request.user.id
    window: calendar_day
    limit: {requests: 20}
    on_exceed: {action: block, message: Daily limit reached}
    on_store_error: block
  - name: spend
    key: request.tenant.id
    window: calendar_month
    limit: {usd: 100}
    on_exceed: {action: warn}
"""

OPEN_BODY = BODY.replace("    on_store_error: block\n", "")


def req(user: str = "u1") -> dict:
    return {
        "tenant": {"id": "t1", "tier": "pro"},
        "user": {"id": user},
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_two_instances_share_one_limit_exactly(make_engine, redis_url, redis_prefix):
    a = make_engine(policy(BODY), store=redis_url, key_prefix=redis_prefix)
    b = make_engine(policy(BODY), store=redis_url, key_prefix=redis_prefix)
    allowed = []
    lock = threading.Lock()

    def worker(engine, n):
        for _ in range(n):
            d = engine.decide(req("shared"))
            with lock:
                allowed.append(d.allowed)
            if d.allowed:
                engine.record(d, input_tokens=5, output_tokens=5, cost_usd=0.001)

    threads = [threading.Thread(target=worker, args=(e, 15)) for e in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 20 and allowed.count(False) == 40
    blocked = b.decide(req("shared"))
    assert blocked.blocked_by == "per-user" and blocked.message == "Daily limit reached"
    assert blocked.retry_after_s is not None and blocked.retry_after_s > 0
    # settled spend is exact to the micro-dollar across both instances
    assert a.decide(req("other")).budgets[1].spent_usd == pytest.approx(0.020)
    a.close()
    b.close()


def test_adecide_reserves_through_redis_asyncio(make_engine, redis_url, redis_prefix):
    engine = make_engine(policy(BODY), store=redis_url, key_prefix=redis_prefix)

    async def run():
        results = await asyncio.gather(*(engine.adecide(req("async")) for _ in range(25)))
        return [d.allowed for d in results]

    assert sorted(asyncio.run(run())) == [False] * 5 + [True] * 20
    engine.close()


@pytest.mark.parametrize(("body", "allowed"), [(BODY, False), (OPEN_BODY, True)])
def test_an_unreachable_store_fails_fast_and_follows_on_store_error(make_engine, body, allowed):
    engine = make_engine(
        policy(body), store="redis://127.0.0.1:1/0", connect_timeout_s=0.2, command_timeout_s=0.2
    )
    start = time.monotonic()
    d = engine.decide(req())
    assert time.monotonic() - start < 1.5  # a dead Redis never hangs a request
    assert d.allowed is allowed
    assert {b.state for b in d.budgets} == {"store_error"}
    if allowed:
        assert any("store unreachable" in w for w in d.warnings)
    else:
        assert d.blocked_by == "per-user" and d.retry_after_s == 1.0
    engine.close()
