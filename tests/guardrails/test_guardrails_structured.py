"""Output-only checks: json_schema and max_chars."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from policyd.bundle import load_bundle
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


# --------------------------------------------------------------------------- bounded (#11)


def test_schema_patterns_run_on_re2() -> None:
    # ^([a-z0-9]+-?)*$ took 3.5 s on 26 characters with Python's re; (a+)+$ on 40 far longer
    check = json_schema_check({"type": "string", "pattern": "^(a+)+$"})
    assert check.scan('"' + "a" * 40 + '!"')[0].detail == "schema rule /pattern failed"
    check = json_schema_check({"type": "string", "pattern": "^([a-z0-9]+-?)*$"})
    assert check.scan('"' + "a" * 25 + '!"')[0].detail == "schema rule /pattern failed"
    assert check.scan('"abc-def"') == []
    props = json_schema_check(
        {
            "type": "object",
            "patternProperties": {"^(a+)+$": {"type": "integer"}},
            "additionalProperties": False,
        }
    )
    assert props.scan('{"aaaa": 1}') == []
    assert props.scan('{"' + "a" * 40 + '!": 1}')[0].detail == (
        "schema rule /additionalProperties failed"
    )


def test_a_schema_pattern_re2_cannot_run_is_a_config_error() -> None:
    with pytest.raises(GuardrailConfigError, match=r"/properties/a/pattern cannot run on RE2"):
        json_schema_check({"properties": {"a": {"type": "string", "pattern": "^(?=x)"}}})


def test_deep_documents_under_a_recursive_ref_are_a_verdict() -> None:
    check = json_schema_check({"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
                               "$ref": "#/$defs/n"})  # fmt: skip
    [finding] = check.scan("[" * 500 + "]" * 500)
    assert finding.detail == "JSON nested deeper than 64 levels, not validated"
    assert check.scan("[" * 10 + "]" * 10) == []


def test_a_number_too_long_to_read_is_a_verdict() -> None:
    [finding] = json_schema_check({"type": "number"}).scan("1" * 4301)
    assert finding.detail == "not valid JSON: a number is too long to read"


def test_errors_collected_are_capped() -> None:
    check = json_schema_check({"type": "array", "items": {"type": "string"}})
    [finding] = check.scan("[" + ",".join(["1"] * 200_000) + "]")
    assert finding.detail == "schema rule /items/type failed; 100 or more other errors"


def test_check_names_the_schema_pattern_re2_cannot_run(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: policyd/v1
            kind: Policy
            metadata: {name: demo}
            models:
              small: {litellm: openai/gpt-4o-mini}
            tiers: {t: {targets: [{model: small}]}}
            routing: {default: t}
            guardrails:
              output:
                - name: shape
                  json_schema:
                    type: object
                    properties:
                      id: {type: string, pattern: '^(?!x)\\w+$'}
            """
        )
    )
    found = [d for d in load_bundle(tmp_path).diagnostics if "cannot run on RE2" in d.message]
    assert len(found) == 1, [str(d) for d in load_bundle(tmp_path).diagnostics]
    assert (found[0].line, found[0].column) == (14, 39)  # the pattern value
    assert "/properties/id/pattern" in found[0].message
