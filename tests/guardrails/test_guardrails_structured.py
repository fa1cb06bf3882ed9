"""Output-only checks: json_schema and max_chars."""

from __future__ import annotations

import pytest

from policyd.guardrails import GuardrailConfigError, json_schema_check, max_chars_check, redact

SCHEMA = {
    "type": "object",
    "required": ["name", "email"],
    "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
    "additionalProperties": False,
}


def test_valid_json_passes() -> None:
    check = json_schema_check(SCHEMA)
    assert check.scan('  {"name": "Jo", "email": "jo@example.com"}\n') == []


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("Sure! {}", "not valid JSON: Expecting value at line 1 column 1"),
        ('{"name": "Jo",}', "not valid JSON"),
        ('{"name": "Jo"}', "schema rule /required failed (missing: email)"),
        ('{"name": 5, "email": "jo@example.com"}', "schema rule /properties/name/type failed"),
        ('{"name": "Jo", "email": "not-an-email"}', "/properties/email/format failed"),
        ('{"name": "Jo", "email": "a@b.co", "x": 1}', "/additionalProperties failed"),
        ("[1, 2]", "schema rule /type failed"),
        ("", "not valid JSON"),
    ],
)
def test_invalid_output_is_one_whole_text_finding(text: str, detail: str) -> None:
    [finding] = json_schema_check(SCHEMA).scan(text)
    assert (finding.kind, finding.start, finding.end, finding.label) == (
        "json_schema",
        -1,
        -1,
        "JSON_SCHEMA",
    )
    assert finding.detail is not None and detail in finding.detail


def test_several_errors_are_counted() -> None:
    [finding] = json_schema_check(SCHEMA).scan('{"name": 1, "email": 2}')
    assert finding.detail is not None and "1 more error" in finding.detail


def test_code_fences_are_stripped_only_when_asked() -> None:
    fenced = '```json\n{"name": "Jo", "email": "jo@example.com"}\n```'
    assert json_schema_check(SCHEMA).scan(fenced) != []
    assert json_schema_check(SCHEMA, strip_code_fences=True).scan(fenced) == []


def test_deeply_nested_json_is_a_finding_not_a_crash() -> None:
    [finding] = json_schema_check({"type": "array"}).scan("[" * 100_000 + "]" * 100_000)
    assert finding.kind == "json_schema"


def test_schema_draft_follows_dollar_schema() -> None:
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer",
              "exclusiveMaximum": True, "maximum": 5}  # fmt: skip
    check = json_schema_check(draft4)
    assert check.scan("4") == [] and check.scan("5") != []


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "objekt"}, "json_schema is not a valid JSON Schema at /type"),
        ({"required": "name"}, "not a valid JSON Schema at /required"),
        ("object", "json_schema must be a mapping"),
    ],
)
def test_invalid_schema_is_a_config_error(schema: object, message: str) -> None:
    with pytest.raises(GuardrailConfigError, match=message) as err:
        json_schema_check(schema)  # type: ignore[arg-type]
    assert err.value.hint


def test_max_chars_finding_covers_the_overflow() -> None:
    check = max_chars_check(5)
    assert check.scan("12345") == []
    [finding] = check.scan("1234567")
    assert (finding.kind, finding.start, finding.end, finding.label) == (
        "max_chars",
        5,
        7,
        "MAX_CHARS",
    )
    assert finding.detail == "7 characters, limit 5"
    assert redact("1234567", [finding]) == "12345[MAX_CHARS]"


@pytest.mark.parametrize("limit", [-1, 2.5, "10", True])
def test_max_chars_needs_a_whole_number(limit: object) -> None:
    with pytest.raises(GuardrailConfigError, match="whole number"):
        max_chars_check(limit)  # type: ignore[arg-type]
