"""Shared fixtures: the real Redis at 127.0.0.1:6379, the shared/ test data folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests: no per-example deadline on a shared machine; under CI the examples are
# derandomized, so a run is reproducible (locally they vary, to keep finding new cases).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REDIS_URL = os.environ.get("POLICYD_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _redis_reachable(url: str) -> str | None:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - redis is a core dependency
        return f"redis package not importable: {exc}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.ping()
        client.close()
    except Exception as exc:
        return f"no Redis reachable at {url}: {exc}"
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis; skips locally when none runs, fails under CI=true."""
    problem = _redis_reachable(REDIS_URL)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true and {problem}")
        pytest.skip(problem)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix per test; every key under it is deleted afterwards."""
    import redis

    prefix = f"policyd-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder of test data; skipped with a reason where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (a user's clone has no ../shared)")
    return SHARED
