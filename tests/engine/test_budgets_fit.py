""" "Never fits" is told apart from "used up" (#14)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from engine_bundles import policy
from engine_bundles import small_request as req

from policyd import PolicyError

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


def body(action: str) -> str:
    text = BODY.replace("ACTION", action)
    return text if action == "downgrade" else text.replace("tier: economy, ", "")


def test_a_request_that_can_never_fit_is_not_reported_as_used_up(make_engine):
    engine = make_engine(policy(body("block")))
    # no max_tokens: the default output reservation (4,096 tokens; the policy sets no
    # max_output_tokens and nothing comes from LiteLLM's map, #12) at $15/M reserves
    # $0.061 against $0.05, on zero spend. Before: "Tenant daily budget used up" with
    # retry_after until midnight.
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


CAP_BODY = """
tiers:
  premium: {targets: [{model: large}]}
routing: {default: premium, context_window: ignore}
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 0.05}
    reserve: {output_tokens: 1024}
    on_exceed: {action: block, message: Tenant daily budget used up}
  - name: worst
    key: '"all"'
    window: calendar_day
    limit: {usd: 100}
    on_exceed: {action: warn}
"""


def test_a_capped_reservation_fits_and_the_settle_corrects_it(make_engine, redis_or_memory):
    engine = make_engine(policy(CAP_BODY), **redis_or_memory)
    events: list[dict] = []
    engine.on_event(events.append)
    d = engine.decide(req())  # no max_tokens: the worst case would never fit
    assert d.allowed
    capped, worst = d.budgets
    # 1,024 output tokens at $15/M (+ input) instead of the default 4,096
    assert capped.reserved_tokens is not None and capped.reserved_tokens < 1100
    assert capped.reserved_usd is not None and capped.reserved_usd < 0.016
    assert worst.reserved_tokens is not None and worst.reserved_tokens > 4096
    engine.record(d, input_tokens=8, output_tokens=500, cost_usd=0.0075)
    after = engine.decide(req(max_tokens=10)).budgets[0]
    assert after.spent_usd == 0.0075  # corrected to the actual cost, not the reservation
    assert [e for e in events if e["type"] == "budget_overshoot"] == []


def test_an_overshoot_past_the_limit_is_reported(make_engine, redis_or_memory):
    engine = make_engine(policy(CAP_BODY), **redis_or_memory)
    events: list[dict] = []
    engine.on_event(events.append)
    d = engine.decide(req())
    assert d.allowed
    # the call wrote 4,000 tokens: $0.06 against a $0.05 limit, past its $0.0154 reservation
    engine.record(d, input_tokens=8, output_tokens=4000, cost_usd=0.06)
    [event] = [e for e in events if e["type"] == "budget_overshoot"]
    assert event["budget"] == "tenant-daily" and event["policy"] == "p"
    assert (event["spent_usd"], event["limit_usd"], event["actual_usd"]) == (0.06, 0.05, 0.06)
    assert "acme" not in str(event)
    state = engine.decide(req(max_tokens=10)).budgets[0]
    assert state.spent_usd == 0.06 and state.remaining_usd == 0  # visible, not hidden
    assert state.state == "blocked"


RATE_BODY = """
tiers:
  t: {targets: [{model: small}]}
routing: {default: t}
budgets:
  - name: burst
    key: request.user.id
    window: {rolling: WINDOW}
    limit: {requests: 10}
"""


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("500ms", "a rolling window must last at least 1s, not 500ms"),
        ("999ms", "a rolling window must last at least 1s, not 999ms"),
        ("1500ms", "a rolling window must be a whole number of seconds, not 1500ms"),
    ],
)
def test_rolling_windows_below_a_second_or_fractional_are_check_errors(
    make_engine, window, message
):
    # before: rounded silently (500ms counted per second, 1500ms per 2 s)
    text = policy(RATE_BODY.replace("WINDOW", window))
    with pytest.raises(PolicyError) as caught:
        make_engine(text)
    [diag] = [d for d in caught.value.diagnostics if d.is_error]
    assert (diag.code, diag.message) == ("PD104", message)
    line = text.splitlines().index(f"    window: {{rolling: {window}}}") + 1
    assert diag.file.endswith("policy.yaml") and (diag.line, diag.column) == (line, 23)


def test_rates_and_bursts_are_two_rolling_limits(make_engine, clock):
    body = """
    tiers:
      t: {targets: [{model: small}]}
    routing: {default: t}
    budgets:
      - name: per-minute
        key: request.user.id
        window: {rolling: 1m}
        limit: {requests: 100}
      - name: burst
        key: request.user.id
        window: {rolling: 1s}
        limit: {requests: 10}
    """
    engine = make_engine(policy(body))
    allowed = 0
    for _second in range(12):
        for _ in range(12):  # 12 a second: 10 pass, 2 are refused by the burst limit
            d = engine.decide(req(max_tokens=1))
            allowed += d.allowed
            if not d.allowed:
                assert d.blocked_by in ("burst", "per-minute")
        # a rolling window holds spend up to one bucket (1/60) longer than its length
        clock.now += timedelta(seconds=1.1)
    # 10 a second for 10 s reach 100 a minute: the last two seconds admit nothing
    assert allowed == 100


CONCURRENT_BODY = """
tiers:
  t: {targets: [{model: small}]}
routing: {default: t, timeout: 30s}
budgets:
  - name: in-flight
    key: request.tenant.id
    window: calendar_day
    limit: {concurrent: 2, usd: 10}
    on_exceed: {action: block, message: Too many calls at once}
"""


def test_concurrent_limit_counts_calls_from_decide_to_record(make_engine, redis_or_memory):
    engine = make_engine(policy(CONCURRENT_BODY), **redis_or_memory)
    a, b = engine.decide(req(10)), engine.decide(req(10))
    assert a.allowed and b.allowed
    c = engine.decide(req(10))
    assert c.blocked_by == "in-flight" and c.message == "Too many calls at once"
    assert c.retry_after_s is None
    [spend, flight] = c.budgets
    assert (spend.state, flight.state) == ("ok", "blocked")
    assert (flight.spent_requests, flight.limit_requests, flight.window) == (2, 2, "f")
    engine.record(a, input_tokens=5, output_tokens=5, cost_usd=0.001)
    d = engine.decide(req(10))
    assert d.allowed
    assert d.budgets[0].spent_usd == 0.001007  # a's cost + b's live reservation (7 µUSD)
    engine.record(a, input_tokens=5, output_tokens=5, cost_usd=0.001)  # a duplicate
    assert not engine.decide(req(10)).allowed  # b and d are still in flight
    engine.close()


def test_check_warns_when_the_default_request_can_never_fit(make_engine, tmp_path):
    from policyd.bundle import load_bundle

    make_engine(policy(body("block"))).close()  # large: 4,096 x $15/M > $0.05
    [warning] = [d for d in load_bundle(tmp_path).diagnostics if d.code == "PD505"]
    assert warning.severity == "warning" and "'tenant-daily'" in warning.message
    assert "4096 output tokens" in warning.message  # the default: the policy sets no limit
    capped = body("block").replace(
        "    limit: {usd: 0.05}", "    limit: {usd: 0.05}\n    reserve: {output_tokens: 1024}"
    )
    make_engine(policy(capped)).close()
    assert [d for d in load_bundle(tmp_path).diagnostics if d.code == "PD505"] == []
