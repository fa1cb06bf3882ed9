"""Structure checks: each YAML document against the typed model, with exact positions and hints.

Every test writes a small policy, loads it the way ``policyd check`` does, and asserts the
exact problems: (code, line, column) and what the message and hint tell the author.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from policyd import document
from policyd.bundle import load_bundle
from policyd.diagnostics import Diagnostic
from policyd.loader import load_text
from policyd.structure import to_model


def check(tmp_path: Path, text: str) -> list[Diagnostic]:
    """Every diagnostic for ``text`` saved as a policy file (line 1 is the text's first line)."""
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_bundle(path).diagnostics


def where(diagnostics: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.column) for d in diagnostics]


def only(diagnostics: list[Diagnostic]) -> Diagnostic:
    assert len(diagnostics) == 1, [str(d) for d in diagnostics]
    return diagnostics[0]


POLICY = """\
apiVersion: policyd/v1
kind: Policy
metadata:
  name: demo
"""


# --- unknown keys ----------------------------------------------------------------------------


def test_unknown_key_points_at_the_key_and_suggests_the_close_one(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            POLICY
            + """\
models:
  small: {litellm: openai/gpt-4o-mini}
tiers:
  economy:
    targets: [{model: small}]
    fallbacks: [small]
""",
        )
    )
    assert where([d]) == [("PD101", 10, 5)]
    assert d.message == "unknown key 'fallbacks'"
    assert d.hint == "did you mean 'fallback'?"


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(tmp_path: Path) -> None:
    d = only(check(tmp_path, POLICY + "spec: {}\n"))
    assert where([d]) == [("PD101", 5, 1)]
    assert d.hint is not None and d.hint.startswith("allowed keys here: ")
    assert "routing" in d.hint and "budgets" in d.hint


def test_unknown_key_inside_a_list_item(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        POLICY
        + """\
routing:
  default: economy
  rules:
    - name: r1
      when: "true"
      tire: premium
""",
    )
    # 'tier' is also missing, but one misspelt key is one error: the unknown key, whose
    # hint names the missing one.
    assert where(diagnostics) == [("PD101", 10, 7)]
    assert diagnostics[0].hint == "did you mean 'tier'?"


def test_unknown_key_in_metadata_of_a_policy_test(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            """\
            apiVersion: policyd/v1
            kind: PolicyTest
            metadata: {name: t, lables: {team: x}}
            policy: demo
            cases: [{name: c, request: {}, expect: {allowed: true}}]
            """,
        )
    )
    assert (d.code, d.line, d.column, d.hint) == ("PD101", 3, 21, "did you mean 'labels'?")


@settings(max_examples=60, deadline=None)
@given(
    key=st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True).filter(
        lambda k: k not in {"name", "version", "description", "labels"}
    )
)
def test_any_unknown_metadata_key_is_reported_exactly_where_it_is(key: str) -> None:
    text = f"apiVersion: policyd/v1\nkind: Policy\nmetadata:\n  name: demo\n  {key}: x\n"
    loaded = load_text(text, "p.yaml")
    _, diagnostics = to_model(loaded.documents[0])
    d = only(diagnostics)
    assert (d.code, d.line, d.column, d.message) == ("PD101", 5, 3, f"unknown key {key!r}")
    assert d.hint is not None
    if d.hint.startswith("did you mean "):
        assert d.hint.split("'")[1] in {"name", "version", "description", "labels"}


# --- types -----------------------------------------------------------------------------------


def test_quoted_number_where_an_integer_is_expected(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            POLICY
            + """\
models:
  small: {litellm: openai/gpt-4o-mini}
tiers:
  economy:
    strategy: weighted
    targets:
      - {model: small, weight: "80"}
""",
        )
    )
    assert where([d]) == [("PD102", 11, 32)]
    assert d.message == "'weight' must be an integer, not a string"
    assert d.hint == "remove the quotes: 80"


def test_yaml_11_boolean_word_is_a_string_and_the_hint_says_so(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            POLICY
            + """\
guardrails:
  input:
    - name: injection
      injection: on
""",
        )
    )
    assert where([d]) == [("PD102", 8, 18)]
    assert d.message == "'injection' must be true or false, not a string"
    assert d.hint is not None and "only true and false are booleans: write true" in d.hint


