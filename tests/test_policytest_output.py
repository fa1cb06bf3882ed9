"""PolicyTest cases with an ``output``: the answer is checked by the output guardrails,
``output.*`` expect paths read the verdict, and coverage counts output guardrails.

Also ``policyd eval`` showing the redacted messages (text only; ``--json`` is to_dict()).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policyd import document, fields
from policyd.bundle import load_bundle
from policyd.cli import main
from policyd.engine import Engine
from policyd.testing import run_tests

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schemas" / "policyd-v1.schema.json"

POLICY = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: bot}
context: {tier: string}
models:
  small: {litellm: openai/gpt-4o-mini}
tiers:
  economy: {targets: [{model: small}]}
routing: {default: economy}
guardrails:
  input:
    - {name: pii-in, pii: [email], action: redact}
    - {name: free-blocked, when: request.tier == "free", message: upgrade}
  output:
    - {name: cards, pii: [credit_card], action: redact}
    - {name: no-internal, deny_terms: [internal-only], action: block, message: withheld}
    - {name: maybe-rude, deny_patterns: ['(?i)\\bstupid\\b'], action: warn}
"""
CARD = "4111 1111 1111 1111"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def cases_file(cases: str) -> str:
    return (
        "apiVersion: policyd/v1\nkind: PolicyTest\nmetadata: {name: t}\npolicy: bot\ncases:\n"
        + textwrap.indent(textwrap.dedent(cases), "  ")
    )


def bundle_with(tmp_path: Path, cases: str) -> Path:
    write(tmp_path, "bot.yaml", POLICY)
    write(tmp_path, "bot.test.yaml", cases_file(cases))
    return tmp_path


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"policyd {' '.join(args)} crashed:\n{result.output}") from (
            result.exception
        )
    return result


def run_bundle(path: Path) -> tuple[list[Any], Any]:
    bundle = load_bundle(str(path))
    assert [d for d in bundle.diagnostics if d.is_error] == []
    return run_tests(bundle)


# --- output.* paths ------------------------------------------------------------------------


def test_output_paths_read_the_verdict_and_the_shown_text(tmp_path: Path) -> None:
    results, _ = run_bundle(
        bundle_with(
            tmp_path,
            f"""\
            - name: redacted
              request: {{tier: pro, messages: [{{role: user, content: hi}}]}}
              output: "card {CARD} is stupid"
              expect: {{tier: economy, output.allowed: true, output.redacted: true,
                       output.text: "card [CREDIT_CARD] is stupid",
                       output.findings.0.label: CREDIT_CARD, output.findings.0.guardrail: cards,
                       output.warnings: ["maybe-rude: found PATTERN (pattern:0)"],
                       output.trace.0: {{rule: cards, outcome: redact}}}}
            - name: blocked
              request: {{tier: pro, messages: [{{role: user, content: hi}}]}}
              output: "this is internal-only"
              expect: {{output.allowed: false, output.blocked_by: no-internal,
                       output.message: withheld, output: {{redacted: false}}}}
            """,
        )
    )
    assert [(r.case, r.passed, r.error, r.mismatches) for r in results] == [
        ("redacted", True, None, ()),
        ("blocked", True, None, ()),
    ]


def test_a_wrong_output_expectation_fails_with_expected_and_actual(tmp_path: Path) -> None:
    results, _ = run_bundle(
        bundle_with(
            tmp_path,
            f"""\
            - name: wrong
              request: {{tier: pro, messages: []}}
              output: "card {CARD}"
              expect: {{output.text: "card {CARD}", output.blocked_by: cards}}
            """,
        )
    )
    (result,) = results
    assert not result.passed
    assert [m.to_dict() for m in result.mismatches] == [
        {
            "path": "output.text",
            "expected": f"card {CARD}",
            "actual": "card [CREDIT_CARD]",
            "missing": False,
        },
        {"path": "output.blocked_by", "expected": "cards", "actual": None, "missing": False},
    ]


