"""Reservations a Redis fault leaves in doubt are visible and as harmless as possible (#11).

* A reserve that timed out on the client but still ran on Redis, for a decision
  that ``on_store_error: block`` then blocked, is released (journaled until
  Redis answers), so it cannot hold a 1-request budget until its ttl.
* A reservation lost by a Redis restart without persistence before its settle is
  counted at settle time and reported (an event, a log line), not lost silently.
"""

from __future__ import annotations

import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from budget_helpers import NOW, ThrowawayRedis
from redis_helpers import PATIENT

from policyd import Engine
from policyd.budgets import Amount, Limit, Line, Window
from policyd.stores import open_store
from policyd.stores.redis import RedisStore

DAY = Window("calendar_day")
CATALOG = """
apiVersion: policyd/v1
kind: ModelCatalog
metadata: {name: models}
models:
  small: {litellm: openai/gpt-4o-mini, context_window: 100000,
          price: {input_per_mtok: 0.15, output_per_mtok: 0.60}}
"""
POLICY = """
apiVersion: policyd/v1
kind: Policy
metadata: {name: p, version: "1"}
context:
  tenant: {id: string}
tiers:
  t: {targets: [{model: small}]}
routing: {default: t, timeout: 30s}
budgets:
  - name: one-a-day
    key: request.tenant.id
    window: calendar_day
    limit: {requests: 1}
    on_exceed: {action: block}
    on_store_error: block
"""
REQ = {"tenant": {"id": "acme"}, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}


def engine_on(url: str, path: Path) -> Engine:
    (path / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (path / "policy.yaml").write_text(textwrap.dedent(POLICY))
    return Engine.from_path(
        path,
        clock=lambda: NOW,
        store=url,
        connect_timeout_s=0.2,
        command_timeout_s=0.2,
        retry_interval_s=0.05,
    )


def wait_for(predicate, what: str) -> None:
    """Poll an observable condition (the server catching up after SIGCONT)."""
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_a_blocked_reserve_that_ran_anyway_is_released(
    server: ThrowawayRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_on(server.url, tmp_path)
    events: list[dict] = []
    engine.on_event(events.append)
    store = engine._runtime.store
    assert isinstance(store, RedisStore)
    assert engine.decide({**REQ, "tenant": {"id": "warm-up"}}).allowed  # script loaded
    server.pause()
    d = engine.decide(REQ)  # the reserve is sent, its reply never comes in time
    assert d.blocked_by == "one-a-day" and d.retry_after_s == 1.0
    [event] = [e for e in events if e["type"] == "budget_reservation_unknown"]
    assert event["budgets"] == ["p/one-a-day"] and event["action"] == "released"
    assert "acme" not in str(event) and "acme" not in caplog.text  # no request values
    assert "is unknown after a store error" in caplog.text
    assert len(store.journal) == 1  # the release waits for Redis
    server.resume()  # Redis now runs the reservation whose reply was lost

    def reserved() -> bool:
        try:
            return store.usage("p/one-a-day", "acme", DAY, NOW).requests == 1
        except Exception:
            return False

    wait_for(reserved, "the lost reservation to run")
    assert store.flush_journal(NOW) == 0
    # before: blocked "used up" with retry_after until midnight, for the ttl (90 s)
    again = engine.decide(REQ)
    assert again.allowed, again.message
    engine.close()


def test_a_reservation_lost_by_a_restart_is_counted_and_reported(
    server: ThrowawayRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_on(server.url, tmp_path)
    events: list[dict] = []
    engine.on_event(events.append)
    store = engine._runtime.store
    assert isinstance(store, RedisStore)
    d = engine.decide(REQ)
    assert d.allowed
    server.kill()
    server.start()  # an empty Redis on the same port (no persistence)
    engine.record(d, input_tokens=3, output_tokens=4, cost_usd=0.25)
    time.sleep(0.06)  # past retry_interval_s: the first call may have met a dead connection
    assert store.flush_journal(NOW) == 0
    # before: the settle found nothing and the spend was lost without a word
    assert store.usage("p/one-a-day", "acme", DAY, NOW) == Amount(250_000, 7, 1)
    [event] = [e for e in events if e["type"] == "budget_reservation_lost"]
    assert event["decision_id"] == d.id and event["budgets"] == ["p/one-a-day"]
    assert "had lost the reservation" in caplog.text and "acme" not in caplog.text
    assert store.stats()["reservations_lost"] == 1
    assert engine.decide(REQ).blocked_by == "one-a-day"  # the spend limits again
    engine.close()


def test_a_lost_reservation_counts_only_until_deadline_plus_grace(
    redis_url: str, redis_prefix: str
) -> None:
    import redis

    store = open_store(redis_url, key_prefix=redis_prefix, settle_grace_s=45, **PATIENT)
    line = Line("b", "k", DAY, Limit(requests=5), Amount(0, 0, 1))
    early, late = (store.reserve(d, [line], NOW, 30) for d in ("d1", "d2"))
    client = redis.Redis.from_url(redis_url)

    def flush() -> None:  # what a restart without persistence does to these keys
        for key in client.scan_iter(match=redis_prefix + "*"):
            client.delete(key)

    flush()
    assert store.settle(early, Amount(1, 1, 1), NOW + timedelta(seconds=75))  # 30 + 45
    assert store.usage("b", "k", DAY, NOW) == Amount(1, 1, 1)
    flush()
    # past deadline + grace a settle is too late, lost or not (as for any late settle)
    assert not store.settle(late, Amount(1, 1, 1), NOW + timedelta(seconds=76))
    assert store.usage("b", "k", DAY, NOW) == Amount()
    assert store.stats()["reservations_lost"] == 1
    client.close()
    store.close()
