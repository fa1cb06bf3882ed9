"""Redis Cluster: one script call per hash slot, and a refusal anywhere undoes the rest.

A one-node cluster (every slot on one ``redis-server --cluster-enabled yes``)
enforces the same rule as a big one: a script may only touch keys of one slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from budget_helpers import NOW, ThrowawayRedis

from policyd.budgets import Amount, Limit, Line, Window
from policyd.stores import StoreError, StoreUnavailable, open_store
from policyd.stores.redis import RedisStore
from policyd.stores.redis_codec import counter_keys

DAY = Window("calendar_day")
MINUTE = Window("rolling", rolling_s=60)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory, redis_server_path: str) -> Iterator[str]:
    server = ThrowawayRedis(redis_server_path, cluster_dir=str(tmp_path_factory.mktemp("cluster")))
    server.start()
    yield server.url
    server.kill()


@pytest.fixture
def cluster_store(cluster_url: str) -> Iterator[RedisStore]:
    store = open_store(cluster_url, key_prefix=f"t{uuid.uuid4().hex[:8]}:")
    assert isinstance(store, RedisStore) and store.cluster
    yield store
    store.close()


def test_counters_of_one_budget_key_share_a_slot() -> None:
    from redis.crc import key_slot

    keys = counter_keys("policyd:", "user-daily", "u:{42}", DAY, "d20261124")
    assert len({key_slot(k.encode()) for k in keys}) == 1
    other = counter_keys("policyd:", "tenant-monthly", "acme", DAY, "d20261124")
    assert key_slot(other[0].encode()) != key_slot(keys[0].encode())


def test_reserve_settle_usage_across_slots(cluster_store: RedisStore) -> None:
    tight = Line("tight", "a", DAY, Limit(usd_micros=1_000), Amount(600, 0, 1), True, (0.5,))
    loose = Line("loose", "b", MINUTE, Limit(requests=100), Amount(600, 0, 1), True, (0.01,))
    first = cluster_store.reserve("d1", [tight, loose], NOW, 60)
    assert first.ok and first.lines[0].alerts_fired == (0.5,)
    assert cluster_store.settle(first, Amount(500, 3, 1), NOW)
    assert not cluster_store.settle(first, Amount(500, 3, 1), NOW)
    refused = cluster_store.reserve("d2", [loose, tight], NOW, 60)
    assert not refused.ok and [ln.fits for ln in refused.lines] == [True, False]
    # the slot that had room was undone, and reports no alert for a refused decision
    assert refused.lines[0].alerts_fired == ()
    assert cluster_store.usage("loose", "b", MINUTE, NOW) == Amount(500, 3, 1)
    assert cluster_store.usage("tight", "a", DAY, NOW) == Amount(500, 3, 1)
    # the undone alert fires for the next reservation that really crosses it
    third = cluster_store.reserve("d3", [loose], NOW, 60)
    assert third.ok and third.lines[0].alerts_fired == ()
    assert cluster_store.usage("loose", "b", MINUTE, NOW) == Amount(1_100, 3, 2)


async def test_async_cluster(cluster_store: RedisStore) -> None:
    a = Line("x", "1", DAY, Limit(usd_micros=1_000), Amount(400, 0, 1), True)
    b = Line("y", "2", DAY, Limit(usd_micros=500), Amount(400, 0, 1), True)
    first = await cluster_store.areserve("d1", [a, b], NOW, 60)
    assert first.ok
    assert not (await cluster_store.areserve("d2", [a, b], NOW, 60)).ok
    assert await cluster_store.ausage("x", "1", DAY, NOW) == Amount(400, 0, 1)
    assert await cluster_store.asettle(first, Amount(1, 0, 1), NOW)
    assert await cluster_store.ausage("y", "2", DAY, NOW) == Amount(1, 0, 1)
    await cluster_store.aclose()


async def test_an_unreachable_cluster_is_a_store_error_not_an_exception() -> None:
    # RedisClusterException is not a RedisError: it escaped reserve() and decide() before
    store = open_store("redis+cluster://127.0.0.1:1", connect_timeout_s=0.2, retry_interval_s=0)
    assert isinstance(store, RedisStore)
    line = Line("daily", "acme", DAY, Limit(usd_micros=1_000), Amount(10, 0, 1), True)
    result = store.reserve("d1", [line], NOW, 60)
    assert (
        not result.ok
        and result.store_error
        and "RedisClusterUnreachableError" in result.store_error
    )
    assert store.settle(result, Amount(5, 0, 1), NOW)  # journaled for when it answers
    assert len(store.journal) == 1
    later = await store.areserve("d2", [line], NOW, 60)
    assert not later.ok and later.store_error is not None
    with pytest.raises(StoreUnavailable):
        store.usage("daily", "acme", DAY, NOW)
    assert store.stats()["failures"] >= 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # redis-py's cluster client dropped these without a word (a misspelt TLS option too)
        ("redis+cluster://127.0.0.1:7000?bogus=1", r"unknown URL parameter 'bogus'"),
        (
            "rediss+cluster://u:s3cret@h:7000?ssl_cert_reqz=none",
            r"u:\*\*\*@h:7000.*'ssl_cert_reqz'",
        ),
        (
            "redis+cluster://127.0.0.1:7000?REPLY_POLL_US=3",
            r"written in lower case \(reply_poll_us\)",
        ),
        # refused by redis-py only at the first call, as a failure of every call
        ("redis+cluster://127.0.0.1:7000/2", r"a Redis Cluster has only database 0"),
    ],
)
def test_a_cluster_url_is_checked_when_the_store_opens(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as err:
        open_store(url)
    assert "s3cret" not in str(err.value)


def test_a_cluster_url_with_connection_parameters_opens() -> None:
    store = open_store("redis+cluster://127.0.0.1:7000/0?socket_keepalive=true&pool_size=3")
    assert isinstance(store, RedisStore) and store.pool_size == 3
    store.close()
