"""The Redis store's script calls on held connections (``policyd.stores.redis_lane``).

Script calls skip redis-py's pool checkout and command path; these tests pin what that
checkout guarded: a reply never read by the wrong call, a flushed script cache, the pool
shared with plain commands within ``pool_size`` connections, and forked children.
"""

from __future__ import annotations

import os
import threading

import pytest
import redis
from budget_helpers import NOW, ThrowawayRedis
from test_redis_faults import DAY, TTL_S, fast_store, line

from policyd.budgets import Amount, Window
from policyd.stores import open_store
from policyd.stores.redis import RedisStore


def test_a_reply_that_came_too_late_is_never_read_by_the_next_call(
    server: ThrowawayRedis,
) -> None:
    store = fast_store(server.url, pool_size=1)  # one connection: the next call reuses it
    assert store.reserve("d1", [line(1_000)], NOW, TTL_S).ok
    server.pause()
    late = store.reserve("d2", [line(2_000)], NOW, TTL_S)
    assert late.store_error and "Timeout" in late.store_error
    server.resume()  # Redis now runs d2's reserve and answers a connection that is gone
    store._down_until = 0.0  # skip the retry interval instead of sleeping through it
    # the next calls read their own replies: a usage reply, then a reserve reply
    assert store.usage("daily", "acme", DAY, NOW) == Amount(3_000, 0, 2)
    third = store.reserve("d3", [line(4_000)], NOW, TTL_S)
    assert third.ok and third.lines[0].spent_before == Amount(3_000, 0, 2)
    store.close()


def kill_other_clients(url: str) -> None:
    """Close every other client's connection from the server side (as a restart or an
    idle ``timeout`` does); the server has closed them when this returns."""
    killer = redis.Redis.from_url(url)
    assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
    killer.close()


def test_a_connection_the_server_closed_is_reconnected_not_failed(
    server: ThrowawayRedis,
) -> None:
    store = fast_store(server.url)
    assert store.reserve("d1", [line()], NOW, TTL_S).ok  # a connection is held, idle
    kill_other_clients(server.url)
    second = store.reserve("d2", [line()], NOW, TTL_S)  # as with the pool's checkout
    assert second.ok and second.store_error is None
    assert store.stats()["failures"] == 0
    assert store.usage("daily", "acme", DAY, NOW) == Amount(2_000, 0, 2)
    store.close()


async def test_async_a_connection_the_server_closed_is_replaced(server: ThrowawayRedis) -> None:
    store = fast_store(server.url)
    assert (await store.areserve("d1", [line()], NOW, TTL_S)).ok
    kill_other_clients(server.url)
    # the event loop may not have seen the close yet: this call may fail (redis-py's
    # asyncio pool did the same), and the next one must not
    await store.areserve("d2", [line()], NOW, TTL_S)
    store._down_until = 0.0
    third = await store.areserve("d3", [line()], NOW, TTL_S)
    assert third.ok and third.store_error is None
    await store.aclose()
    store.close()


def test_a_dead_server_costs_one_connect_attempt(server: ThrowawayRedis) -> None:
    store = fast_store(server.url)
    assert store.reserve("d1", [line()], NOW, TTL_S).ok
    server.kill()  # the held connection is closed and nothing listens on the port
    failed = store.reserve("d2", [line()], NOW, TTL_S)
    assert failed.store_error and "Connection" in failed.store_error
    assert store.stats()["failures"] == 1
    store.close()


def test_a_flushed_script_cache_during_a_replay_batch(server: ThrowawayRedis) -> None:
    store = fast_store(server.url)
    reservations = [store.reserve(f"d{i}", [line()], NOW, TTL_S) for i in range(3)]
    server.pause()
    for reservation in reservations:  # Redis does not answer: the settles are journaled
        assert store.settle(reservation, Amount(10, 0, 1), NOW)
    assert len(store.journal) == 3
    server.resume()
    redis.Redis.from_url(server.url).script_flush()
    store._down_until = 0.0
    assert store.flush_journal(NOW) == 0  # NOSCRIPT on the pipelined batch: load, repeat
    assert store.usage("daily", "acme", DAY, NOW) == Amount(30, 0, 3)
    store.close()


async def test_a_flushed_script_cache_on_the_async_path(server: ThrowawayRedis) -> None:
    store = fast_store(server.url)
    assert (await store.areserve("d1", [line()], NOW, TTL_S)).ok
    redis.Redis.from_url(server.url).script_flush()
    assert (await store.areserve("d2", [line()], NOW, TTL_S)).ok
    assert await store.ausage("daily", "acme", DAY, NOW) == Amount(2_000, 0, 2)
    await store.aclose()
    store.close()


def test_plain_commands_share_a_pool_of_one_with_script_calls(server: ThrowawayRedis) -> None:
    store = open_store(server.url, pool_size=1, pool_timeout_s=5)
    assert isinstance(store, RedisStore)
    assert store.reserve("d1", [line()], NOW, TTL_S).ok  # the lane holds the connection
    assert store.keys("daily", DAY, NOW) == ["acme"]  # SCAN gets it back from the pool
    assert store.reserve("d2", [line()], NOW, TTL_S).ok
    assert store.stats()["pool_busy"] == 0
    store.close()


@pytest.mark.parametrize("reply_poll_us", [0, 300])
def test_connections_stay_within_pool_size(server: ThrowawayRedis, reply_poll_us: int) -> None:
    store = open_store(
        server.url,
        pool_size=3,
        pool_timeout_s=10,
        command_timeout_s=10,
        reply_poll_us=reply_poll_us,  # polling threads still share the pool, and count
    )
    assert isinstance(store, RedisStore)
    week = Window("calendar_week")

    def work(worker: int) -> None:
        for i in range(40):
            result = store.reserve(f"w{worker}-{i}", [line()], NOW, TTL_S)
            store.settle(result, Amount(1, 0, 1), NOW)
            store.usage("daily", "acme", week, NOW)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    clients = redis.Redis.from_url(server.url).client_list()
    assert len(clients) - 1 <= 3  # less the client asking
    assert store.usage("daily", "acme", DAY, NOW) == Amount(320, 0, 320)
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_opens_its_own_connection(server: ThrowawayRedis) -> None:
    store = fast_store(server.url)
    assert store.reserve("parent-1", [line()], NOW, TTL_S).ok  # a connection is held
    pid = os.fork()
    if pid == 0:  # the child: its calls must not read (or steal) the parent's replies
        code = 1
        try:
            # usage replies differ in shape from reserve replies: a crossed reply fails
            spent = [store.usage("daily", "acme", DAY, NOW).requests for _ in range(200)]
            code = 0 if spent == sorted(spent) and spent[0] >= 1 else 1
        finally:
            os._exit(code)
    for i in range(200):
        result = store.reserve(f"parent-{i + 2}", [line()], NOW, TTL_S)
        assert result.ok and result.store_error is None
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.usage("daily", "acme", DAY, NOW).requests == 201
    store.close()
