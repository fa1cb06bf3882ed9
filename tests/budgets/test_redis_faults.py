"""Redis going away: fast failure, the local journal, replay, nothing double-counted.

A private ``redis-server`` is started on a free loopback port for each test, and
paused (SIGSTOP: commands time out) or killed (connections refused) mid-run.
The ``allow``/``block`` choice is the budgets stage's; ``decide`` below does
what the stage does with a store error, so both paths are exercised end to end.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from budget_helpers import NOW, ThrowawayRedis

from policyd.budgets import Amount, Limit, Line, ReserveResult, Window
from policyd.stores import StoreUnavailable, open_store
from policyd.stores.redis import RedisStore

DAY = Window("calendar_day")
TTL_S = 30


@pytest.fixture
def server(idle_server: ThrowawayRedis) -> ThrowawayRedis:
    return idle_server  # these tests start (and stop) it themselves


def fast_store(url: str, **options: object) -> RedisStore:
    # 1 s: short enough that a paused server times out quickly, long enough that a healthy
    # one answers in time on a loaded machine (0.2 s did not always).
    store = open_store(
        url,
        connect_timeout_s=1.0,
        command_timeout_s=1.0,
        retry_interval_s=0.05,
        **options,  # type: ignore[arg-type]
    )
    assert isinstance(store, RedisStore)
    return store


def line(amount: int = 1_000) -> Line:
    return Line("daily", "acme", DAY, Limit(usd_micros=1_000_000), Amount(amount, 0, 1), True)


def decide(store: RedisStore, did: str, on_store_error: str) -> ReserveResult | None:
    """What the budgets stage does: None when the decision is blocked."""
    result = store.reserve(did, [line()], NOW, TTL_S)
    if result.store_error is not None:
        return result if on_store_error == "allow" else None
    return result if result.ok else None


def wait_until_retry(store: RedisStore) -> None:
    time.sleep(0.06)  # past retry_interval_s: the next call tries Redis again


def test_unreachable_redis_fails_fast_then_replays(server: ThrowawayRedis) -> None:
    store = fast_store(server.url)  # nothing listens on that port yet
    started = time.monotonic()
    result = store.reserve("d1", [line()], NOW, TTL_S)
    assert time.monotonic() - started < 5.0  # refused at once, not a hang
    assert not result.ok and result.store_error and "unavailable" in result.store_error
    assert [(ln.fits, ln.spent_before, ln.window_id) for ln in result.lines] == [
        (True, Amount(), "d20261124")
    ]
    # within retry_interval_s the store does not even try: nothing can hang
    assert store.reserve("d2", [line()], NOW, TTL_S).store_error
    with pytest.raises(StoreUnavailable, match="unavailable"):
        store.usage("daily", "acme", DAY, NOW)
    assert store.settle(result, Amount(700, 5, 1), NOW)  # journaled
    assert store.settle(result, Amount(700, 5, 1), NOW)  # a second record: journaled too
    assert len(store.journal) == 2 and store.stats()["available"] is False

    server.start()
    wait_until_retry(store)
    assert store.reserve("d3", [line()], NOW, TTL_S).ok  # success replays the journal
    assert len(store.journal) == 0 and store.journal.replayed == 2
    assert store.usage("daily", "acme", DAY, NOW) == Amount(700 + 1_000, 5, 2)
    assert not store.settle(result, Amount(700, 5, 1), NOW)  # still counted once
    store.close()


def test_paused_redis_times_out_and_nothing_double_counts(server: ThrowawayRedis) -> None:
    server.start()
    store = fast_store(server.url)
    before = store.reserve("d1", [line()], NOW, TTL_S)
    assert before.ok
    server.pause()
    started = time.monotonic()
    lost_reply = store.reserve("d2", [line()], NOW, TTL_S)
    assert time.monotonic() - started < 5.0  # the 1 s command timeout, not a hang
    assert lost_reply.store_error and "Timeout" in lost_reply.store_error
    assert store.settle(before, Amount(300, 0, 1), NOW)  # journaled
    assert store.settle(lost_reply, Amount(400, 0, 1), NOW)  # journaled
    assert store.settle(before, Amount(300, 0, 1), NOW)  # duplicate, journaled
    server.resume()  # Redis now also runs the d2 reservation whose reply was lost
    wait_until_retry(store)
    assert store.flush_journal(NOW) == 0
    assert store.usage("daily", "acme", DAY, NOW) == Amount(700, 0, 2)
    later = NOW + timedelta(seconds=TTL_S + 1)
    assert store.usage("daily", "acme", DAY, later) == Amount(700, 0, 2)
    store.close()


@pytest.mark.parametrize("on_store_error", ["allow", "block"])
def test_redis_paused_mid_run(server: ThrowawayRedis, on_store_error: str) -> None:
    server.start()
    store = fast_store(server.url)
    spent = 0
    outcomes = {"ok": 0, "allowed": 0, "blocked": 0}
    for i in range(120):
        if i == 40:
            server.pause()
        if i == 80:
            server.resume()
            wait_until_retry(store)
        result = decide(store, f"d{i}", on_store_error)
        if result is None:
            outcomes["blocked"] += 1
            continue
        outcomes["ok" if result.store_error is None else "allowed"] += 1
        cost = 100 + i
        assert store.settle(result, Amount(cost, 0, 1), NOW)
        spent += cost
    assert store.flush_journal(NOW) == 0
    assert outcomes["ok"] == 80
    assert outcomes["allowed" if on_store_error == "allow" else "blocked"] == 40
    # reservations whose replies were lost have expired; settled spend is exact
    later = NOW + timedelta(seconds=TTL_S + 1)
    assert store.usage("daily", "acme", DAY, later) == Amount(spent, 0, 80 + outcomes["allowed"])
    store.close()


def test_journal_is_bounded(server: ThrowawayRedis, caplog: pytest.LogCaptureFixture) -> None:
    store = fast_store(server.url, journal_max=3)
    results = [store.reserve(f"d{i}", [line()], NOW, TTL_S) for i in range(5)]
    kept = [store.settle(r, Amount(10 * (i + 1), 0, 1), NOW) for i, r in enumerate(results)]
    assert kept == [True, True, True, False, False]
    assert store.stats()["journal_dropped"] == 2
    assert "journal full" in caplog.text
    server.start()
    wait_until_retry(store)
    assert store.flush_journal(NOW) == 0
    assert store.usage("daily", "acme", DAY, NOW) == Amount(10 + 20 + 30, 0, 3)
    store.close()


def test_redis_killed_and_restarted(server: ThrowawayRedis) -> None:
    server.start()
    store = fast_store(server.url)
    assert store.reserve("d1", [line()], NOW, TTL_S).ok
    server.kill()
    result = store.reserve("d2", [line()], NOW, TTL_S)
    assert result.store_error and "Connection" in result.store_error
    assert store.settle(result, Amount(55, 0, 1), NOW)
    server.start()  # an empty Redis on the same port: only the journal survives
    wait_until_retry(store)
    assert store.flush_journal(NOW) == 0
    assert store.usage("daily", "acme", DAY, NOW) == Amount(55, 0, 1)
    store.close()


def test_script_cache_flush_is_handled(server: ThrowawayRedis) -> None:
    import redis

    server.start()
    store = fast_store(server.url)
    assert store.reserve("d1", [line()], NOW, TTL_S).ok
    redis.Redis.from_url(server.url).script_flush()
    assert store.reserve("d2", [line()], NOW, TTL_S).ok  # NOSCRIPT -> load -> retry
    assert store.usage("daily", "acme", DAY, NOW) == Amount(2_000, 0, 2)
    store.close()


async def test_async_path_fails_fast_and_replays(server: ThrowawayRedis) -> None:
    store = fast_store(server.url)
    result = await store.areserve("d1", [line()], NOW, TTL_S)
    assert result.store_error
    assert await store.asettle(result, Amount(9, 0, 1), NOW)
    with pytest.raises(StoreUnavailable):
        await store.ausage("daily", "acme", DAY, NOW)
    server.start()
    wait_until_retry(store)
    assert (await store.areserve("d2", [line()], NOW, TTL_S)).ok  # replays via asyncio
    assert len(store.journal) == 0
    assert await store.ausage("daily", "acme", DAY, NOW) == Amount(1_009, 0, 2)
    await store.aclose()
    store.close()
