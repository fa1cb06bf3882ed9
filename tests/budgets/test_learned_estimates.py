"""Learned output estimates (``reserve: {estimate: pNN}``): the histogram's quantile is
exact to one bucket, what one instance records another reads through the store (memory
and real Redis), storage is bounded, and a store failure loses no counts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from budget_helpers import NOW, ThrowawayRedis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_helpers import PATIENT

from policyd.budgets.histogram import BUCKETS, bucket_of, parse_quantile, quantile, upper
from policyd.budgets.learned import LearnedOutputs, open_outputs
from policyd.fields import MAX_COUNT, MAX_TOKENS
from policyd.stores import Store, open_store

# --------------------------------------------------------------------------- the histogram

outputs = st.lists(
    st.one_of(
        st.integers(0, 300),
        st.integers(0, 20_000),
        st.integers(0, MAX_TOKENS),
    ),
    min_size=1,
    max_size=300,
)
percentiles = st.builds(
    lambda whole, part: f"p{whole}" if part is None else f"p{whole}.{part:02d}",
    st.integers(1, 99),
    st.one_of(st.none(), st.integers(0, 99)),
)


def histogram(values: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for v in values:
        counts[bucket_of(v)] = counts.get(bucket_of(v), 0) + 1
    return counts


@settings(max_examples=300, deadline=None)
@given(outputs, percentiles)
def test_an_estimate_is_the_true_quantile_to_one_bucket(values: list[int], text: str) -> None:
    q = parse_quantile(text)
    true = sorted(values)[q.rank(len(values)) - 1]  # nearest rank
    estimate = quantile(histogram(values), q)
    assert estimate is not None
    assert bucket_of(estimate) == bucket_of(true)  # the same bucket...
    assert true <= estimate  # ...never below: a reservation does not under-count
    assert estimate <= max(true, round(true * 2**0.25) + 1)  # at most 19 % above


@settings(max_examples=200, deadline=None)
@given(outputs, percentiles, percentiles)
def test_an_estimate_is_monotone_in_the_quantile(values: list[int], a: str, b: str) -> None:
    qa, qb = sorted([parse_quantile(a), parse_quantile(b)], key=lambda q: q.fraction)
    counts = histogram(values)
    low, high = quantile(counts, qa), quantile(counts, qb)
    assert low is not None and high is not None and low <= high


@given(st.integers(0, MAX_COUNT))
def test_every_count_has_a_bucket_of_a_bounded_layout(tokens: int) -> None:
    bucket = bucket_of(tokens)
    assert 0 <= bucket < BUCKETS <= 130
    assert tokens <= upper(bucket)


def test_small_counts_are_exact_and_an_empty_histogram_has_no_estimate() -> None:
    assert [upper(bucket_of(n)) for n in range(0, 8)] == list(range(0, 8))
    assert quantile({}, parse_quantile("p95")) is None


@pytest.mark.parametrize("text", ["p0", "p100", "p95.123", "95", "P95", "p-5", "median", ""])
def test_unknown_quantiles_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantile(text)


# --------------------------------------------------------------------------- the store


def learned(store: Store) -> LearnedOutputs:
    return LearnedOutputs(open_outputs(store), refresh_s=0)


def test_what_one_instance_records_another_reads(store: Store) -> None:
    p95 = parse_quantile("p95")
    writer, reader = learned(store), learned(store)
    for n in range(1, 201):
        writer.observe("pol", "m", n)
    writer.sync(NOW)
    assert writer.estimate("pol", "m", p95, 100).tokens == upper(bucket_of(190))
    assert reader.estimate("pol", "m", p95, 100).tokens is None  # asked, not yet fetched
    reader.sync(NOW)
    found = reader.estimate("pol", "m", p95, 100)
    assert (found.tokens, found.samples) == (upper(bucket_of(190)), 200)
    assert reader.estimate("pol", "m", p95, 201).tokens is None  # below min_samples
    assert reader.estimate("pol", "other", p95, 1).tokens is None  # per model
    assert reader.estimate("other", "m", p95, 1).tokens is None  # per policy


def test_counts_older_than_two_epochs_are_forgotten(store: Store) -> None:
    p50 = parse_quantile("p50")
    outputs = learned(store)
    for _ in range(10):
        outputs.observe("pol", "m", 1000)
    outputs.sync(NOW)
    outputs.sync(NOW + timedelta(hours=6))  # the next epoch still sees the previous one
    assert outputs.estimate("pol", "m", p50, 10).samples == 10
    outputs.sync(NOW + timedelta(hours=12, minutes=1))
    assert outputs.estimate("pol", "m", p50, 1).samples == 0


def test_async_exchange(store: Store) -> None:
    p50 = parse_quantile("p50")
    outputs = learned(store)

    async def run() -> None:
        for _ in range(3):
            outputs.observe("pol", "m", 42)
        await outputs.async_sync(NOW)
        await store.aclose()

    asyncio.run(run())
    assert outputs.estimate("pol", "m", p50, 3).tokens == upper(bucket_of(42))


def test_redis_keeps_one_bounded_expiring_hash_per_policy_model_epoch(
    redis_url: str, redis_prefix: str
) -> None:
    import redis

    store = open_store(redis_url, key_prefix=redis_prefix, **PATIENT)
    outputs = learned(store)
    for n in range(0, 10**9, 9_999_991):  # 101 counts spread over every magnitude
        outputs.observe("pol", "m", n)
    outputs.sync(NOW)
    client = redis.Redis.from_url(redis_url)
    [key] = list(client.scan_iter(match=redis_prefix + "outputs:*"))
    assert key.decode().startswith(redis_prefix + "outputs:{pol:m}:")
    assert client.hlen(key) <= BUCKETS
    assert sum(int(v) for v in client.hvals(key)) == 101
    assert 0 < client.ttl(key) <= 13 * 3600
    client.close()
    store.close()


def test_a_store_failure_keeps_the_counts_and_the_last_estimate(server: ThrowawayRedis) -> None:
    p50 = parse_quantile("p50")
    store = open_store(server.url, connect_timeout_s=0.5, command_timeout_s=0.5)
    outputs = learned(store)
    for _ in range(5):
        outputs.observe("pol", "m", 100)
    outputs.sync(NOW)
    before = upper(bucket_of(100))
    assert outputs.estimate("pol", "m", p50, 5).tokens == before
    server.kill()
    for _ in range(5):
        outputs.observe("pol", "m", 5000)
    outputs.sync(NOW)  # fails: never raises
    assert outputs.failures == 1 and outputs.stats()["pending"] == 5
    assert outputs.estimate("pol", "m", p50, 5).tokens == before  # the last snapshot stands
    server.start()  # a new, empty server: the pending counts reach it
    outputs.sync(NOW)
    assert outputs.stats()["pending"] == 0
    assert outputs.estimate("pol", "m", p50, 5).tokens == upper(bucket_of(5000))
    store.close()


def test_pending_counts_are_bounded_while_the_store_is_down(server: ThrowawayRedis) -> None:
    store = open_store(server.url, connect_timeout_s=0.5, command_timeout_s=0.5)
    outputs = learned(store)  # the server was killed below before any exchange
    server.kill()
    for n in range(100_000):
        outputs.observe("pol", "m", n % 70_000)
    outputs.sync(NOW)
    assert outputs.stats()["pending"] == 100_000
    assert len(outputs._pending[("pol", "m")]) <= BUCKETS  # counts, not values
    store.close()


def test_a_redis_cluster_exchanges_every_key_in_one_pipeline(
    tmp_path: Path, idle_server: ThrowawayRedis
) -> None:
    cluster = ThrowawayRedis(idle_server.executable, cluster_dir=str(tmp_path))
    cluster.start()
    try:
        store = open_store(cluster.url, key_prefix="learned:")
        p50 = parse_quantile("p50")
        writer, reader = learned(store), learned(store)
        for model in ("a", "b", "c"):  # keys in different slots
            for _ in range(3):
                writer.observe("pol", model, 10)
        writer.sync(NOW)
        reader.estimate("pol", "a", p50, 1)
        reader.estimate("pol", "c", p50, 1)
        reader.sync(NOW)
        assert reader.estimate("pol", "a", p50, 3).tokens == 10
        assert reader.estimate("pol", "c", p50, 3).samples == 3
        store.close()
    finally:
        cluster.kill()
