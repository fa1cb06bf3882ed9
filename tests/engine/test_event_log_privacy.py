"""Engine events reach the ``policyd`` logger without the request values they carry."""

from __future__ import annotations

import logging

import pytest
from engine_bundles import policy

BODY = """
tiers:
  t: {targets: [{model: small}]}
routing: {default: t}
budgets:
  - name: daily
    key: request.tenant.id
    window: calendar_day
    limit: {requests: 4}
    alerts: [0.5]
    on_exceed: {action: block}
"""
EMAIL = "jane.doe@example.com"


def test_a_budget_alert_logs_no_budget_key(make_engine, caplog: pytest.LogCaptureFixture):
    engine = make_engine(policy(BODY))
    events: list[dict] = []
    engine.on_event(events.append)
    req = {"tenant": {"id": EMAIL, "tier": "pro"}, "max_tokens": 5}
    req["messages"] = [{"role": "user", "content": "hi"}]
    with caplog.at_level(logging.INFO, logger="policyd"):
        for _ in range(3):
            assert engine.decide(req).allowed
    [alert] = [e for e in events if e["type"] == "budget_alert"]
    assert alert["key"] == EMAIL  # a callback learns whose budget it is
    [record] = [r for r in caplog.records if r.getMessage() == "policyd event budget_alert"]
    logged = record.policyd_event  # type: ignore[attr-defined]
    assert logged["budget"] == "daily" and logged["threshold"] == 0.5
    # before: a structured log handler wrote the tenant's e-mail with every alert
    assert EMAIL not in str(vars(record))