def test_the_answer_is_checked_against_the_cases_request_and_clock(tmp_path: Path) -> None:
    policy = POLICY.replace(
        "    - {name: cards,",
        '    - {name: late, when: now.getHours("UTC") >= 22, action: block}\n    - {name: cards,',
    )
    write(tmp_path, "bot.yaml", policy)
    cases = """\
    - {name: day, now: "2026-11-24T12:00:00Z", request: {tier: pro, messages: []},
       output: ok, expect: {output.allowed: true}}
    - {name: night, now: "2026-11-24T23:00:00Z", request: {tier: pro, messages: []},
       output: ok, expect: {output.allowed: false, output.blocked_by: late}}
    """
    write(tmp_path, "bot.test.yaml", cases_file(cases))
    results, _ = run_bundle(tmp_path)
    assert [(r.case, r.passed) for r in results] == [("day", True), ("night", True)]


def test_an_answer_to_a_blocked_request_is_an_error_not_a_pass(tmp_path: Path) -> None:
    results, _ = run_bundle(
        bundle_with(
            tmp_path,
            """\
            - {name: blocked, request: {tier: free, messages: []}, output: hi,
               expect: {allowed: false}}
            """,
        )
    )
    (result,) = results
    assert not result.passed
    assert result.error is not None
    assert "blocked by free-blocked, so there is no answer to check" in result.error


def test_output_paths_without_an_output_are_a_check_error_at_the_case(tmp_path: Path) -> None:
    bundle = load_bundle(
        str(
            bundle_with(
                tmp_path,
                """\
                - name: forgot
                  request: {messages: []}
                  expect: {allowed: true, output.redacted: true}
                """,
            )
        )
    )
    (error,) = [d for d in bundle.diagnostics if d.is_error]
    assert (error.code, error.line) == ("PD104", 6)
    assert error.message.endswith("expect has output.redacted but the case has no output to check")
    assert error.hint == "add output: <the model's answer> to the case"


def test_output_must_be_text(tmp_path: Path) -> None:
    cases = "- {name: c, request: {messages: []}, output: [a], expect: {allowed: true}}\n"
    bundle = load_bundle(str(bundle_with(tmp_path, cases)))
    assert [(d.code, d.message) for d in bundle.diagnostics if d.is_error] == [
        ("PD102", "'output' must be a string, not a list")
    ]


# --- the schema says what the model says ------------------------------------------------------

EXPECT_KEYS = ["allowed", "output", "output.text", "outputs", "trace.0.rule", "my.output.x"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(EXPECT_KEYS), min_size=1, max_size=3, unique=True),
    st.sampled_from(["absent", None, "an answer", 3]),
)
def test_schema_and_model_agree_on_output_cases(keys: list[str], output: Any) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    case: dict[str, Any] = {"name": "c", "request": {}, "expect": dict.fromkeys(keys, 1)}
    if output != "absent":
        case["output"] = output
    doc = {
        "apiVersion": "policyd/v1",
        "kind": "PolicyTest",
        "metadata": {"name": "t"},
        "policy": "p",
        "cases": [case],
    }
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(doc)
    try:
        document.PolicyTest.model_validate(doc)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert schema_ok == model_ok, doc
    needs_output = any(k == "output" or k.startswith("output.") for k in keys)
    has_output = output not in ("absent", None)
    assert model_ok == (output != 3 and (has_output or not needs_output))


# --- coverage ---------------------------------------------------------------------------------


def test_coverage_counts_output_guardrails_that_block_redact_or_warn(tmp_path: Path) -> None:
    _, coverage = run_bundle(
        bundle_with(
            tmp_path,
            f"""\
            - {{name: clean, request: {{tier: pro, messages: []}}, output: fine,
               expect: {{output.allowed: true}}}}
            - {{name: card, request: {{tier: pro, messages: []}}, output: "{CARD} stupid",
               expect: {{output.redacted: true}}}}
            """,
        )
    )
    assert {("output guardrail", n) for n in ("cards", "no-internal", "maybe-rude")} <= (
        coverage.defined["bot"]
    )
    assert coverage.missed()["bot"] == [
        ("guardrail", "free-blocked"),
        ("guardrail", "pii-in"),
        ("output guardrail", "no-internal"),
    ]


