"""Fixtures for the budget tests: the same behaviour is checked on every store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from policyd.stores import MemoryStore, Store, open_store


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Each test that takes ``store`` runs on the memory store and on real Redis."""
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = open_store(url, key_prefix=prefix)
    yield redis_store
    redis_store.close()
