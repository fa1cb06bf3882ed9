"""PII detection corpus: true positives and near-miss negatives for every kind."""

from __future__ import annotations

import pytest
from guardrail_corpus import PII_NEGATIVES, PII_POSITIVES
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.guardrails import PII_KINDS, GuardrailConfigError, pii_check
from policyd.guardrails._validators import iban_ok, luhn_ok

ALL = pii_check(PII_KINDS)


def found(text: str, kind: str) -> list[str]:
    return [text[f.start : f.end] for f in ALL.scan(text) if f.kind == kind]


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
    labels = {f.kind: f.label for f in ALL.scan(text + "123-45-6789 8.8.8.8")}
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
    spans = [(f.start, f.end) for f in ALL.scan(text)]
    assert len(spans) == 200
    assert spans == sorted(spans)


def test_phone_number_is_counted_once_not_also_as_a_shorter_number() -> None:
    findings = ALL.scan("call +1 415-555-2671 now")
    assert [(f.kind, f.start, f.end) for f in findings] == [("phone", 5, 20)]


def test_unknown_kind_is_a_config_error_with_suggestion() -> None:
    with pytest.raises(GuardrailConfigError) as err:
        pii_check(["email", "credit_crad"])
    assert err.value.index == 1
    assert "credit_crad" in err.value.message
    assert err.value.hint is not None and "credit_card" in err.value.hint


def test_empty_kind_list_is_a_config_error() -> None:
    with pytest.raises(GuardrailConfigError):
        pii_check([])


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
