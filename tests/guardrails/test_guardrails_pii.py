"""PII detection corpus: true positives and near-miss negatives for every kind."""

from __future__ import annotations

import pytest
from guardrail_corpus import JWT, PII_NEGATIVES, PII_POSITIVES, SECRET_POSITIVES, b64url
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.guardrails import PII_KINDS, GuardrailConfigError, pii_check
from policyd.guardrails._validators import iban_ok, luhn_ok
from policyd.guardrails.pii import SECRET_KINDS, resolve_kinds
from policyd.guardrails.stream import StreamScanner


def found(text: str, kind: str) -> list[str]:
    # built per call (compiled patterns are cached): the check itself is under test
    return [text[f.start : f.end] for f in pii_check(PII_KINDS).scan(text) if f.kind == kind]


def spans(kinds: list[str], text: str) -> list[tuple[str, int, int]]:
    return [(f.kind, f.start, f.end) for f in pii_check(kinds).scan(text)]


@pytest.mark.parametrize(("kind", "value"), PII_POSITIVES)
def test_true_positive_is_found_exactly(kind: str, value: str) -> None:
    text = f"Hello, my details: {value}. Thanks!"
    assert found(text, kind) == [value]


@pytest.mark.parametrize(("kind", "value"), PII_POSITIVES)
def test_true_positive_alone_and_at_edges(kind: str, value: str) -> None:
    assert found(value, kind) == [value]
    assert found(f"({value})", kind) == [value]


@pytest.mark.parametrize(("kind", "text"), PII_NEGATIVES)
def test_near_miss_is_not_found(kind: str, text: str) -> None:
    assert found(text, kind) == []


def test_each_kind_only_reports_itself() -> None:
    text = "mail jane.doe@example.com card 4111 1111 1111 1111 ip 10.1.2.3"
    kinds = [f.kind for f in pii_check(["credit_card"]).scan(text)]
    assert kinds == ["credit_card"]


def test_labels_are_typed_placeholders() -> None:
    text = "jane@example.com +44 20 7946 0958 4111111111111111 DE89370400440532013000 " * 1
    labels = {f.kind: f.label for f in pii_check(PII_KINDS).scan(text + "123-45-6789 8.8.8.8")}
    assert labels == {
        "email": "EMAIL",
        "phone": "PHONE",
        "credit_card": "CREDIT_CARD",
        "iban": "IBAN",
        "us_ssn": "US_SSN",
        "ip_address": "IP_ADDRESS",
    }


def test_card_followed_by_other_numbers_is_still_found() -> None:
    text = "card 4111 1111 1111 1111 2027 123 and 12 5555555555554444"
    assert found(text, "credit_card") == ["4111 1111 1111 1111", "5555555555554444"]


def test_many_findings_in_one_text_keep_order() -> None:
    text = " ; ".join(f"user{i}@example.com" for i in range(200))
    found_spans = [(f.start, f.end) for f in pii_check(PII_KINDS).scan(text)]
    assert len(found_spans) == 200
    assert found_spans == sorted(found_spans)


def test_phone_number_is_counted_once_not_also_as_a_shorter_number() -> None:
    findings = pii_check(PII_KINDS).scan("call +1 415-555-2671 now")
    assert [(f.kind, f.start, f.end) for f in findings] == [("phone", 5, 20)]


def test_unknown_kind_is_a_config_error_with_suggestion() -> None:
    with pytest.raises(GuardrailConfigError) as err:
        pii_check(["email", "credit_crad"])
    assert err.value.index == 1
    assert err.value.message == "unknown pii kind 'credit_crad'"
    assert err.value.hint == "did you mean 'credit_card'?"


def test_unknown_kind_like_no_other_lists_every_kind() -> None:
    with pytest.raises(GuardrailConfigError) as err:
        pii_check(["zzz"])
    assert err.value.index == 0
    assert err.value.hint == "choose from " + ", ".join((*PII_KINDS, *SECRET_KINDS))


def test_empty_kind_list_is_a_config_error() -> None:
    with pytest.raises(GuardrailConfigError) as err:
        pii_check([])
    assert err.value.message == "pii needs at least one kind"
    assert err.value.hint == "choose from " + ", ".join(PII_KINDS)


def test_one_kind_may_be_given_as_a_string() -> None:
    # `pii: email` in YAML: one kind, not the letters of a word
    check = pii_check("email")
    assert check.kinds == ("email",)
    assert [f.kind for f in check.scan("mail jane@example.com")] == ["email"]


