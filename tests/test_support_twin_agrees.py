"""The hand-written twin of the shipped support-bot policy decides as the engine does.

The support-bot row of the decide() speed target (#17) is a ratio against
benchmarks/support_twin.py; it means something only if both make the same decisions,
scans included. 2,000 seeded, varied and hostile requests (PII of every kind the policy
scans and near misses, injection phrases, unicode tricks, long inputs, content parts,
missing and mistyped attributes, malformed requests) at three clock times: every field
the twin models must agree (allowed, blocked_by, refusal message, tier, model, LiteLLM
model, fallbacks, cache directive, prompt version and text, warnings, what the PII and
injection scans found and where, the redacted messages), and a refused request must be
refused by both naming the same field.
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
sys.path.insert(0, str(ROOT / "tests" / "guardrails"))

import support_twin  # noqa: E402
from guardrail_corpus import PII_NEGATIVES, PII_POSITIVES, SECRET_POSITIVES  # noqa: E402
from handwritten import BadRequest  # noqa: E402
from support_mix import NEAR_MISSES, PII_VALUES, varied_requests  # noqa: E402

# every detection-corpus value and near miss, besides the mix's own
VALUES = (
    *PII_VALUES,
    *NEAR_MISSES,
    *(value for _, value in PII_POSITIVES),
    *(value for _, value in SECRET_POSITIVES),
    *(text for _, text in PII_NEGATIVES),
)


def _engine_view(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    try:
        return support_twin.observable(engine.decide(request, policy="support-bot"))
    except RequestError as exc:
        return {"error": exc.field}


def _twin_view(request: dict[str, Any], now: datetime) -> dict[str, Any]:
    try:
        return support_twin.decide(request, now)
    except BadRequest as exc:
        return {"error": exc.field}


@pytest.mark.parametrize(
    ("now", "count", "seed"),
    [
        (datetime(2026, 11, 24, 12, tzinfo=UTC), 2000, 17),
        (datetime(2026, 12, 3, tzinfo=UTC), 300, 18),  # the schedule's 50/50 step
        (datetime(2027, 2, 1, tzinfo=UTC), 300, 19),  # after its last step
    ],
)
def test_zero_disagreements(now: datetime, count: int, seed: int) -> None:
    engine = Engine.from_path(ROOT / "policies", clock=lambda: now)
    requests = varied_requests(count, seed, values=VALUES)
    disagreements = []
    outcomes: Counter[str] = Counter()
    for i, request in enumerate(requests):
        # With neither a user id nor a request id the economy tier draws at random
        # (random.random()): the same seed before each side makes that draw comparable.
        random.seed(i)
        ours = _engine_view(engine, request)
        random.seed(i)
        theirs = _twin_view(request, now)
        if ours != theirs:
            disagreements.append((i, ours, theirs))
        if "error" in ours:
            outcomes["error"] += 1
            continue
        outcomes[ours["blocked_by"] or ours["tier"]] += 1
        outcomes["redacted"] += ours["redacted"] is not None
        outcomes["cached"] += ours["cache"] is not None and ours["cache"]["key"] is not None
        outcomes["warned"] += bool(ours["warnings"])
        outcomes[ours["prompts"].get("support-system", ("-",))[0]] += 1
    assert disagreements == []
    if count == 2000:
        # the mix reaches every tier, every block, redactions, cache keys and both prompts
        for outcome in ("economy", "premium", "injection", "free-tier-no-code", "redacted"):
            assert outcomes[outcome] > 50, outcomes
        for outcome in ("max-input", "context_window", "error", "cached", "v3", "v4"):
            assert outcomes[outcome] > 5, outcomes
    if now >= datetime(2026, 12, 8, tzinfo=UTC):  # v4 for all: a tenant without id warns
        assert outcomes["warned"] > 5, outcomes


def test_every_scanned_kind_is_found_by_both() -> None:
    """Each PII kind the policy scans is redacted (and named) alike in a user message."""
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    engine = Engine.from_path(ROOT / "policies", clock=lambda: now)
    kinds: set[str] = set()
    for kind, value in [*PII_POSITIVES, *SECRET_POSITIVES]:
        request = {
            "tenant": {"id": "t1", "tier": "pro"},
            "user": {"id": "u1"},
            "messages": [{"role": "user", "content": f"here: {value} thanks"}],
        }
        ours = _engine_view(engine, request)
        assert ours == _twin_view(request, now), kind
        assert ours["redacted"] is not None, kind
        kinds.add(kind.split(":")[0])
    assert kinds == {"email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secret"}


def test_the_twin_would_notice_a_difference() -> None:
    """The comparison is sharp: a finding moved to another message no longer agrees."""
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    engine = Engine.from_path(ROOT / "policies", clock=lambda: now)
    request = {
        "tenant": {"id": "t1", "tier": "pro"},
        "user": {"id": "u1"},
        "feature": "faq",
        "temperature": 0.0,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "mail jane.doe@example.com"},
        ],
    }
    ours = _engine_view(engine, request)
    assert ours == _twin_view(request, now)
    assert ours["redacted"] == "redacted EMAIL in message 1"
    assert ours["messages"][1]["content"] == "mail [EMAIL]"
    moved = dict(request, messages=[request["messages"][1], request["messages"][0]])
    assert _engine_view(engine, moved) != ours
    assert _engine_view(engine, moved) == _twin_view(moved, now)