def test_boolean_where_text_is_expected_suggests_quoting(tmp_path: Path) -> None:
    d = only(check(tmp_path, POLICY + "  labels: {beta: true}\n"))
    assert where([d]) == [("PD102", 5, 18)]
    assert d.hint == 'quote it ("true") if you mean the text'


def test_list_where_a_mapping_is_expected(tmp_path: Path) -> None:
    d = only(check(tmp_path, POLICY + "models: [gpt-4o]\n"))
    assert where([d]) == [("PD102", 5, 9)]
    assert d.message == "'models' must be a mapping, not a list"


# --- missing keys ----------------------------------------------------------------------------


def test_missing_key_points_at_the_mapping_that_lacks_it(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            POLICY
            + """\
routing:
  timeout: 30s
""",
        )
    )
    assert where([d]) == [("PD103", 5, 1)]
    assert d.message == "'routing' is missing required key 'default'"
    assert d.hint == "add default: ..."


def test_missing_metadata_is_reported_on_the_document(tmp_path: Path) -> None:
    d = only(check(tmp_path, "apiVersion: policyd/v1\nkind: Policy\n"))
    assert where([d]) == [("PD103", 1, 1)]
    assert d.message == "the document is missing required key 'metadata'"


def test_missing_key_written_as_for_in_a_flow_mapping(tmp_path: Path) -> None:
    d = only(check(tmp_path, POLICY + "routing: {default: x, cooldown: {after_failures: 3}}\n"))
    assert (d.code, d.line, d.column) == ("PD103", 5, 23)
    assert d.message == "'cooldown' is missing required key 'for'"


# --- values ----------------------------------------------------------------------------------


def test_misspelt_choice_gets_did_you_mean(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            POLICY
            + """\
tiers:
  economy:
    strategy: weigthed
    targets: [{model: small}]
""",
        )
    )
    assert where([d]) == [("PD104", 7, 15)]
    assert d.message == (
        "invalid value 'weigthed' for 'strategy': expected 'weighted', 'ordered' or 'cheapest'"
    )
    assert d.hint == "did you mean 'weighted'?"


def test_invalid_choice_in_a_list_names_the_item(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            POLICY
            + """\
guardrails:
  input:
    - {name: pii, pii: [email, ssn], action: redact}
""",
        )
    )
    assert where([d]) == [("PD104", 7, 32)]
    assert d.message.startswith("invalid value 'ssn' for item 2 of 'pii': expected 'email'")


def test_duration_without_unit_and_with_a_wrong_unit(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        POLICY
        + """\
routing:
  default: economy
  timeout: 30
  retry: {base: 1.5, max: 30sec}
""",
    )
    assert where(diagnostics) == [("PD104", 7, 12), ("PD104", 8, 17), ("PD104", 8, 27)]
    no_unit, fraction, bad_unit = diagnostics
    assert no_unit.message == "'timeout': duration 30 has no unit"
    assert no_unit.hint == "write 30s for seconds, or use ms, m, h or d"
    assert fraction.message == "'base': duration 1.5 has no unit"
    assert bad_unit.message == "'max': invalid duration '30sec'"
    assert bad_unit.hint is not None and "250ms, 30s, 5m, 1h, 7d" in bad_unit.hint


def test_timestamp_needs_a_zone(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            """\
            apiVersion: policyd/v1
            kind: PolicyTest
            metadata: {name: t}
            policy: demo
            now: "2026-12-01T09:00:00"
            cases: [{name: c, request: {}, expect: {allowed: true}}]
            """,
        )
    )
    assert where([d]) == [("PD104", 5, 6)]
    assert d.message == "'now': timestamp '2026-12-01T09:00:00' has no time zone"
    assert d.hint == "add Z or an offset such as +01:00"


