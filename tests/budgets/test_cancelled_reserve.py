"""An ``adecide()`` cancelled while its reserve is on the wire never holds a budget.

``asyncio.CancelledError`` is not a store error: before, it went straight through the
store, and a reservation that Redis ran after the caller had gone (a client timeout,
a closed HTTP request, ``asyncio.wait_for``) kept a 1-request budget "used up" for
its whole ttl, with no decision left to settle it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from budget_helpers import NOW, ThrowawayRedis
from test_redis_lost import CATALOG, DAY, POLICY, REQ

from policyd import Engine
from policyd.stores.redis import RedisStore


def reserved_requests(store: RedisStore) -> int:
    try:
        return store.usage("p/one-a-day", "acme", DAY, NOW).requests
    except Exception:
        return -1


def test_a_cancelled_adecide_releases_the_reservation_it_sent(
    server: ThrowawayRedis, tmp_path: Path
) -> None:
    (tmp_path / "models.yaml").write_text(CATALOG)
    (tmp_path / "policy.yaml").write_text(POLICY)
    engine = Engine.from_path(
        tmp_path, clock=lambda: NOW, store=server.url, command_timeout_s=30, retry_interval_s=0.05
    )
    store = engine._runtime.store
    assert isinstance(store, RedisStore)

    async def scenario() -> None:
        assert (await engine.adecide({**REQ, "tenant": {"id": "warm-up"}})).allowed
        server.pause()
        task = asyncio.create_task(engine.adecide(REQ))
        _client, _script, gate = store._io.async_pair()
        while gate._sem._value == gate.size:  # until the reserve holds a connection
            await asyncio.sleep(0)
        for _ in range(20):  # and has written its command
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.resume()  # Redis now runs the reserve of a decision nobody holds
        deadline = time.monotonic() + 10
        while reserved_requests(store) != 1:
            assert time.monotonic() < deadline, "the cancelled reserve never ran"
            await asyncio.sleep(0.01)
        await store.aflush_journal(NOW)
        # before: blocked as "used up" until the reservation's ttl (90 s)
        again = await engine.adecide(REQ)
        assert again.allowed, again.message

    asyncio.run(scenario())
    engine.close()


def test_a_cancelled_arecord_still_counts_the_spend(server: ThrowawayRedis, tmp_path: Path) -> None:
    (tmp_path / "models.yaml").write_text(CATALOG)
    (tmp_path / "policy.yaml").write_text(POLICY)
    engine = Engine.from_path(
        tmp_path,
        clock=lambda: NOW,
        store=server.url,
        command_timeout_s=30,
        pool_size=1,
        pool_timeout_s=30,
    )
    store = engine._runtime.store
    assert isinstance(store, RedisStore)

    async def scenario() -> None:
        decision = await engine.adecide(REQ)
        assert decision.allowed
        server.pause()
        other = asyncio.create_task(engine.adecide({**REQ, "tenant": {"id": "other"}}))
        _client, _script, gate = store._io.async_pair()
        while not gate._sem.locked():  # the other decision holds the only connection
            await asyncio.sleep(0)
        task = asyncio.create_task(engine.arecord(decision, input_tokens=3, output_tokens=4))
        while gate.waited == 0:  # the settle waits for it
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        server.resume()
        assert (await other).allowed
        assert await store.aflush_journal(NOW) == 0
        # before: the settlement vanished with the task (the reservation expires later)
        assert store.usage("p/one-a-day", "acme", DAY, NOW).tokens == 7

    asyncio.run(scenario())
    engine.close()
