"""The hand-written twin of the routing-heavy benchmark policy decides as the engine does.

The decide() speed target of #17 is a ratio against benchmarks/handwritten.py; the ratio
means something only if both make the same decisions. 2,000 seeded, varied requests
(missing and mistyped attributes, oversized inputs, malformed requests) at three clock
times; every observable field must agree, and a refused request must be refused by both
naming the same field.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyd import Engine, RequestError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import handwritten  # noqa: E402
from routing_mix import varied_requests  # noqa: E402

BUNDLE = ROOT / "benchmarks" / "policies" / "routing-heavy"


def _engine_view(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    try:
        return handwritten.observable(engine.decide(request))
    except RequestError as exc:
        return {"error": exc.field}


def _twin_view(request: dict[str, Any], now: datetime) -> dict[str, Any]:
    try:
        return handwritten.decide(request, now)
    except handwritten.BadRequest as exc:
        return {"error": exc.field}


@pytest.mark.parametrize(
    ("now", "count", "seed"),
    [
        (datetime(2026, 11, 24, 12, tzinfo=UTC), 2000, 17),
        (datetime(2026, 10, 1, tzinfo=UTC), 300, 18),  # before the rollout schedule
        (datetime(2027, 2, 1, tzinfo=UTC), 300, 19),  # after its last step
    ],
)
def test_zero_disagreements(now: datetime, count: int, seed: int) -> None:
    engine = Engine.from_path(BUNDLE, clock=lambda: now)
    requests = varied_requests(count, seed)
    disagreements = []
    outcomes: Counter[str] = Counter()
    for i, request in enumerate(requests):
        # With neither a sticky value nor a request id a weighted tier draws at random
        # (random.random()): the same seed before each side makes that draw comparable.
        random.seed(i)
        ours = _engine_view(engine, request)
        random.seed(i)
        theirs = _twin_view(request, now)
        if ours != theirs:
            disagreements.append((i, ours, theirs))
        outcomes["error" if "error" in ours else ours["blocked_by"] or ours["tier"]] += 1
    assert disagreements == []
    if count == 2000:
        # the mix reaches every tier, both block kinds and malformed requests
        for outcome in ("edge", "economy", "standard", "premium", "frontier"):
            assert outcomes[outcome] > 20, outcomes
        for outcome in ("embargoed-country", "free-plan-limits", "context_window", "error"):
            assert outcomes[outcome] > 5, outcomes


def test_the_twin_would_notice_a_difference() -> None:
    """The comparison is sharp: a decision changed in one field no longer agrees."""
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    engine = Engine.from_path(BUNDLE, clock=lambda: now)
    request = {
        "id": "r1",
        "tenant": {"id": "t1", "plan": "pro"},
        "user": {"id": "u1", "country": "DE"},
        "feature": "faq",
        "temperature": 0.0,
        "messages": [{"role": "user", "content": "hi"}],
    }
    ours = _engine_view(engine, request)
    assert ours == _twin_view(request, now)
    assert ours["cache"]["rule"] == "faq"
    changed = dict(request, max_tokens=5)  # part of the faq cache key
    assert _engine_view(engine, changed)["cache"]["key"] != ours["cache"]["key"]
    assert _engine_view(engine, changed) == _twin_view(changed, now)