def test_numbers_out_of_range_say_the_bound(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        POLICY
        + """\
routing: {default: economy, retry: {attempts: 0}}
budgets:
  - {name: b, key: '"all"', window: calendar_day, limit: {usd: -1}}
""",
    )
    assert where(diagnostics) == [("PD104", 5, 47), ("PD104", 7, 64)]
    assert diagnostics[0].message == "'attempts' must be at least 1, not 0"
    assert diagnostics[1].message == "'usd' must be at least 0, not -1"


def test_empty_list_and_empty_string(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        POLICY
        + """\
tiers:
  economy: {targets: []}
cache:
  rules: [{name: c, when: "", ttl: 1h}]
""",
    )
    assert where(diagnostics) == [("PD104", 6, 22), ("PD104", 8, 27)]
    assert diagnostics[0].message == "'targets' needs at least 1 item, not 0"
    assert diagnostics[1].message == "'when' must not be empty"


def test_invalid_name(tmp_path: Path) -> None:
    d = only(check(tmp_path, "apiVersion: policyd/v1\nkind: Policy\nmetadata: {name: my bot}\n"))
    assert where([d]) == [("PD104", 3, 18)]
    assert d.message == "invalid name 'my bot' for 'name'"
    assert d.hint is not None and "letters, digits" in d.hint


def test_model_level_rule_has_its_own_hint(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        POLICY
        + """\
budgets:
  - name: b
    key: '"all"'
    window: calendar_day
    limit: {}
    on_exceed: {action: downgrade}
prompts:
  p: {versions: {v1: {}}}
""",
    )
    assert where(diagnostics) == [("PD104", 9, 12), ("PD104", 10, 16), ("PD104", 12, 22)]
    limit, downgrade, prompt = diagnostics
    assert (
        limit.message == "'limit': a limit needs at least one of usd, tokens, requests, concurrent"
    )
    assert limit.hint == "for example {usd: 500} or {requests: 600, tokens: 200000}"
    assert downgrade.hint == "add tier: <name of a cheaper tier>"
    assert prompt.message == "'v1': a prompt version needs exactly one of file or template"


# --- values that may take several forms (a budget window) -------------------------------------

BUDGET = (
    POLICY
    + """\
budgets:
  - name: b
    key: '"all"'
    limit: {requests: 10}
"""
)


def test_a_value_of_no_form_gets_one_message_listing_the_forms(tmp_path: Path) -> None:
    d = only(check(tmp_path, BUDGET + "    window: calendar_year\n"))
    assert where([d]) == [("PD104", 9, 13)]
    assert d.message == (
        "invalid value 'calendar_year' for 'window': expected 'calendar_day', "
        "'calendar_week' or 'calendar_month', or {rolling: ...}"
    )
    assert d.hint == "did you mean 'calendar_day'?"


def test_a_value_of_one_forms_shape_reports_only_whats_wrong_inside(tmp_path: Path) -> None:
    d = only(check(tmp_path, BUDGET + "    window: {rolling: 5}\n"))
    assert where([d]) == [("PD104", 9, 23)]
    assert d.message == "'rolling': duration 5 has no unit"


def test_context_declaration_must_be_a_type_name_or_a_mapping(tmp_path: Path) -> None:
    d = only(check(tmp_path, POLICY + "context: {tier: 3}\n"))
    assert where([d]) == [("PD102", 5, 17)]
    assert d.message == "'tier' must be a string or a mapping, not an integer"


# --- apiVersion and kind ---------------------------------------------------------------------


def test_unknown_api_version(tmp_path: Path) -> None:
    d = only(check(tmp_path, "apiVersion: policyd/v2\nkind: Policy\nmetadata: {name: a}\n"))
    assert (d.code, d.line, d.column) == ("PD105", 1, 13)
    assert d.hint == "use apiVersion: policyd/v1"


def test_missing_api_version_is_reported_at_the_document_start(tmp_path: Path) -> None:
    d = only(check(tmp_path, "# a comment\nkind: Policy\nmetadata: {name: a}\n"))
    assert (d.code, d.line, d.column, d.message) == ("PD105", 2, 1, "document has no apiVersion")


def test_unknown_kind_suggests_the_close_one(tmp_path: Path) -> None:
    d = only(check(tmp_path, "apiVersion: policyd/v1\nkind: Polcy\nmetadata: {name: a}\n"))
    assert (d.code, d.line, d.column) == ("PD106", 2, 7)
    assert d.hint == "did you mean 'Policy'?"


