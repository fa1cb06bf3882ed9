"""Redaction of texts and chat messages, and the guarantee that values never leak."""

from __future__ import annotations

import copy
import json

import pytest
from guardrail_corpus import PII_POSITIVES, SECRET_POSITIVES
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.guardrails import (
    PII_KINDS,
    Finding,
    combine_checks,
    injection_check,
    json_schema_check,
    pattern_check,
    pii_check,
    redact,
    redact_messages,
    scan_messages,
)

PII = pii_check(PII_KINDS)


def f(start: int, end: int, label: str) -> Finding:
    return Finding("x", start, end, label)


def test_redact_replaces_each_finding_with_its_placeholder() -> None:
    text = "mail jane@example.com or card 4111 1111 1111 1111."
    assert redact(text, PII.scan(text)) == "mail [EMAIL] or card [CREDIT_CARD]."


def test_overlapping_findings_merge_under_the_longest_label() -> None:
    text = "0123456789"
    assert redact(text, [f(1, 4, "A"), f(2, 8, "B"), f(7, 9, "C")]) == "0[B]9"


def test_touching_findings_stay_separate_and_order_does_not_matter() -> None:
    text = "aaaabbbbcc"
    findings = [f(4, 8, "B"), f(0, 4, "A")]
    assert redact(text, findings) == "[A][B]cc"


def test_whole_text_findings_are_not_redacted() -> None:
    assert redact("keep me", [Finding("json_schema", -1, -1, "JSON_SCHEMA")]) == "keep me"


@settings(deadline=None)  # shared CI machines: no per-example deadline
@given(
    st.text(max_size=60),
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), max_size=6),
)
def test_redaction_never_keeps_a_character_of_a_finding(
    text: str, raw: list[tuple[int, int]]
) -> None:
    findings = [f(s, min(s + n, len(text)), "X") for s, n in raw if s < len(text)]
    out = redact(text, findings)
    covered = {i for x in findings for i in range(x.start, x.end)}
    kept = "".join(ch for i, ch in enumerate(text) if i not in covered)
    assert out.replace("[X]", "") == kept


MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "I am jane@example.com, card 4111111111111111", "name": "j"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "call +44 20 7946 0958"},
            {"type": "image_url", "image_url": {"url": "https://x.test/jane@example.com.png"}},
            {"type": "text", "text": "nothing here"},
        ],
    },
    {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]},
]


def test_redact_messages_keeps_structure_roles_and_other_parts() -> None:
    before = copy.deepcopy(MESSAGES)
    out, counts = redact_messages(MESSAGES, PII)
    assert before == MESSAGES  # input untouched
    assert out == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "I am [EMAIL], card [CREDIT_CARD]", "name": "j"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "call [PHONE]"},
                MESSAGES[2]["content"][1],  # type: ignore[index]
                {"type": "text", "text": "nothing here"},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]},
    ]
    assert counts == {"CREDIT_CARD": 1, "EMAIL": 1, "PHONE": 1}
    assert out[1] is not MESSAGES[1]


def test_redact_messages_accepts_a_plain_function() -> None:
    out, counts = redact_messages(
        [{"role": "user", "content": "x SECRET y"}],
        lambda t: [
            Finding("pattern", t.find("SECRET"), t.find("SECRET") + 6, "PATTERN", "pattern:0")
        ],
    )
    assert out == [{"role": "user", "content": "x [PATTERN] y"}]
    assert counts == {"PATTERN": 1}


def test_scan_messages_locates_findings() -> None:
    located = [(m.message, m.part, m.finding.kind) for m in scan_messages(MESSAGES, PII)]
    assert located == [(1, None, "email"), (1, None, "credit_card"), (2, 0, "phone")]


ALL_VALUES = [value for _, value in PII_POSITIVES + SECRET_POSITIVES]


@pytest.mark.parametrize("value", ALL_VALUES, ids=lambda v: v[:20])
def test_no_output_of_the_library_contains_the_raw_value(value: str) -> None:
    """Findings, redacted messages and counts are all that reaches a decision."""
    check = combine_checks(
        [PII, pii_check(["secret"]), pattern_check([r"\d{4}"]), injection_check()]
    )
    messages = [
        {"role": "user", "content": f"here: {value} ok"},
        {"role": "user", "content": [{"type": "text", "text": f"again {value}"}]},
    ]
    findings = [m.finding for m in scan_messages(messages, check)]
    redacted, counts = redact_messages(messages, check)
    assert findings
    blob = repr(findings) + json.dumps(redacted) + json.dumps(counts)
    assert value not in blob
    # nor any long piece of it (a partial redaction would leave one behind)
    pieces = {value[i : i + 8] for i in range(0, max(1, len(value) - 8))}
    assert not any(p in blob for p in pieces if len(p) == 8 and p.strip())


def test_json_schema_failure_detail_never_quotes_the_output() -> None:
    check = json_schema_check(
        {"type": "object", "properties": {"card": {"type": "integer"}}, "required": ["name"]}
    )
    findings = check.scan('{"card": "4111111111111111"}')
    assert findings and "4111111111111111" not in repr(findings)
    assert findings[0].detail is not None and "missing: name" in findings[0].detail
    bad = check.scan('{"card": 4111111111111111,, }')
    assert bad and "4111" not in repr(bad)
