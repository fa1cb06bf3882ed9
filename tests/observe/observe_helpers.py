"""Helpers for observability tests: the repository root, a fixed clock, a request."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def request(**extra: object) -> dict[str, object]:
    """A support-bot request; keyword arguments override its attributes."""
    base: dict[str, object] = {
        "tenant": {"id": "acme", "tier": "pro"},
        "user": {"id": "u1", "country": "DE"},
        "tags": [],
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "How do I reset my password?"},
        ],
    }
    base.update(extra)
    return base
