"""Hostile patterns and hostile inputs: scanning stays linear in the text.

Timings use best-of-N and loose bounds, so a busy shared machine does not make them flaky;
a backtracking engine would be off by orders of magnitude, not by a factor of two.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from policyd.guardrails import (
    PII_KINDS,
    injection_check,
    pattern_check,
    pii_check,
    terms_check,
)

EVIL_PATTERNS = [r"(a+)+$", r"(a|aa)+$", r"(a|a?)+b", r"(\w+\s?)+$", r"^(([a-z])+.)+[A-Z]([a-z])+$"]


def best_of(n: int, fn: Callable[[], object]) -> float:
    """The least CPU time of ``n`` calls: this process's own time, so other processes
    competing for the CPU (a loaded CI runner) do not count."""
    best = float("inf")
    for _ in range(n):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def test_catastrophic_patterns_on_100kb_finish_in_milliseconds() -> None:
    check = pattern_check(EVIL_PATTERNS)
    hostile = "a" * 100_000 + "!"
    elapsed = best_of(3, lambda: check.scan(hostile))
    assert elapsed < 0.25, f"{elapsed * 1000:.1f} ms"


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|aa)+$"])
def test_time_grows_linearly_with_input(pattern: str) -> None:
    check = pattern_check([pattern])
    small, large = "a" * 10_000 + "!", "a" * 100_000 + "!"
    check.scan(large)  # warm the DFA cache
    t_small = best_of(7, lambda: check.scan(small))
    t_large = best_of(7, lambda: check.scan(large))
    ratio = t_large / max(t_small, 1e-6)
    assert ratio < 30, f"10x input took {ratio:.1f}x the time"


HOSTILE_INPUTS = {
    "digit groups": "4 " * 50_000,
    "card-like groups": "4444 " * 20_000,
    "dotted numbers": "1.2." * 25_000,
    "colons": "a1:" * 33_000,
    "at signs": "a.a@" * 25_000,
    "plus digits": "+1 2" * 25_000,
    "iban-like": "DE00 " * 20_000,
    "jwt-like": "eyJ" + "a" * 50_000 + ".eyJ" + "b" * 50_000,
    "pem header": "-----BEGIN PRIVATE KEY-----" + "A" * 100_000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_INPUTS))
def test_pii_scan_of_hostile_input_is_fast(name: str) -> None:
    check = pii_check(PII_KINDS)
    text = HOSTILE_INPUTS[name]
    elapsed = best_of(2, lambda: check.scan(text))
    assert elapsed < 1.0, f"{name}: {elapsed * 1000:.0f} ms for {len(text)} chars"


def test_pii_scan_grows_linearly_on_hostile_digits() -> None:
    check = pii_check(PII_KINDS)
    small, large = "4444 " * 2_000, "4444 " * 20_000
    check.scan(large)
    ratio = best_of(3, lambda: check.scan(large)) / max(best_of(3, lambda: check.scan(small)), 1e-6)
    assert ratio < 30, f"10x input took {ratio:.1f}x the time"


def test_injection_and_terms_on_hostile_input_are_fast() -> None:
    hostile = ("ignore " * 10_000) + ("all " * 10_000) + "previous"
    checks = [injection_check(), terms_check([f"w{i}" for i in range(2000)] + ["ignore all"])]
    for check in checks:
        elapsed = best_of(2, lambda check=check: check.scan(hostile))  # type: ignore[misc]
        assert elapsed < 0.5, f"{type(check).__name__}: {elapsed * 1000:.0f} ms"
