"""The edges of each PII validator, seen through a scan: where a value starts and stops.

Each case pins one boundary a validator decides (a neighbouring digit, a separator that
goes on, a length limit, the next value of a list), so a validator that drifts by one
character or one digit fails here. tools/mutation.py runs this file against
policyd/guardrails/_validators.py.
"""

from __future__ import annotations

import pytest
from guardrail_corpus import A36, b64url

from policyd.guardrails import PII_KINDS, pii_check
from policyd.guardrails._validators import iban_ok, luhn_ok

ALL = pii_check(PII_KINDS)
SECRETS = pii_check(["secret"])


def found(text: str, kind: str) -> list[str]:
    return [text[f.start : f.end] for f in ALL.scan(text) if f.kind == kind]


def luhn_complete(body: str) -> str:
    """``body`` and the one check digit that makes it pass Luhn."""
    [number] = [body + d for d in "0123456789" if luhn_ok(body + d)]
    return number


# --- cards ----------------------------------------------------------------------------------

VISA_19 = luhn_complete("4" + "1" * 17)  # Visa issues 13, 16 and 19 digits


def test_nineteen_digit_card_is_found_whole_in_one_group_or_in_4_4_4_4_3() -> None:
    grouped = " ".join([VISA_19[i : i + 4] for i in range(0, 16, 4)] + [VISA_19[16:]])
    assert found(f"card {VISA_19} ok", "credit_card") == [VISA_19]
    assert found(f"card {grouped} ok", "credit_card") == [grouped]


def test_thirteen_digit_card_in_groups_is_found() -> None:
    assert found("card 4222 2222 22222 ok", "credit_card") == ["4222 2222 22222"]


@pytest.mark.parametrize(
    "text",
    [
        "41111 1111 1111 111",  # a first group of 5
        "4111 1111 1111 11 11",  # a group of 2
        "4111 1111111 11111",  # a group of 7
    ],
)
def test_valid_card_digits_in_a_grouping_no_card_uses_are_no_card(text: str) -> None:
    assert luhn_ok(text.replace(" ", ""))
    assert found(text, "credit_card") == []


def test_card_ending_a_run_of_groups_and_cards_back_to_back() -> None:
    assert found("4111 1111 1111 1111 2027", "credit_card") == ["4111 1111 1111 1111"]
    for text in (
        "4111111111111111 5555555555554444 378282246310005",
        "30569309025904 4222222222222 30569309025904",  # 14, 13 and 14 digits
    ):
        assert found(text, "credit_card") == text.split()
    text = "4111 1111 1111 1111 5555 5555 5555 4444"
    assert found(text, "credit_card") == ["4111 1111 1111 1111", "5555 5555 5555 4444"]


def test_card_run_takes_the_split_that_covers_the_most_digits() -> None:
    # 3056 930902 5904 4111 would be an 18-digit Diners number if its Luhn digit fit; the
    # split into the 14-digit Diners card and the whole Visa card covers more digits
    for last in "0123456789":
        diners = "3056 930902 590" + last
        if luhn_ok(diners.replace(" ", "")):
            text = f"{diners} 4111 1111 1111 1111"
            assert found(text, "credit_card") == [diners, "4111 1111 1111 1111"]
    # a 16-digit card whose last group also starts a card: the longer cover wins
    text = "5555 5555 5555 4444 4111 1111 1111 1111"
    assert found(text, "credit_card") == ["5555 5555 5555 4444", "4111 1111 1111 1111"]
    # 6011 and the next three groups pass as a Discover card, but would cut the Visa card
    grouped = " ".join([VISA_19[i : i + 4] for i in range(0, 16, 4)] + [VISA_19[16:]])
    assert luhn_ok("6011" + VISA_19[:12])
    assert found(f"6011 {grouped}", "credit_card") == [grouped]
    # 5555 5555 4444 4111 passes Luhn too: on an equal cover the card starting first wins
    assert luhn_ok("5555555544444111")
    assert found("5555 5555 5555 4444 4111", "credit_card") == ["5555 5555 5555 4444"]


def test_digits_glued_to_letters_after_a_card_are_not_another_card() -> None:
    assert found("card 4111111111111111 ref A5555555555554444", "credit_card") == [
        "4111111111111111"
    ]


# --- IBAN -------------------------------------------------------------------------------------


def test_iban_with_a_letters_and_digits_group_does_not_hide_the_next_one() -> None:
    # the SWIFT registry's Kazakh example: its group ZT50 looks like the start of an IBAN
    kz, de = "KZ86 125K ZT50 0410 0100", "DE89 3704 0044 0532 0130 00"
    assert found(f"{kz} {de}", "iban") == [kz, de]


def test_each_iban_of_a_list_is_found_once() -> None:
    text = "DE89370400440532013000, GB82WEST12345698765432"
    assert found(text, "iban") == ["DE89370400440532013000", "GB82WEST12345698765432"]


def test_right_check_digits_with_the_wrong_length_for_the_country_is_no_iban() -> None:
    body = "3704004405320130"  # 20 characters with DE and check digits: Germany has 22
    rearranged = int(body + "1314" + "00")  # D=13, E=14, check digits 00
    short = f"DE{98 - rearranged % 97:02d}{body}"
    assert int(short[4:] + "1314" + short[2:4]) % 97 == 1  # mod-97 alone would pass
    assert not iban_ok(short)


# --- US SSN -----------------------------------------------------------------------------------


