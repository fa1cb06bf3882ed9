"""Fixtures for the LiteLLM integration: a test bundle, an engine, and a spy on what LiteLLM sends.

Everything runs offline: deployments answer with LiteLLM's own ``mock_response``
(text, or ``"litellm.RateLimitError"``-style strings that raise), and the price
map is LiteLLM's local copy (``LITELLM_LOCAL_MODEL_COST_MAP`` is set before
litellm is imported).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_setup import POLICY, Sent


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A fresh copy of the test bundle (tests may rewrite it and reload)."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "policies.yaml").write_text(POLICY, encoding="utf-8")
    return folder


@pytest.fixture
def engine(bundle: Path) -> Iterator[Any]:
    from policyd import Engine

    with Engine.from_path(bundle) as eng:
        yield eng


@pytest.fixture
def sent() -> Iterator[Sent]:
    """What LiteLLM sent to providers during the test, in order."""
    import litellm

    spy = Sent()
    litellm.callbacks.append(spy.callback)
    try:
        yield spy
    finally:
        litellm.callbacks.remove(spy.callback)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Any]:
    """A LiteLLM proxy with the policyd guardrail in front of a recording fake upstream
    (see routes_setup.py), started once for the proxy route tests and stopped by PID."""
    from routes_setup import start_stack

    yield from start_stack(tmp_path_factory, redis_url)


@pytest.fixture(autouse=True)
def _restore_litellm_cache() -> Iterator[None]:
    """``litellm.cache`` is process-global: put back whatever was there."""
    import litellm

    before = litellm.cache
    litellm.cache = None
    try:
        yield
    finally:
        litellm.cache = before


def pytest_configure(config: pytest.Config) -> None:
    # LiteLLM's pydantic models warn about ReadOnly TypedDict items on first use: noise here.
    config.addinivalue_line("filterwarnings", "ignore:.*ReadOnly.*qualifier:UserWarning:pydantic")