def test_secret_expands_to_every_secret_kind_each_kind_once() -> None:
    kinds = resolve_kinds(["secret:jwt", "email", "secret", "email"])
    assert kinds == ["secret:jwt", "email", *(k for k in SECRET_KINDS if k != "secret:jwt")]


@pytest.mark.parametrize(("kind", "value"), SECRET_POSITIVES)
def test_each_secret_is_found_whole_under_its_kind(kind: str, value: str) -> None:
    # a private key is its whole block, not only the BEGIN line
    text = f"here:\n{value}\nbye"
    assert spans(["secret"], text) == [(kind, 6, 6 + len(value))]


def test_an_aws_secret_key_is_the_key_not_its_name() -> None:
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    text = f"aws_secret_access_key = {key}\n"
    assert spans(["secret:aws_secret_key"], text) == [("secret:aws_secret_key", 24, 64)]


def test_a_long_jwt_is_one_finding() -> None:
    # longer than the default 256-byte window: still one secret, not a cut-off head
    head, _, signature = JWT.split(".")
    token = ".".join([head, b64url({"sub": "1234567890", "roles": ["reader"] * 60}), signature])
    assert len(token) > 400
    assert spans(["secret:jwt"], f"token {token} end") == [("secret:jwt", 6, 6 + len(token))]


def test_a_value_inside_another_finding_is_not_counted_again() -> None:
    # a card number or SSN that is the local part of an e-mail address is part of the address
    for text in ("4111111111111111@example.com", "212-67-8901@example.com"):
        assert spans(list(PII_KINDS), text) == [("email", 0, len(text))]


def _streamed(kinds: list[str], text: str, cut: int) -> list[tuple[str, int, int]]:
    scanner = StreamScanner([pii_check(kinds)])
    out = scanner.feed(text[:cut]) + scanner.feed(text[cut:]) + scanner.finish()
    return [(f.kind, f.start, f.end) for f in out]


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("us_ssn", "ids 212-67-8901-536-22-1234 ok"),  # a list of SSNs, not a longer number
        ("phone", "call 415 555 2671 415 555 0199 now"),  # a list of phones
    ],
)
def test_a_stream_decides_a_number_only_once_what_follows_it_has_come(kind: str, text: str) -> None:
    whole = spans([kind], text)
    assert len(whole) == 2
    for cut in range(len(text) + 1):
        assert _streamed([kind], text, cut) == whole, cut


@pytest.mark.parametrize("kind", ["iban", "secret:stripe"])
def test_a_stream_of_words_is_released_as_it_comes(kind: str) -> None:
    # neither has a literal start: a stream holds back only from where one could begin
    # (two letters and two digits; sk_/rk_ live/test), not every run of letters
    scanner = StreamScanner([pii_check([kind])])
    text = "the quick brown fox jumps over the lazy dog and keeps on running"
    for word in text.split():
        assert scanner.feed(word + " ") == []
        assert scanner.safe >= scanner.position - len(word) - 1


# --- validators: invariants -----------------------------------------------------------------


def _luhn_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return d
    raise AssertionError("unreachable")


@settings(deadline=None)  # shared CI machines: no per-example deadline
@given(st.from_regex(r"4[0-9]{14}", fullmatch=True))
def test_visa_with_valid_check_digit_is_found(body: str) -> None:
    card = body + _luhn_digit(body)
    assert found(f"pay with {card} please", "credit_card") == [card]


@settings(deadline=None)  # shared CI machines: no per-example deadline
@given(st.from_regex(r"[0-9]{16}", fullmatch=True))
def test_random_16_digit_numbers_failing_luhn_are_never_flagged(number: str) -> None:
    if not luhn_ok(number):
        assert found(f"ref {number} ok", "credit_card") == []


@settings(max_examples=50, deadline=None)
@given(st.from_regex(r"[0-9]{16}", fullmatch=True))
def test_changing_one_digit_breaks_luhn(number: str) -> None:
    card = number[:-1] + _luhn_digit(number[:-1])
    wrong = card[:5] + str((int(card[5]) + 1) % 10) + card[6:]
    assert luhn_ok(card) and not luhn_ok(wrong)


def test_iban_check_digits_catch_every_single_digit_change() -> None:
    iban = "DE89370400440532013000"
    assert iban_ok(iban)
    for i in range(4, len(iban)):
        for d in "0123456789":
            if d != iban[i]:
                assert not iban_ok(iban[:i] + d + iban[i + 1 :])
