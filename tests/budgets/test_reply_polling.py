"""Reply polling (``reply_poll_us``): a sync script call polls its socket for the reply
before the blocking read. Polling only decides when the read starts, never what is read:
these tests pin that on sockets and on a real server (paused, killed, over a Unix
socket), and that the option is checked like the pool's. The store's semantics with
polling on run in ``test_store_semantics.py`` (the ``redis-polled`` store)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from budget_helpers import NOW, ThrowawayRedis
from test_redis_faults import DAY, TTL_S, fast_store, line

from policyd.budgets import Amount
from policyd.stores import StoreError, open_store
from policyd.stores.redis import RedisStore
from policyd.stores.redis_lane import poll_for_reply


def test_polling_returns_when_a_reply_waits_and_leaves_it_to_be_read() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"+OK\r\n")
        assert poll_for_reply(ours, 5.0)  # at once: the bytes are there
        assert ours.recv(16) == b"+OK\r\n"  # nothing was consumed


def test_polling_gives_up_after_its_time_with_nothing_read() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        started = time.perf_counter()
        assert not poll_for_reply(ours, 0.002)
        assert time.perf_counter() - started >= 0.002
        theirs.sendall(b"late")
        assert ours.recv(16) == b"late"


def test_a_closed_peer_ends_polling_so_the_read_sees_it() -> None:
    ours, theirs = socket.socketpair()
    with ours:
        theirs.close()
        assert poll_for_reply(ours, 5.0)  # readable: EOF, for the read to report
        assert ours.recv(16) == b""


def test_a_socket_that_cannot_be_polled_is_read_at_once() -> None:
    closed = socket.socket()
    closed.close()
    started = time.perf_counter()
    assert not poll_for_reply(closed, 5.0)
    assert not poll_for_reply(None, 5.0)  # a connection not connected yet
    assert time.perf_counter() - started < 1.0


def test_reply_poll_us_is_an_option_and_a_url_parameter(redis_url: str) -> None:
    default = open_store(redis_url)
    kwarg = open_store(redis_url, reply_poll_us=250)
    sep = "&" if "?" in redis_url else "?"
    in_url = open_store(f"{redis_url}{sep}reply_poll_us=120.5&pool_size=3")
    stores = (default, kwarg, in_url)
    assert all(isinstance(s, RedisStore) for s in stores)
    assert [s.stats()["reply_poll_us"] for s in stores] == [0.0, 250.0, 120.5]
    assert in_url.stats()["pool_size"] == 3
    for s in stores:
        s.close()


@pytest.mark.parametrize("bad", ["-1", "10001", "soon", "nan", ""])
def test_a_bad_reply_poll_us_says_what_is_accepted(redis_url: str, bad: str) -> None:
    sep = "&" if "?" in redis_url else "?"
    with pytest.raises(StoreError, match=r"reply_poll_us must be a number of microseconds"):
        open_store(f"{redis_url}{sep}reply_poll_us={bad}")


@pytest.mark.parametrize("bad", [-0.5, 1e9, True])
def test_a_bad_reply_poll_us_argument_is_refused(redis_url: str, bad: object) -> None:
    with pytest.raises(StoreError, match=r"from 0 \(off\) to 10000"):
        open_store(redis_url, reply_poll_us=bad)  # type: ignore[arg-type]


def test_a_polled_call_to_a_paused_server_times_out_as_without(server: ThrowawayRedis) -> None:
    store = fast_store(server.url, pool_size=1, reply_poll_us=10_000)
    assert store.reserve("d1", [line(1_000)], NOW, TTL_S).ok
    server.pause()
    late = store.reserve("d2", [line(2_000)], NOW, TTL_S)  # polls 10 ms, then reads: timeout
    assert late.store_error and "Timeout" in late.store_error
    server.resume()  # d2 runs now and answers a connection that is gone
    store._down_until = 0.0
    assert store.usage("daily", "acme", DAY, NOW) == Amount(3_000, 0, 2)  # its own reply
    store.close()


def test_a_polled_call_to_a_killed_server_fails_once(server: ThrowawayRedis) -> None:
    store = fast_store(server.url, reply_poll_us=10_000)
    first = store.reserve("d1", [line()], NOW, TTL_S)
    assert first.ok
    server.kill()
    failed = store.reserve("d2", [line()], NOW, TTL_S)
    assert failed.store_error and "Connection" in failed.store_error
    assert store.settle(first, Amount(10, 0, 1), NOW)  # kept in the journal, not lost
    assert len(store.journal) == 1
    store.close()


def test_a_unix_socket_url_with_options_keeps_its_path(
    redis_server_path: str, tmp_path: Path
) -> None:
    path = tmp_path / "redis.sock"
    server = ThrowawayRedis(redis_server_path, unix_socket=str(path))
    server.start()
    try:
        # the options are taken off the query; the path must reach redis-py whole
        # (unix:///x rebuilt by urlunsplit is unix:/x, which redis-py refuses)
        for query in ("?reply_poll_us=200", "?pool_size=2&db=0", ""):
            store = open_store(f"unix://{path}{query}", key_prefix=f"u{len(query)}:")
            assert isinstance(store, RedisStore)
            reservation = store.reserve("d1", [line(1_000)], NOW, TTL_S)
            assert reservation.ok and reservation.store_error is None
            assert store.settle(reservation, Amount(400, 0, 1), NOW)
            assert store.usage("daily", "acme", DAY, NOW) == Amount(400, 0, 1)
            store.close()
    finally:
        server.kill()
