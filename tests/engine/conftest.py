"""Fixtures for engine tests: write a small bundle to a temp dir and build an engine."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from engine_bundles import CATALOG
from redis_helpers import PATIENT

from policyd import Engine


class Clock:
    """An injectable engine clock."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_engine(tmp_path: Path, clock: Clock) -> Callable[..., Engine]:
    """make_engine(policy_yaml, **kw): a bundle of the shared catalog plus one policy."""

    def make(policy: str, **kwargs: object) -> Engine:
        (tmp_path / "models.yaml").write_text(textwrap.dedent(CATALOG))
        (tmp_path / "policy.yaml").write_text(textwrap.dedent(policy))
        kwargs.setdefault("clock", clock)
        if str(kwargs.get("store", "")).startswith("redis"):
            for option, value in PATIENT.items():
                kwargs.setdefault(option, value)
        return Engine.from_path(tmp_path, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(params=["memory", "redis"])
def redis_or_memory(request: pytest.FixtureRequest) -> dict[str, object]:
    """Engine keyword arguments: the memory store, or real Redis with a test prefix."""
    if request.param == "memory":
        return {}
    return {
        "store": request.getfixturevalue("redis_url"),
        "key_prefix": request.getfixturevalue("redis_prefix"),
        **PATIENT,
    }
