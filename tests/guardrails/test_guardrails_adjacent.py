"""Several PII values written back to back: each is found once, whole, and redacted.

A candidate regex that runs on into the next value (``DE89 3704 ... 00 DE89 3704 ...``)
must not make the validator reject the run or skip every other value: an unredacted
IBAN, card, SSN or phone number would reach the model. One-shot and streaming scans
must agree on such runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.guardrails import PII_KINDS, Finding, StreamScanner, pii_check, redact
from policyd.guardrails._validators import IBAN_LENGTHS, card_number_ok, luhn_ok, ssn_ok

ALL = pii_check(PII_KINDS)
BY_KIND = {kind: pii_check([kind]) for kind in ("iban", "credit_card", "us_ssn", "phone")}
SEPARATORS = [" ", ", ", ",", "\n", " \n"]

# Fixed values, several formats per kind (each one a true positive on its own).
IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "GB82 WEST 1234 5698 7654 32",
    "NO93 8601 1117 947",
    "FR14 2004 1010 0505 0001 3M02 606",
    "DE89370400440532013000",
    "NL91ABNA0417164300",
    "GB29 NWBK 6016 1331 9268 19",
    "MT84 MALT 0110 0001 2345 MTLC AST0 01S",
]
CARDS = [
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "3782 822463 10005",  # Amex 4-6-5
    "3056 930902 5904",  # Diners 4-6-4 (14 digits: 4 more would make a valid length)
    "4111111111111111",
    "6011 0009 9013 9424",
    "4222 2222 22222",  # 13-digit Visa
]
SSNS = ["123-45-6789", "536 22 1234", "212 67 8901", "899-99-9999", "001 01 0001"]
PHONES = [
    "(415) 555-2671",
    "415-555-2671",
    "415 555 2671",
    "1 415 555 2671",
    "1-800-555-0199",
    "415.555.2671",
    "020 7946 0958",
    "01 23 45 67 89",
    "030 1234567",
    "+44 20 7946 0958",  # never right before a national number here: see FAMILIES
    "+1 415 555 2671",
]
FIXED = {"iban": IBANS, "credit_card": CARDS, "us_ssn": SSNS, "phone": PHONES}


def spans_of(items: Sequence[str], sep: str, prefix: str = "") -> tuple[str, list[tuple[int, int]]]:
    """``prefix + sep.join(items)`` and each item's span in it."""
    spans = []
    pos = len(prefix)
    for item in items:
        spans.append((pos, pos + len(item)))
        pos += len(item) + len(sep)
    return prefix + sep.join(items), spans


def kind_spans(findings: Sequence[Finding], kind: str) -> list[tuple[int, int]]:
    return [(f.start, f.end) for f in findings if f.kind == kind]


def streamed(text: str, chunk_size: int, check: object = ALL) -> list[tuple[str, int, int]]:
    scanner = StreamScanner([check])  # type: ignore[list-item]
    out: list[Finding] = []
    for i in range(0, len(text), chunk_size):
        out.extend(scanner.feed(text[i : i + chunk_size]))
    out.extend(scanner.finish())
    return sorted((f.kind, f.start, f.end) for f in out)


def one_shot(text: str, check: object = ALL) -> list[tuple[str, int, int]]:
    return sorted((f.kind, f.start, f.end) for f in check.scan(text))  # type: ignore[attr-defined]


def assert_all_found_and_redacted(kind: str, items: Sequence[str], sep: str) -> None:
    text, spans = spans_of(items, sep, prefix="details: ")
    assert kind_spans(BY_KIND[kind].scan(text), kind) == spans, text
    found = ALL.scan(text)
    assert kind_spans(found, kind) == spans, text
    redacted = redact(text, found)
    assert not any(ch.isdigit() for ch in redacted), redacted


# --- fixed runs: 2-4 items of each kind, every separator ------------------------------------


RUNS = [
    (kind, sep, n, start)
    for kind, values in FIXED.items()
    for sep in SEPARATORS
    for n in (2, 3, 4)
    for start in range(len(values))
]


