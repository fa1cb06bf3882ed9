"""The PII validators one rule at a time: card issuer ranges and lengths, Luhn, IBAN, SSN.

Written for mutation testing (tools/mutation.py): each bound of each rule is checked on
both sides, so a changed digit, comparison or length in a validator fails a test.
"""

from __future__ import annotations

import pytest

from policyd.guardrails._validators import (
    IBAN_LENGTHS,
    card_number_ok,
    iban_ok,
    luhn_ok,
    ssn_ok,
)


def with_check_digit(body: str) -> str:
    """``body`` plus the digit that makes the Luhn sum a multiple of 10 (independent code)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: every second digit from the right, once the check is added
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def card(prefix: str, length: int) -> str:
    body = prefix + "3" * (length - len(prefix) - 1)
    return with_check_digit(body)


@pytest.mark.parametrize(
    "number",
    ["4111111111111111", "79927398713", "0", "18", "059", "4012888888881881"],
)
def test_luhn_accepts_valid_numbers(number: str) -> None:
    assert luhn_ok(number)


@pytest.mark.parametrize("number", ["4111111111111112", "79927398710", "1", "19", "0591"])
def test_luhn_rejects_a_wrong_check_digit(number: str) -> None:
    assert not luhn_ok(number)


ACCEPTED = [
    ("4", 13), ("4", 16), ("4", 19),
    ("51", 16), ("55", 16),
    ("2221", 16), ("2720", 16),
    ("34", 15), ("37", 15),
    ("6011", 16), ("6011", 19), ("644", 16), ("649", 19), ("65", 17),
    ("62", 18),
    ("3528", 16), ("3589", 19),
    ("300", 14), ("305", 19), ("36", 14), ("38", 16), ("39", 19),
    ("2200", 16), ("2204", 19),
    ("5018", 12), ("5020", 19), ("5038", 13), ("6304", 15), ("6759", 12), ("6763", 19),
]  # fmt: skip
REJECTED = [
    ("4", 12), ("4", 14), ("4", 15), ("4", 17), ("4", 18), ("4", 20),
    ("50", 16), ("56", 16), ("51", 15), ("51", 17),
    ("2220", 16), ("2721", 16),
    ("34", 16), ("37", 14), ("33", 15), ("35", 15),
    ("6010", 16), ("643", 16), ("6011", 15), ("6011", 20),
    ("3527", 16), ("3590", 16), ("3528", 15),
    ("306", 14), ("300", 15), ("36", 13), ("38", 15),
    ("2205", 16), ("2200", 15),
    ("5018", 11), ("5018", 20), ("6764", 12), ("6758", 12),
    ("1", 16), ("7", 16), ("8", 16), ("9", 16),
]  # fmt: skip


@pytest.mark.parametrize(("prefix", "length"), ACCEPTED)
def test_each_issuer_range_and_length_is_a_card(prefix: str, length: int) -> None:
    number = card(prefix, length)
    assert card_number_ok(number), number
    broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not card_number_ok(broken), broken  # the Luhn digit is checked too


@pytest.mark.parametrize(("prefix", "length"), REJECTED)
def test_outside_the_issuer_ranges_or_lengths_is_no_card(prefix: str, length: int) -> None:
    number = card(prefix, length)
    assert luhn_ok(number) and not card_number_ok(number), number


def test_a_number_of_one_repeated_digit_is_no_card() -> None:
    repeated = [d * n for d in "0123456789" for n in range(12, 20)]
    assert any(luhn_ok(r) for r in repeated)
    assert not any(card_number_ok(r) for r in repeated)
    assert card_number_ok(with_check_digit("444444444444444"))  # one digit different


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "gb82west12345698765432",  # case does not matter
        "NO9386011117947",  # the shortest country
        "FR1420041010050500013M02606",
    ],
)
def test_valid_ibans(iban: str) -> None:
    assert iban_ok(iban)


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013001",  # wrong check digits
        "DE8937040044053201300",  # one character short for Germany
        "DE893704004405320130000",  # one too many
        "XX89370400440532013000",  # no such country
        "DE89 370400440532013000"[:22],  # a space is not alphanumeric
        "DE8937040044053201300é",  # not ASCII
    ],
)
def test_invalid_ibans(iban: str) -> None:
    assert not iban_ok(iban)


def test_iban_lengths_are_the_registry_values() -> None:
    assert (IBAN_LENGTHS["DE"], IBAN_LENGTHS["GB"], IBAN_LENGTHS["NO"], IBAN_LENGTHS["FR"]) == (
        22,
        22,
        15,
        27,
    )


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("123456789", True),
        ("001010001", True),  # the lowest of each part
        ("899999999", True),  # the highest area
        ("665123456", True),
        ("667123456", True),
        ("000123456", False),  # area 000
        ("666123456", False),  # area 666
        ("900123456", False),  # areas 900-999
        ("999123456", False),
        ("123006789", False),  # group 00
        ("123450000", False),  # serial 0000
        ("078051120", False),  # the Woolworth wallet card
        ("219099999", False),  # an advertisement's number
        ("078051121", True),
    ],
)
def test_ssn_rules(digits: str, ok: bool) -> None:
    assert ssn_ok(digits) is ok