def test_ssn_list_with_one_separator_is_every_ssn() -> None:
    assert found("my ssn 123 45 6789 is here", "us_ssn") == ["123 45 6789"]
    assert found("123 45 6789 234 56 7890", "us_ssn") == ["123 45 6789", "234 56 7890"]
    assert found("123-45-6789-234-56-7890", "us_ssn") == ["123-45-6789", "234-56-7890"]


@pytest.mark.parametrize(
    "text",
    [
        "1-123-45-6789",  # a longer number at the start of the text
        "9123 45 6789 234 56 7890",  # the first is no SSN, so the second goes on from it
        "123 45 6789 234 56 78901",  # the second is no SSN, so the first goes on into it
        "123-45-6789-1234",
        "123-45-6789-7",
    ],
)
def test_ssn_inside_a_longer_separated_number_is_not_flagged(text: str) -> None:
    assert found(text, "us_ssn") == []


# --- phone numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("+677 12345", ["+677 12345"]),  # 8 digits: the shortest E.164 number taken
        ("+677 1234", []),
        ("+49 (0)30 1234", ["+49 (0)30 1234"]),  # the trunk (0) is not a digit of it
        ("+49 (0)30 123", []),
        ("+49 (0)89 1234 5678 901", ["+49 (0)89 1234 5678 901"]),  # 15 digits: the longest
        ("+49 89 1234 5678 9012", ["+49 89 1234 5678"]),  # 16: whole groups up to 15
        ("+1 2 3 4 5 6 7 890123456", []),  # the candidate pattern cut a digit run
        ("+1 415 555 2671 415 555 0199", ["+1 415 555 2671", "415 555 0199"]),
    ],
)
def test_international_number_lengths_and_ends(text: str, phones: list[str]) -> None:
    assert found(text, "phone") == phones


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("415 555 2671 415 555 0199", ["415 555 2671", "415 555 0199"]),
        ("415-555-2671-415-555-0199", ["415-555-2671", "415-555-0199"]),
        ("415 555 2671 020 7946 0958", ["415 555 2671", "020 7946 0958"]),
        ("1 415-555-2671", ["1 415-555-2671"]),  # the country code's separator may differ
        ("call 415-555-2671 24 hours", ["415-555-2671"]),  # another separator: not one number
        ("415-555-2671-1234", []),  # goes on with the same separator: longer than a phone
        ("415 555 2671 0", []),
        ("ref 2(415) 555-2671", []),  # glued to a digit
        ("dial +(415) 555-2671", []),  # glued to a +
    ],
)
def test_north_american_number_edges(text: str, phones: list[str]) -> None:
    assert found(text, "phone") == phones


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("020 7946 0958 020 7946 0959", ["020 7946 0958", "020 7946 0959"]),
        ("020 7946 0958 415 555 2671", ["020 7946 0958", "415 555 2671"]),
        ("ref 0123 020 7946 0958", ["020 7946 0958"]),  # after a reference number
        ("020 7946 0958 and 12", ["020 7946 0958"]),
        ("01632 960123", ["01632 960123"]),  # a 5-digit trunk group
        ("0123 012345 6789", []),  # a group of 6 digits is no trunk group
        ("call 020 7946 09581", []),  # 12 digits: longer than a national number
        ("020 7946 0958 12", []),
        ("on 01.02.2024 12 people", []),  # a date, not a number
        ("+020 7946 0958", []),  # glued to a +: no country code starts with 0
        ("v1.020 7946 0958", []),  # glued to a dot: the tail of a dotted number
        ("ref-0042 020 7946 0958", ["020 7946 0958"]),  # the glued group alone is skipped
    ],
)
def test_national_number_edges(text: str, phones: list[str]) -> None:
    assert found(text, "phone") == phones


# --- network addresses, email, secrets --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "release v9.10.2.3.4",  # a dotted quad inside a longer version number
        "id x2001:db8::1",
        "2001:db8::1g",
        "1:2:3:4:5:6:7:8:9",
    ],
)
def test_address_running_on_into_more_characters_is_not_one(text: str) -> None:
    assert found(text, "ip_address") == []


@pytest.mark.parametrize(
    ("text", "emails"),
    [
        ("jane@example.com..bob@example.org", ["jane@example.com", "bob@example.org"]),
        ("a@example.com.1jane@example.org", ["a@example.com", "1jane@example.org"]),
        ("jane@example.com.@example.org", ["jane@example.com"]),  # no local part left
        ("jane.@example.com", []),
        ("x" * 64 + "@example.com", ["x" * 64 + "@example.com"]),  # RFC 5321: at most 64
        ("x" * 65 + "@example.com", []),
    ],
)
def test_email_local_part_edges(text: str, emails: list[str]) -> None:
    assert found(text, "email") == emails


def test_jwt_needs_an_alg_in_its_header() -> None:
    payload = b64url({"sub": "1234567890"})
    assert SECRETS.scan(f"t {b64url({'typ': 'JWT', 'kid': 'k1'})}.{payload}.sig") == []
    kinds = [f.kind for f in SECRETS.scan(f"t {b64url({'alg': 'HS256'})}.{payload}.sig")]
    assert kinds == ["secret:jwt"]


@pytest.mark.parametrize("after", ["-", "x", "_"])
def test_fixed_length_key_running_on_is_not_a_key(after: str) -> None:
    key = "AIza" + "SyD-" + A36[:31]
    assert [f.kind for f in SECRETS.scan(f"key={key} ok")] == ["secret:google_api_key"]
    assert SECRETS.scan(f"key={key}{after}more") == []