@pytest.mark.parametrize(("kind", "sep", "n", "start"), RUNS)
def test_run_of_adjacent_values_is_found_whole(kind: str, sep: str, n: int, start: int) -> None:
    values = FIXED[kind]
    items = [values[(start + i) % len(values)] for i in range(n)]
    assert_all_found_and_redacted(kind, items, sep)


@pytest.mark.parametrize("kind", sorted(FIXED))
@pytest.mark.parametrize("sep", SEPARATORS)
def test_same_value_repeated(kind: str, sep: str) -> None:
    for value in FIXED[kind]:
        assert_all_found_and_redacted(kind, [value] * 3, sep)


def test_the_reported_iban_run() -> None:
    text = "DE89 3704 0044 0532 0130 00 DE89 3704 0044 0532 0130 00 GB82 WEST 1234 5698 7654 32"
    assert redact(text, ALL.scan(text)) == "[IBAN] [IBAN] [IBAN]"


def test_invalid_iban_does_not_hide_the_valid_one_after_it() -> None:
    bad_then_good = "DE88 3704 0044 0532 0130 00 DE89 3704 0044 0532 0130 00"
    assert kind_spans(ALL.scan(bad_then_good), "iban") == [(28, 55)]
    code_then_iban = "ref ZX81 DE89 3704 0044 0532 0130 00"
    assert redact(code_then_iban, ALL.scan(code_then_iban)) == "ref ZX81 [IBAN]"
    cut_then_good = "DE89 3704 0044 0532 0130 0 NO93 8601 1117 947"
    assert redact(cut_then_good, ALL.scan(cut_then_good)).endswith(" [IBAN]")


def test_iban_run_into_prose_is_found() -> None:
    text = "pay DE89 3704 0044 0532 0130 00 or NO93 8601 1117 947 before Monday"
    assert redact(text, ALL.scan(text)) == "pay [IBAN] or [IBAN] before Monday"


@pytest.mark.parametrize(
    "text",
    [
        "DE89 3704 0044 0532 0130 00X",  # runs on mid-group
        "DE89 3704 0044 0532 0130 001",
        "XX89 3704 0044 0532 0130 00 XX89 3704 0044 0532 0130 00",
    ],
)
def test_iban_near_misses_in_runs_stay_unflagged(text: str) -> None:
    assert kind_spans(ALL.scan(text), "iban") == []


def test_ssn_inside_a_longer_separated_number_is_still_not_flagged() -> None:
    for text in ("call 555 123 45 6789 0", "id 123 45 6789 1234", "no 12 123 45 6789"):
        assert kind_spans(ALL.scan(text), "us_ssn") == [], text


def test_nanp_number_that_goes_on_is_still_not_flagged() -> None:
    for text in ("id 415 555 2671 1234", "id 415-555-2671-9"):
        assert kind_spans(ALL.scan(text), "phone") == [], text


def test_national_number_with_extra_groups_is_still_not_flagged() -> None:
    for text in ("020 7946 0958 12", "0301 234 5678 12", "020 7946 0958 1234 5678"):
        assert kind_spans(ALL.scan(text), "phone") == [], text


def test_national_number_after_other_groups_is_found() -> None:
    # the run does not parse as phone numbers from its start, but its tail does
    for prefix in ("ref 0042 ", "0567 ", "+44 20 7946 0958 "):
        text = prefix + "020 7946 0958"
        found = ALL.scan(text)
        assert (len(prefix), len(text)) in kind_spans(found, "phone"), text
        assert redact(text, found).endswith("[PHONE]"), text
    # the international number may run into the national one: one merged placeholder
    text = "+44 20 7946 0958 020 7946 0958"
    assert redact(text, ALL.scan(text)) == "[PHONE]"
    # an international number stops before a North American one
    text = "+1 415 555 2671 415 555 2671"
    assert kind_spans(ALL.scan(text), "phone") == [(0, 15), (16, 28)]


