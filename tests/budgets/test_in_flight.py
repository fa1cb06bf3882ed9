"""limit: {concurrent: N}: calls in flight per key, from decide() to record() (#14)."""

from __future__ import annotations

import multiprocessing
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from budget_helpers import NOW, ThrowawayRedis, in_flight_worker

from policyd.budgets import Amount, Limit, Line, Window
from policyd.stores import Store, open_store

IN_FLIGHT = Window("in_flight")
TTL_S = 30


def line(n: int = 2) -> Line:
    return Line("p/b#in_flight", "acme", IN_FLIGHT, Limit(requests=n), Amount(0, 0, 1))


def spend_line() -> Line:
    return Line("p/b", "acme", Window("calendar_day"), Limit(usd_micros=10**9), Amount(50, 5, 1))


def check_in_flight(store: Store) -> None:
    a = store.reserve("a", [spend_line(), line()], NOW, TTL_S)
    b = store.reserve("b", [spend_line(), line()], NOW, TTL_S)
    assert a.ok and b.ok
    c = store.reserve("c", [spend_line(), line()], NOW, TTL_S)
    assert not c.ok and c.lines[1].retry_after_s is None  # a call ends when it ends
    assert store.usage("p/b", "acme", Window("calendar_day"), NOW) == Amount(100, 10, 2)
    # a settle records spend on the budget and only releases the in-flight slot
    assert store.settle(a, Amount(40, 4, 1), NOW)
    assert store.usage("p/b#in_flight", "acme", IN_FLIGHT, NOW) == Amount(0, 0, 1)
    assert store.usage("p/b", "acme", Window("calendar_day"), NOW) == Amount(90, 9, 2)
    assert store.reserve("c", [spend_line(), line()], NOW, TTL_S).ok
    assert not store.reserve("d", [spend_line(), line()], NOW, TTL_S).ok
    # an unsettled reservation stops counting at its expiry
    later = NOW + timedelta(seconds=TTL_S)
    assert store.usage("p/b#in_flight", "acme", IN_FLIGHT, later) == Amount()
    assert store.reserve("e", [spend_line(), line()], later, TTL_S).ok
    assert not store.settle(a, Amount(40, 4, 1), later)  # once only


def test_in_flight_limit_on_each_store(store: Store) -> None:
    check_in_flight(store)


@pytest.fixture
def cluster_url(tmp_path: Path, redis_server_path: str) -> Iterator[str]:
    server = ThrowawayRedis(redis_server_path, cluster_dir=str(tmp_path))
    server.start()
    yield server.url
    server.kill()


def test_in_flight_limit_on_redis_cluster(cluster_url: str) -> None:
    store = open_store(cluster_url, key_prefix=f"t{uuid.uuid4().hex[:8]}:")
    check_in_flight(store)
    store.close()


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
  - name: in-flight
    key: request.tenant.id
    window: calendar_day
    limit: {concurrent: 3}
"""
CATALOG = """
apiVersion: policyd/v1
kind: ModelCatalog
metadata: {name: models}
models:
  small: {litellm: openai/gpt-4o-mini, context_window: 100000,
          price: {input_per_mtok: 0.15, output_per_mtok: 0.60}}
"""


def test_at_most_n_calls_in_flight_across_8_processes(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    (tmp_path / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(POLICY))
    gauge = redis_prefix + "gauge"
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        results = pool.starmap(
            in_flight_worker,
            [(str(tmp_path), redis_url, redis_prefix, gauge, 30) for _ in range(8)],
        )
    admitted = sum(r[0] for r in results)
    highest = max(r[2] for r in results)
    assert highest == 3  # never more than the limit in flight, and the limit reached
    assert admitted + sum(r[1] for r in results) == 240 and admitted >= 3
