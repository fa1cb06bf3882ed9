"""record() with figures no store can count: refused by name, reservation settled (#11)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from engine_bundles import policy

from policyd.budgets import Window
from policyd.errors import OutcomeError, PolicydError

BODY = """
tiers:
  t: {targets: [{model: small}]}
routing: {default: t, timeout: 10s, context_window: ignore}
budgets:
  - name: daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 100, tokens: 1000000, requests: 50}
    on_exceed: {action: block}
"""
DAY = Window("calendar_day")
# worst case of req(): 7 input tokens * $0.15/M + 100 output tokens * $0.60/M, rounded up
RESERVED = (62, 107, 1)

BAD = [
    ({"cost_usd": -0.5}, "cost_usd"),
    ({"cost_usd": float("nan")}, "cost_usd"),
    ({"cost_usd": float("inf")}, "cost_usd"),
    ({"cost_usd": -float("inf")}, "cost_usd"),
    ({"cost_usd": 1e13}, "cost_usd"),
    ({"cost_usd": "0.5"}, "cost_usd"),
    ({"cost_usd": True}, "cost_usd"),
    ({"input_tokens": 10**19}, "input_tokens"),
    ({"input_tokens": -5, "cost_usd": 0.001}, "input_tokens"),
    ({"output_tokens": -1}, "output_tokens"),
    ({"output_tokens": 3.5}, "output_tokens"),
    ({"output_tokens": 2**53}, "output_tokens"),
]


def req() -> dict:
    return {
        "tenant": {"id": "acme", "tier": "pro"},
        "user": {"id": "u1"},
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello there"}],
    }


@pytest.fixture(params=["memory", "redis"])
def engine(request, make_engine):
    if request.param == "memory":
        engine = make_engine(policy(BODY))
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        engine = make_engine(policy(BODY), store=url, key_prefix=prefix)
    yield engine
    engine.close()


def spent(engine, clock) -> tuple[int, int, int]:
    return engine._runtime.store.usage("p/daily", "acme", DAY, clock.now).as_tuple()


@pytest.mark.parametrize(("figures", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_figures_are_refused_by_name_and_the_reservation_settles(engine, clock, figures, field):
    d = engine.decide(req())
    assert d.allowed and spent(engine, clock) == RESERVED
    with pytest.raises(OutcomeError) as caught:
        engine.record(d, **figures)
    assert isinstance(caught.value, PolicydError) and isinstance(caught.value, ValueError)
    assert caught.value.field == field and str(caught.value).startswith(f"record(): {field} ")
    # settled at the reservation (the figures count as not reported): a later, valid
    # record is a duplicate, and the spend stays after the reservation's ttl is over
    engine.record(d, input_tokens=1, output_tokens=1, cost_usd=0.000001)
    clock.now += timedelta(hours=1)
    assert spent(engine, clock) == RESERVED


def test_bad_figures_with_an_error_count_the_failed_request_only(engine, clock):
    d = engine.decide(req())
    with pytest.raises(OutcomeError, match="cost_usd"):
        engine.record(d, cost_usd=-1.0, error="upstream 500")
    clock.now += timedelta(hours=1)
    assert spent(engine, clock) == (0, 0, 1)


def test_arecord_refuses_and_settles_the_same_way(engine, clock):
    async def run() -> None:
        d = await engine.adecide(req())
        with pytest.raises(OutcomeError, match="input_tokens"):
            await engine.arecord(d, input_tokens=10**19, output_tokens=5)

    asyncio.run(run())
    clock.now += timedelta(hours=1)
    assert spent(engine, clock) == RESERVED


def test_the_largest_valid_figures_saturate_instead_of_wrapping(engine, clock):
    # 2**53 - 1 tokens each way: the sum is past what a counter holds, so it saturates
    # (Redis used to wrap such a counter to -2**63 and allow everything after it)
    d = engine.decide(req())
    engine.record(d, input_tokens=2**53 - 1, output_tokens=2**53 - 1, cost_usd=9_000_000_000)
    usd, tokens, requests = spent(engine, clock)
    assert (usd, tokens, requests) == (9_000_000_000_000_000, 2**53 - 1, 1)
    later = engine.decide(req())
    assert later.blocked_by == "daily"


def test_a_huge_request_saturates_its_reservation(engine, clock):
    # The largest figures a request may carry (more is refused as a RequestError before
    # any stage runs): the reservation never wraps, and it never fits.
    big = {**req(), "max_tokens": 10**9, "input_tokens": 10**9}
    d = engine.decide(big)
    assert d.blocked_by == "daily"  # reserves the most a counter holds: never fits
    assert spent(engine, clock) == (0, 0, 0)


TTL_BODY = """
tiers:
  t: {targets: [{model: small}]}
  big: {targets: [{model: large}]}
  bigger: {targets: [{model: huge}]}
  f: {targets: [{model: medium}], fallback: [big, bigger]}
routing:
  default: t
  timeout: 30s
  retry: {attempts: 3}
  rules:
    - {name: chain, when: 'request.feature == "chain"', tier: f}
budgets:
  - name: daily
    key: request.tenant.id
    window: calendar_day
    limit: {requests: 10}
    on_exceed: {action: block}
"""


def live_requests(engine, clock) -> int:
    return spent(engine, clock)[2]


@pytest.mark.parametrize(
    ("routing", "feature", "ttl_s"),
    [
        # 3 tries of 30 s, backoff 0.5 s + 1 s before the retries, a 60 s margin
        ("retry: {attempts: 3}", "plain", 151.5),
        # no retry policy, but a chain of 3 models: each may take the timeout
        ("", "chain", 150.0),
        # one try, no fallbacks: the timeout and the margin
        ("", "plain", 90.0),
    ],
)
def test_an_unsettled_reservation_outlives_every_try(make_engine, clock, routing, feature, ttl_s):
    body = TTL_BODY.replace("  retry: {attempts: 3}\n", f"  {routing}\n" if routing else "")
    engine = make_engine(policy(body))
    start = clock.now
    d = engine.decide({**req(), "feature": feature})
    assert d.allowed
    # before: the reservation vanished at timeout + 60 s although retries may still run
    clock.now = start + timedelta(seconds=ttl_s - 0.5)
    assert live_requests(engine, clock) == 1
    clock.now = start + timedelta(seconds=ttl_s)
    assert live_requests(engine, clock) == 0
    engine.close()
