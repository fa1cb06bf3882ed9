"""Helpers shared by the budget tests (a plain module: tests/ is not a package)."""

from __future__ import annotations

from datetime import UTC, datetime

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
