"""Fixtures for the budget tests: the same behaviour is checked on every store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from budget_helpers import ThrowawayRedis
from redis_helpers import PATIENT

from policyd.stores import MemoryStore, Store, open_store


@pytest.fixture(params=["memory", "redis", "redis-polled"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Each test that takes ``store`` runs on the memory store and on real Redis, also
    with its calls polling for their replies (``reply_poll_us``)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    polled = {"reply_poll_us": 500} if request.param == "redis-polled" else {}
    redis_store = open_store(url, key_prefix=prefix, **PATIENT, **polled)  # type: ignore[arg-type]
    yield redis_store
    redis_store.close()


@pytest.fixture(scope="session")
def redis_server_path() -> str:
    """The redis-server command, for tests that start servers of their own: without it they
    skip, visibly, except under CI (where the machine has one): then it is a failure."""
    executable = shutil.which("redis-server")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true and redis-server is not on PATH")
        pytest.skip("redis-server is not on PATH")
    return executable


@pytest.fixture
def idle_server(redis_server_path: str) -> Iterator[ThrowawayRedis]:
    """A private redis-server not started yet (a test starts, pauses or kills it)."""
    throwaway = ThrowawayRedis(redis_server_path)
    yield throwaway
    throwaway.kill()


@pytest.fixture
def server(idle_server: ThrowawayRedis) -> ThrowawayRedis:
    """A private redis-server, started."""
    idle_server.start()
    return idle_server
