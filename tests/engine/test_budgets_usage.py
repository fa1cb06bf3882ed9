"""Spend an operator can see: engine.usage() and `policyd budgets` (#14)."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from engine_bundles import policy

from policyd.budgets.usage import UnknownBudget
from policyd.cli import main
from policyd.errors import RequestError

BODY = """
tiers:
  t: {targets: [{model: small}]}
routing: {default: t, timeout: 10s}
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 0.001, requests: 100}
    alerts: [0.5, 0.9]
    on_exceed: {action: warn}
  - name: per-minute
    key: request.user.id
    window: {rolling: 1m}
    limit: {requests: 10}
"""


def req(tenant: str = "acme", user: str = "u1") -> dict:
    return {
        "tenant": {"id": tenant, "tier": "pro"},
        "user": {"id": user},
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_usage_reports_spent_reserved_limit_reset_and_alerts(make_engine, redis_or_memory):
    engine = make_engine(policy(BODY), **redis_or_memory)
    first = engine.decide(req())
    engine.record(first, input_tokens=5, output_tokens=50, cost_usd=0.0006)
    engine.decide(req())  # a live reservation of 5 input + 100 output tokens, 61 µUSD
    u = engine.usage("p", "tenant-daily", "acme")
    assert (u.policy, u.budget, u.key, u.window) == ("p", "tenant-daily", "acme", "d20261124")
    assert (u.spent_usd, u.spent_tokens, u.spent_requests) == (0.0006, 55, 1)
    assert (u.reserved_tokens, u.reserved_requests) == (105, 1)
    assert u.reserved_usd == 0.000061
    assert (u.limit_usd, u.limit_tokens, u.limit_requests) == (0.001, None, 100)
    assert u.resets_at is not None and u.resets_at.isoformat() == "2026-11-25T00:00:00+00:00"
    assert u.alerts_fired == (0.5,)
    assert u.to_dict()["remaining_usd"] == pytest.approx(0.000339)
    rolling = engine.usage(None, "per-minute", "u1")
    assert rolling.resets_at is None and rolling.spent_requests + rolling.reserved_requests == 2
    # read-only: asking changes nothing, and an unknown key is simply empty
    assert engine.usage("p", "tenant-daily", "acme") == u
    empty = engine.usage("p", "tenant-daily", "nobody")
    assert (empty.spent_usd, empty.reserved_requests, empty.alerts_fired) == (0, 0, ())
    assert asyncio.run(engine.ausage("p", "tenant-daily", "acme")) == u
    with pytest.raises(UnknownBudget, match=r"has no budget 'nope'.*tenant-daily, per-minute"):
        engine.usage("p", "nope", "acme")
    with pytest.raises(RequestError):
        engine.usage("other", "tenant-daily", "acme")
    engine.close()


def test_policyd_budgets_lists_live_counters(make_engine, redis_url, redis_prefix, tmp_path):
    engine = make_engine(policy(BODY), store=redis_url, key_prefix=redis_prefix)
    for tenant in ("acme", "globex"):
        d = engine.decide(req(tenant, user=f"user-{tenant}"))
        engine.record(d, input_tokens=5, output_tokens=5, cost_usd=0.0001)
    engine.close()
    runner = CliRunner()
    args = ["budgets", str(tmp_path), "--store", redis_url, "--key-prefix", redis_prefix]
    args += ["--now", "2026-11-24T12:00:30Z"]  # the engine's clock, 30 s later
    result = runner.invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["budget"], r["key"]) for r in rows] == [
        ("tenant-daily", "acme"),
        ("tenant-daily", "globex"),
        ("per-minute", "user-acme"),
        ("per-minute", "user-globex"),
    ]
    assert rows[0]["spent_usd"] == 0.0001 and rows[0]["limit_usd"] == 0.001
    assert rows[0]["reserved_usd"] == 0 and rows[0]["resets_at"].startswith("20")
    one = runner.invoke(main, [*args, "--budget", "tenant-daily", "--key", "globex"])
    assert one.exit_code == 0, one.output
    assert one.output.startswith("p/tenant-daily key globex window d")
    assert "usd 0.0001 spent + 0 reserved, limit 0.001" in one.output
    bad = runner.invoke(main, [*args, "--budget", "nope"])
    assert bad.exit_code == 2 and "no policy has a budget 'nope'" in bad.output


def test_policyd_budgets_on_the_memory_store_says_what_it_can_see(make_engine, tmp_path):
    make_engine(policy(BODY)).close()
    result = CliRunner().invoke(main, ["budgets", str(tmp_path)])
    assert result.exit_code == 0
    assert result.output == "no live budget counters in the memory store of this process\n"