def test_card_run_picks_the_split_that_covers_every_card() -> None:
    # 3056 930902 5904 4111 is an 18-digit Diners length; taking it would leave the rest of
    # the Visa card unflagged. Whatever the Luhn digit, both cards are found whole.
    for last in "0123456789":
        diners = "3056 930902 590" + last
        if not luhn_ok(diners.replace(" ", "")):
            continue
        text = f"{diners} 4111 1111 1111 1111"
        assert kind_spans(ALL.scan(text), "credit_card") == [(0, 16), (17, 36)]


# --- streaming agrees with the one-shot scan on runs ----------------------------------------


@pytest.mark.parametrize("kind", sorted(FIXED))
@pytest.mark.parametrize("chunk_size", [1, 3, 7, 16])
def test_stream_agrees_with_one_shot_on_runs(kind: str, chunk_size: int) -> None:
    for sep in SEPARATORS:
        text, spans = spans_of(FIXED[kind], sep, prefix="values: ")
        expected = one_shot(text)
        assert [(s, e) for k, s, e in expected if k == kind] == spans
        assert streamed(text, chunk_size) == expected, (sep, chunk_size)


# --- invariant: any list of valid values joined by a separator ------------------------------


def _iban_check_digits(country: str, bban: str) -> str:
    number = int("".join(str(int(ch, 36)) for ch in bban + country + "00"))
    return f"{98 - number % 97:02d}"


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    alphabet = st.sampled_from("0123456789" * 3 + "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    size = IBAN_LENGTHS[country] - 4
    bban = "".join(draw(st.lists(alphabet, min_size=size, max_size=size)))
    iban = country + _iban_check_digits(country, bban) + bban
    if draw(st.booleans()):
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban.lower() if draw(st.integers(0, 9)) == 0 else iban


# (first digits, length, groupings allowed for that length)
_CARD_SHAPES: list[tuple[str, int, list[tuple[int, ...]]]] = [
    ("4", 16, [(4, 4, 4, 4)]),
    ("4", 13, [(4, 4, 5)]),
    ("4", 19, [(4, 4, 4, 4, 3)]),
    ("51", 16, [(4, 4, 4, 4)]),
    ("55", 16, [(4, 4, 4, 4)]),
    ("2221", 16, [(4, 4, 4, 4)]),
    ("34", 15, [(4, 6, 5)]),
    ("37", 15, [(4, 6, 5)]),
    ("36", 14, [(4, 6, 4)]),
    ("300", 14, [(4, 6, 4)]),
    ("6011", 16, [(4, 4, 4, 4)]),
    ("65", 19, [(4, 4, 4, 4, 3)]),
    ("62", 17, [(4, 4, 4, 5)]),
    ("3530", 16, [(4, 4, 4, 4)]),
    ("2200", 16, [(4, 4, 4, 4)]),
]


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix, length, groupings = draw(st.sampled_from(_CARD_SHAPES))
    body = prefix + draw(st.from_regex(rf"[0-9]{{{length - len(prefix) - 1}}}", fullmatch=True))
    number = next(body + d for d in "0123456789" if luhn_ok(body + d))
    if not card_number_ok(number):  # all one digit: not treated as a card
        number = number[:-2] + ("1" if number[-2] != "1" else "2")
        number = next(number[:-1] + d for d in "0123456789" if luhn_ok(number[:-1] + d))
    sep = draw(st.sampled_from(["", " ", "-"]))
    if not sep:
        return number
    parts, pos = [], 0
    for size in draw(st.sampled_from(groupings)):
        parts.append(number[pos : pos + size])
        pos += size
    return sep.join(parts)


@st.composite
def ssns(draw: st.DrawFn) -> str:
    digits = draw(st.from_regex(r"[0-8][0-9]{2}[0-9]{2}[0-9]{4}", fullmatch=True))
    if not ssn_ok(digits):
        digits = "123456789"
    sep = draw(st.sampled_from(["-", " "]))
    return f"{digits[:3]}{sep}{digits[3:5]}{sep}{digits[5:]}"


_PHONE_SHAPES = [
    "({a}) {e}-{l}",
    "{a}-{e}-{l}",
    "{a}.{e}.{l}",
    "{a} {e} {l}",
    "1-{a}-{e}-{l}",
    "1 {a} {e} {l}",
    "+1 {a} {e} {l}",
    "+44 20 {n4} {n4b}",
    "+33 1 {n2} {n2} {n2} {n2}",
    "020 {n4} {n4b}",
    "01 {n2} {n2} {n2} {n2}",
    "030 {n7}",
]


@st.composite
def phones(draw: st.DrawFn, shapes: Sequence[str] = tuple(_PHONE_SHAPES)) -> str:
    shape = draw(st.sampled_from(shapes))
    fields = {
        "a": draw(st.from_regex(r"[2-9][0-9]{2}", fullmatch=True)),
        "e": draw(st.from_regex(r"[2-9][0-9]{2}", fullmatch=True)),
        "l": draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
        "n4": draw(st.from_regex(r"[1-9][0-9]{3}", fullmatch=True)),
        "n4b": draw(st.from_regex(r"[0-9]{4}", fullmatch=True)),
        "n2": draw(st.from_regex(r"[0-9]{2}", fullmatch=True)),
        "n7": draw(st.from_regex(r"[1-9][0-9]{6}", fullmatch=True)),
    }
    return shape.format(**fields)


STRATEGIES = {"iban": ibans(), "credit_card": cards(), "us_ssn": ssns(), "phone": phones()}
# An international number followed by a national one is ambiguous (is 020 the end of the
# first number?): the findings may overlap, which redaction handles. So exact spans are
# checked on lists drawn from one family, redaction and streaming on any mix.
FAMILIES = {
    **{kind: [strategy] for kind, strategy in STRATEGIES.items()},
    "phone": [
        phones(tuple(s for s in _PHONE_SHAPES if not s.startswith("0"))),
        phones(tuple(s for s in _PHONE_SHAPES if not s.startswith("+"))),
    ],
}


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(FAMILIES)), data=st.data(), sep=st.sampled_from(SEPARATORS))
def test_any_run_of_valid_values_is_found_exactly_once(
    kind: str, data: st.DataObject, sep: str
) -> None:
    family = data.draw(st.sampled_from(FAMILIES[kind]), label="family")
    items = data.draw(st.lists(family, min_size=1, max_size=4), label="items")
    text, spans = spans_of(items, sep, prefix="see ")
    assert kind_spans(BY_KIND[kind].scan(text), kind) == spans
    assert not any(ch.isdigit() for ch in redact(text, ALL.scan(text)))


