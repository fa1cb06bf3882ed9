""" "Never fits" is told apart from "used up" (#14)."""

from __future__ import annotations

from engine_bundles import policy

BODY = """
tiers:
  premium: {targets: [{model: large}]}
  economy: {targets: [{model: small}]}
routing: {default: premium, context_window: ignore}
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 0.05}
    on_exceed: {action: ACTION, tier: economy, message: Tenant daily budget used up}
"""


def req(max_tokens: int | None = None) -> dict:
    r: dict = {
        "tenant": {"id": "acme", "tier": "pro"},
        "user": {"id": "u1"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    if max_tokens is not None:
        r["max_tokens"] = max_tokens
    return r


def body(action: str) -> str:
    text = BODY.replace("ACTION", action)
    return text if action == "downgrade" else text.replace("tier: economy, ", "")


def test_a_request_that_can_never_fit_is_not_reported_as_used_up(make_engine):
    engine = make_engine(policy(body("block")))
    # no max_tokens: 4,096 output tokens at $15/M reserve $0.0615 against $0.05, on
    # zero spend. Before: "Tenant daily budget used up", retry_after until midnight.
    d = engine.decide(req())
    assert d.blocked_by == "tenant-daily"
    assert d.retry_after_s is None
    assert d.message is not None and "can never fit" in d.message
    assert "used up" not in d.message
    [state] = d.budgets
    assert state.state == "too_large" and state.retry_after_s is None
    assert state.spent_usd == 0
    assert any(t.outcome == "block" and "never fits" in t.detail for t in d.trace)
    # a request that fits is still admitted: nothing was reserved by the refusal
    assert engine.decide(req(max_tokens=1000)).allowed


def test_used_up_keeps_its_message_and_retry_after(make_engine):
    engine = make_engine(policy(body("block")))
    for _ in range(3):
        d = engine.decide(req(max_tokens=1000))  # $0.015 each
        assert d.allowed
        engine.record(d, input_tokens=5, output_tokens=1000, cost_usd=0.015)
    d = engine.decide(req(max_tokens=1000))
    assert d.blocked_by == "tenant-daily" and d.message == "Tenant daily budget used up"
    assert d.retry_after_s is not None and d.retry_after_s > 0
    assert d.budgets[0].state == "blocked"


def test_never_fits_downgrades_when_the_budget_says_downgrade(make_engine):
    engine = make_engine(policy(body("downgrade")))
    d = engine.decide(req())
    assert d.allowed and d.model == "small"  # 4,096 x $0.60/M fits the limit
    assert d.retry_after_s is None