def test_missing_kind_lists_the_kinds(tmp_path: Path) -> None:
    d = only(check(tmp_path, "apiVersion: policyd/v1\nmetadata: {name: a}\n"))
    assert (d.code, d.line, d.column) == ("PD106", 1, 1)
    assert d.hint == "kind is one of Policy, ModelCatalog, PolicyTest"


# --- every problem in one run ----------------------------------------------------------------


def test_all_problems_of_all_documents_are_reported_in_file_order(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        """\
        apiVersion: policyd/v1
        kind: Policy
        metadata: {name: a, colour: blue}
        tiers:
          t: {strategy: random, targets: [{model: m}]}
        ---
        apiVersion: policyd/v1
        kind: ModelCatalog
        metadata: {name: models}
        models:
          m: {litellm: openai/gpt-4o, context_window: 0}
        ---
        apiVersion: policyd/v1
        kind: Polisy
        """,
    )
    assert where(diagnostics) == [
        ("PD101", 3, 21),
        ("PD104", 5, 17),
        ("PD104", 11, 47),
        ("PD106", 14, 7),
    ]


# --- YAML 1.2 in the typed model -------------------------------------------------------------


def test_yaml_12_words_and_numbers_stay_text_in_the_typed_model(tmp_path: Path) -> None:
    path = tmp_path / "on.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            apiVersion: policyd/v1
            kind: Policy
            metadata:
              name: on
              version: 1.10
              description: no
              labels: {x: yes, y: off, z: 1.50, w: 0x1F, v: 12:30}
            """
        )
    )
    bundle = load_bundle(path)
    assert bundle.diagnostics == []
    meta = bundle.policies["on"].policy.metadata
    assert meta.name == "on"
    assert meta.version == "1.10"
    assert meta.description == "no"
    assert meta.labels == {"x": "yes", "y": "off", "z": "1.50", "w": "0x1F", "v": "12:30"}
    assert all(type(v) is str for v in meta.labels.values())


@settings(max_examples=60, deadline=None)
@given(
    number=st.decimals(min_value=0, max_value=10_000, places=3, allow_nan=False),
    unit=st.sampled_from(["ms", "s", "m", "h", "d"]),
)
def test_every_number_with_a_unit_is_a_duration_and_a_bare_number_is_not(
    number: object, unit: str
) -> None:
    written = str(number)
    for value, ok in ((f"{written}{unit}", True), (written, False)):
        text = "apiVersion: policyd/v1\nkind: Policy\nmetadata: {name: a}\nrouting:\n"
        text += f"  default: t\n  timeout: {value}\n"
        typed, diagnostics = to_model(load_text(text).documents[0])
        if ok:
            assert isinstance(typed, document.Policy), diagnostics
            assert typed.routing is not None and typed.routing.timeout == value
        else:
            d = only(diagnostics)
            assert (d.code, d.line, d.column) == ("PD104", 6, 12)
            assert d.message == f"'timeout': duration {written} has no unit"


# --- a scalar where a list or mapping goes: the hint shows the shape -------------------------


def test_scalars_where_lists_and_mappings_go_get_the_shape_to_write(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        POLICY
        + """\
tiers:
  economy: {targets: [gpt-4o], fallback: premium}
budgets:
  - {name: b, key: '"all"', window: rolling, limit: {usd: $500}, on_exceed: block}
  - {name: c, key: '"all"', window: calendar_day, limit: {usd: "1,000"}}
""",
    )
    assert [(d.code, d.line, d.column, d.hint) for d in diagnostics] == [
        ("PD102", 6, 23, "write {model: gpt-4o}"),
        ("PD102", 6, 42, "write a list: [premium]"),
        ("PD104", 8, 37, "rolling takes a value: write {rolling: ...}, e.g. {rolling: 1h}"),
        ("PD102", 8, 59, "write a plain number: 500"),
        ("PD102", 8, 77, "write {action: block}"),
        ("PD102", 9, 64, "write a plain number: 1000"),
    ]