def test_policyd_test_coverage_lists_missed_output_guardrails(tmp_path: Path) -> None:
    bundle_with(
        tmp_path, "- {name: c, request: {tier: pro, messages: []}, expect: {tier: economy}}"
    )
    text = run("test", str(tmp_path), "--coverage")
    assert text.exit_code == 0, text.output
    assert "  bot: output guardrail cards\n" in text.output
    assert "  bot: guardrail pii-in\n" in text.output
    as_json = json.loads(run("test", str(tmp_path), "--coverage", "--format", "json").output)
    assert ["output guardrail", "no-internal"] in as_json["not_covered"]["bot"]


def test_the_shipped_support_bot_cases_cover_every_rule_and_guardrail() -> None:
    result = run("test", str(REPO / "policies"), "--coverage", "--format", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["failed"] == 0
    assert "support-bot" not in payload["not_covered"]


# --- policyd eval shows the redacted messages ---------------------------------------------------

REDACTED_REQUEST = json.dumps(
    {
        "tier": "pro",
        "messages": [
            {"role": "system", "content": "be brief\nand kind"},
            {"role": "user", "content": "I am jane@example.com"},
        ],
    }
)


def test_eval_text_shows_the_messages_the_model_receives(tmp_path: Path) -> None:
    write(tmp_path, "bot.yaml", POLICY)
    request = write(tmp_path, "r.json", REDACTED_REQUEST)
    result = run("eval", str(tmp_path), "--request", str(request))
    assert result.exit_code == 0, result.output
    assert (
        "messages  redacted by pii-in\n"
        "  [0] system: be brief\n"
        "              and kind\n"
        "  [1] user: I am [EMAIL]\n"
    ) in result.output
    assert "jane@example.com" not in result.output


def test_eval_shows_no_messages_when_nothing_was_redacted(tmp_path: Path) -> None:
    write(tmp_path, "bot.yaml", POLICY)
    request = write(
        tmp_path, "r.json", '{"tier": "pro", "messages": [{"role": "user", "content": "hi"}]}'
    )
    result = run("eval", str(tmp_path), "--request", str(request))
    assert result.exit_code == 0, result.output
    assert "messages" not in result.output


def test_eval_json_stays_exactly_the_decisions_to_dict(tmp_path: Path) -> None:
    write(tmp_path, "bot.yaml", POLICY)
    request = write(tmp_path, "r.json", REDACTED_REQUEST)
    fixed = "2026-11-24T12:00:00Z"
    result = run("eval", str(tmp_path), "--request", str(request), "--json", "--now", fixed)
    assert result.exit_code == 0, result.output
    engine = Engine.from_path(str(tmp_path), clock=lambda: fields.parse_timestamp(fixed))
    try:
        expected = engine.decide(json.loads(REDACTED_REQUEST)).to_dict()
    finally:
        engine.close()
    assert json.loads(result.output) == json.loads(json.dumps(expected, default=str))
    assert "messages" not in json.loads(result.output)


@pytest.mark.parametrize("content", [[{"type": "text", "text": "mail a@b.example"}]])
def test_eval_shows_non_text_content_as_json(tmp_path: Path, content: Any) -> None:
    write(tmp_path, "bot.yaml", POLICY)
    request = write(
        tmp_path,
        "r.json",
        json.dumps({"tier": "pro", "messages": [{"role": "user", "content": content}]}),
    )
    result = run("eval", str(tmp_path), "--request", str(request))
    assert result.exit_code == 0, result.output
    assert '  [0] user: [{"type": "text", "text": "mail [EMAIL]"}]\n' in result.output
