"""Budgets in decisions: reserve, block with retry_after, downgrade, warn, settle, alerts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from engine_bundles import policy

BODY = """
tiers:
  premium: {targets: [{model: large}], fallback: [economy]}
  economy: {targets: [{model: small}]}
routing:
  default: premium
  timeout: 30s
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 0.05}
    on_exceed: {action: downgrade, tier: economy}
    alerts: [0.5]
  - name: user-requests
    key: request.user.id
    window: {rolling: 1m}
    limit: {requests: 3}
    on_exceed: {action: block, message: Slow down}
  - name: tokens-warn
    key: '"all"'
    window: calendar_month
    limit: {tokens: 5000}
    on_exceed: {action: warn}
"""


def req(user: str = "u1", tenant: str = "t1", max_tokens: int = 1000) -> dict:
    return {
        "tenant": {"id": tenant, "tier": "pro"},
        "user": {"id": user},
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "x" * 400}],
    }


def test_reservation_is_listed_and_settled_with_actual_spend(make_engine):
    engine = make_engine(policy(BODY))
    d = engine.decide(req())
    assert d.allowed and d.model == "large"
    names = [b.name for b in d.budgets]
    assert names == ["tenant-daily", "user-requests", "tokens-warn"]
    tenant = d.budgets[0]
    # worst case: 104 input tokens * $3/M + 1000 output tokens * $15/M = $0.015312
    assert tenant.reserved_usd == pytest.approx(0.015312)
    assert tenant.spent_usd == 0 and tenant.state == "ok"
    engine.record(d, input_tokens=104, output_tokens=10, cost_usd=0.001)
    engine.record(d, input_tokens=104, output_tokens=10, cost_usd=0.001)  # idempotent
    d2 = engine.decide(req(user="u2"))
    assert d2.budgets[0].spent_usd == pytest.approx(0.001)


def test_block_budget_refuses_with_retry_after(make_engine):
    engine = make_engine(
        policy(BODY),
    )
    for _ in range(3):
        assert engine.decide(req(max_tokens=10)).allowed
    d = engine.decide(req(max_tokens=10))
    assert not d.allowed and d.blocked_by == "user-requests" and d.message == "Slow down"
    assert d.retry_after_s is not None and 0 < d.retry_after_s <= 61
    assert d.model is None
    assert engine.decide(req(user="other", max_tokens=10)).allowed


def test_rolling_window_slides(make_engine, clock):
    engine = make_engine(policy(BODY))
    for _ in range(3):
        engine.decide(req(max_tokens=10))
    assert not engine.decide(req(max_tokens=10)).allowed
    clock.now += timedelta(seconds=62)
    assert engine.decide(req(max_tokens=10)).allowed


def test_downgrade_reroutes_to_the_cheaper_tier(make_engine):
    events = []
    engine = make_engine(policy(BODY))
    engine.on_event(events.append)
    first = engine.decide(req(user="a", max_tokens=500))
    engine.record(first, cost_usd=0.045)  # tenant at $0.045 of $0.05
    assert not [e for e in events if e["type"] == "budget_alert"]
    # reserving $0.0078 more on large does not fit: re-routed to economy's small model,
    # and crossing 50% fires the alert, once
    d = engine.decide(req(user="b", max_tokens=500))
    assert [e["threshold"] for e in events if e["type"] == "budget_alert"] == [0.5]
    engine.decide(req(user="c", max_tokens=500))
    assert len([e for e in events if e["type"] == "budget_alert"]) == 1
    assert d.allowed and d.tier == "economy" and d.model == "small"
    assert any(t.outcome == "downgrade" for t in d.trace)
    assert d.budgets[0].name == "tenant-daily"


def test_warn_budget_warns_but_allows(make_engine):
    engine = make_engine(policy(BODY))
    assert not engine.decide(req(user="w1", tenant="w1", max_tokens=3000)).warnings
    d = engine.decide(req(user="w2", tenant="w2", max_tokens=3000))  # 6,208 tokens > 5,000
    assert d.allowed and d.budgets[2].state == "exceeded"
    assert any("tokens-warn" in w for w in d.warnings)


def test_adecide_reserves_too(make_engine):
    engine = make_engine(policy(BODY))

    async def run():
        return [await engine.adecide(req(user="async", max_tokens=10)) for _ in range(4)]

    decisions = asyncio.run(run())
    assert [d.allowed for d in decisions] == [True, True, True, False]


def test_null_key_counts_under_missing(make_engine):
    engine = make_engine(policy(BODY))
    request = req(max_tokens=10)
    del request["user"]
    d = engine.decide(request)
    assert d.budgets[1].key == "_missing"
    assert any(t.outcome == "missing-key" for t in d.trace)


def test_unsettled_reservations_expire_after_the_configured_ttl(make_engine, clock):
    engine = make_engine(policy(BODY), reservation_ttl_s=5)
    for _ in range(3):
        assert engine.decide(req(user="ttl", max_tokens=10)).allowed  # never recorded
    assert not engine.decide(req(user="ttl", max_tokens=10)).allowed
    first = engine.decide(req(user="ttl2", max_tokens=1000))
    clock.now += timedelta(seconds=6)
    # the crashed caller's reservations no longer hold the tenant's dollars
    later = engine.decide(req(user="ttl3", max_tokens=1000))
    assert later.budgets[0].spent_usd == pytest.approx(0.0)
    assert first.budgets[0].spent_usd > 0
