"""Every rule-set scan is linear in the text: counted in bytes searched, not in seconds.

Each case is a worst input found for one scan family (repeated prefixes of a detector,
patterns whose matches used to rescan the rest of the text). The work of a scan of 4x the
text must stay under 5x; on the old ``finditer`` scans these grew with the square.
"""

from __future__ import annotations

import pytest

from policyd.guardrails import (
    PII_KINDS,
    RuleSetCheck,
    injection_check,
    pattern_check,
    pii_check,
    terms_check,
)

HEADER = "-----BEGIN PRIVATE KEY-----"

# (family, check builder, repeated unit)
CASES: list[tuple[str, object, str]] = [
    ("deny x(?:.*y)?", lambda: pattern_check([r"x(?:.*y)?"]), "x"),
    ("deny (?i)password(?:.*=)?", lambda: pattern_check([r"(?i)password(?:.*=)?"]), "password"),
    ("deny a[^b]*b (far b)", lambda: pattern_check([r"a[^b]*b"]), "a"),
    ("private key headers", lambda: pii_check(["secret:private_key"]), HEADER),
    ("private key header + body", lambda: pii_check(["secret"]), HEADER + "\nQUJD"),
    ("email prefixes", lambda: pii_check(["email"]), "a.a@"),
    ("phone prefixes", lambda: pii_check(["phone"]), "+1 2"),
    ("card groups", lambda: pii_check(["credit_card"]), "4444 "),
    ("iban prefixes", lambda: pii_check(["iban"]), "DE00 "),
    ("ipv6 colons", lambda: pii_check(["ip_address"]), "a1:"),
    ("jwt prefixes", lambda: pii_check(["secret:jwt"]), "eyJaaaaaaaaa.eyJ"),
    ("all pii on dotted numbers", lambda: pii_check(PII_KINDS), "1.2."),
    ("injection repeats", lambda: injection_check(), "ignore all "),
    ("terms with spaces", lambda: terms_check(["new york", "new"]), "new  "),
]


def work(check: RuleSetCheck, text: str) -> int:
    cursor = check.open_cursor()
    cursor.feed(text)
    cursor.advance(final=True)
    return cursor.work


@pytest.mark.parametrize(("family", "build", "unit"), CASES, ids=[c[0] for c in CASES])
def test_work_grows_linearly(family: str, build: object, unit: str) -> None:
    check = build()  # type: ignore[operator]
    assert isinstance(check, RuleSetCheck)
    small = unit * (32_768 // len(unit))
    large = unit * (131_072 // len(unit))
    ratio = work(check, large) / max(work(check, small), 1)
    assert ratio < 5, f"{family}: 4x the text took {ratio:.1f}x the work"


def test_private_key_headers_each_redacted_once() -> None:
    # 390 KB of headers took 4.5 s with the old regex; each header is its own finding
    check = pii_check(["secret"])
    text = HEADER * 2_000
    found = check.scan(text)
    assert len(found) == 2_000
    assert all(f.end - f.start == len(HEADER) for f in found)


def test_quadratic_pattern_still_finds_every_match() -> None:
    check = pattern_check([r"x(?:.*y)?"])
    text = "x" * 100 + "y" + " x"
    assert [(f.start, f.end) for f in check.scan(text)] == [(0, 101), (102, 103)]


def test_matches_past_the_cap_cover_their_window() -> None:
    # a text made only of matches: after 4,096 findings each covers its window (256 bytes)
    check = pattern_check([r"x"])
    found = check.scan("x" * 10_000)
    assert len(found) == 4096 + (10_000 - 4096 + 255) // 256
    assert found[-1].end == 10_000
    assert sum(f.end - f.start for f in found) == 10_000  # nothing left unflagged