@settings(max_examples=100, deadline=None)
@given(kind=st.sampled_from(sorted(STRATEGIES)), data=st.data(), sep=st.sampled_from(SEPARATORS))
def test_any_mix_of_valid_values_leaves_no_digit_after_redaction(
    kind: str, data: st.DataObject, sep: str
) -> None:
    items = data.draw(st.lists(STRATEGIES[kind], min_size=2, max_size=4), label="items")
    text, _ = spans_of(items, sep, prefix="see ")
    redacted = redact(text, ALL.scan(text))
    assert not any(ch.isdigit() for ch in redacted), redacted


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(sorted(STRATEGIES)),
    data=st.data(),
    sep=st.sampled_from(SEPARATORS),
    cuts=st.lists(st.integers(0, 200), max_size=12),
)
def test_any_run_streams_like_one_shot(
    kind: str, data: st.DataObject, sep: str, cuts: list[int]
) -> None:
    items = data.draw(st.lists(STRATEGIES[kind], min_size=2, max_size=4), label="items")
    text, _ = spans_of(items, sep, prefix="x ")
    scanner = StreamScanner([ALL])
    out: list[Finding] = []
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    for a, b in itertools.pairwise(points):
        out.extend(scanner.feed(text[a:b]))
    out.extend(scanner.finish())
    assert sorted((f.kind, f.start, f.end) for f in out) == one_shot(text)
