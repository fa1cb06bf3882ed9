"""Semantic checks: references, cycles, value rules and CEL types, each at its exact place.

Structure is valid in every policy here; what is wrong is what a reviewer would miss in a
pull request: a misspelt model, a fallback loop, shares that do not add up, a typo inside an
expression. Each test asserts the exact (code, line, column) and what the hint says.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd import cel, document
from policyd.bundle import Bundle, load_bundle
from policyd.diagnostics import Diagnostic, Severity
from policyd.loader import load_text
from policyd.structure import to_model
from policyd.validate import BUILTIN_REQUEST, PolicyContext, check_bundle


def bundle(tmp_path: Path, *files: tuple[str, str]) -> Bundle:
    for name, text in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return load_bundle(tmp_path)


def check(tmp_path: Path, text: str) -> list[Diagnostic]:
    return bundle(tmp_path, ("policy.yaml", text)).diagnostics


def where(diagnostics: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.column) for d in diagnostics]


def only(diagnostics: list[Diagnostic]) -> Diagnostic:
    assert len(diagnostics) == 1, [str(d) for d in diagnostics]
    return diagnostics[0]


HEAD = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: demo}
models:
  small: {litellm: openai/gpt-4o-mini, price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}
  large: {litellm: openai/gpt-4o, price: {input_per_mtok: 2.5, output_per_mtok: 10}}
"""  # 6 lines: what follows starts on line 7


# --- references ------------------------------------------------------------------------------


def test_unknown_model_in_a_tier_with_and_without_a_close_name(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
tiers:
  economy: {targets: [{model: smal}, {model: claude-haiku}]}
routing: {default: economy}
""",
    )
    assert where(diagnostics) == [("PD201", 8, 31), ("PD201", 8, 46)]
    assert diagnostics[0].message == "unknown model 'smal' in tier 'economy'"
    assert diagnostics[0].hint == "did you mean 'small'?"
    assert diagnostics[1].hint == "define it under models: or in a ModelCatalog"


def test_unknown_tiers_in_routing_and_budget_downgrade(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
tiers:
  economy: {targets: [{model: small}]}
  premium: {targets: [{model: large}]}
routing:
  default: econmy
  rules:
    - {name: big, when: request.input_tokens > 1000, tier: premum}
budgets:
  - name: daily
    key: '"all"'
    window: calendar_day
    limit: {usd: 5}
    on_exceed: {action: downgrade, tier: cheap}
""",
    )
    assert where(diagnostics) == [("PD202", 11, 12), ("PD202", 13, 60), ("PD202", 19, 42)]
    assert [d.hint for d in diagnostics] == [
        "did you mean 'economy'?",
        "did you mean 'premium'?",
        "tiers: economy, premium",
    ]


def test_fallback_that_is_neither_model_nor_tier(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            HEAD
            + """\
tiers:
  economy: {targets: [{model: small}], fallback: [large, premiun]}
  premium: {targets: [{model: large}]}
routing: {default: economy}
""",
        )
    )
    assert where([d]) == [("PD203", 8, 58)]
    assert (d.message, d.hint) == (
        "fallback 'premiun' is neither a model nor a tier",
        "did you mean 'premium'?",
    )


def test_fallback_cycles_between_tiers_are_errors(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
tiers:
  a: {targets: [{model: small}], fallback: [b]}
  b: {targets: [{model: small}], fallback: [large, c]}
  c: {targets: [{model: large}], fallback: [a]}
  d: {targets: [{model: large}], fallback: [d]}
  e: {targets: [{model: large}], fallback: [a]}
routing: {default: a}
""",
    )
    assert where(diagnostics) == [("PD205", 10, 45), ("PD205", 11, 45)]
    assert diagnostics[0].message == "fallback cycle between tiers: a -> b -> c -> a"
    assert diagnostics[1].message == "fallback cycle between tiers: d -> d"


def test_a_tier_reached_twice_without_a_loop_is_not_a_cycle(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
tiers:
  a: {targets: [{model: small}], fallback: [b, c]}
  b: {targets: [{model: small}], fallback: [c]}
  c: {targets: [{model: large}]}
routing: {default: a}
""",
    )
    assert diagnostics == []


def test_names_that_clash(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
context: {input_tokens: int, team: string}
tiers:
  small: {targets: [{model: small}]}
routing: {default: small}
""",
    )
    assert where(diagnostics) == [("PD211", 7, 11), ("PD211", 9, 3)]
    assert diagnostics[0].hint == "request.input_tokens is always available as int; remove it"
    assert diagnostics[1].message == "tier 'small' has the same name as a model"


def test_unknown_context_types(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
context:
  tenant: {id: strng, tags: list<sting>, limits: 'map<string, int>'}
  score: float
  count: uint
""",
    )
    assert where(diagnostics) == [
        ("PD212", 8, 16),
        ("PD212", 8, 29),
        ("PD212", 9, 10),
        ("PD212", 10, 10),  # CEL's uint is not supported by the compiler, so not here either
    ]
    assert diagnostics[0].hint == "did you mean 'string'?"
    assert diagnostics[1].hint == "did you mean 'list<string>'?"
    assert diagnostics[2].hint is not None and "double" in diagnostics[2].hint


def test_cache_key_fields_must_be_request_attributes(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            HEAD
            + """\
context: {feature: string, user: {id: string}}
cache:
  rules:
    - {name: faq, when: request.feature == "faq", ttl: 1h, key: [model, mesages, feature]}
""",
        )
    )
    assert where([d]) == [("PD213", 10, 73)]
    assert d.hint == "did you mean 'messages'?"


# --- duplicates across documents and files ---------------------------------------------------


def test_duplicate_names_within_a_policy(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
tiers: {economy: {targets: [{model: small}]}}
routing:
  default: economy
  rules:
    - {name: r, when: request.input_tokens > 10, tier: economy}
    - {name: r, when: request.input_tokens > 20, tier: economy}
budgets:
  - {name: b, key: '"a"', window: calendar_day, limit: {usd: 1}}
  - {name: b, key: '"b"', window: calendar_day, limit: {usd: 2}}
guardrails:
  input: [{name: g, max_chars: 10}]
  output: [{name: g, max_chars: 10}]
""",
    )
    assert where(diagnostics) == [("PD206", 12, 14), ("PD206", 15, 12), ("PD206", 18, 19)]
    assert [d.message for d in diagnostics] == [
        "duplicate routing rule name 'r'",
        "duplicate budget name 'b'",
        "duplicate guardrail name 'g'",
    ]
    assert diagnostics[0].hint is not None and diagnostics[0].hint.startswith(
        "first used on line 11"
    )


def test_duplicates_across_files_point_at_the_first_definition(tmp_path: Path) -> None:
    catalog = """\
    apiVersion: policyd/v1
    kind: ModelCatalog
    metadata: {name: shared}
    models:
      small: {litellm: openai/gpt-4o-mini}
    """
    policy = """\
    apiVersion: policyd/v1
    kind: Policy
    metadata: {name: demo}
    models:
      small: {litellm: anthropic/claude-haiku-4-5}
    """
    result = bundle(
        tmp_path, ("a-models.yaml", catalog), ("b-policy.yaml", policy), ("c-again.yaml", policy)
    )
    first = str(tmp_path / "a-models.yaml")
    assert [(Path(d.file).name, d.code, d.line, d.column) for d in result.diagnostics] == [
        ("b-policy.yaml", "PD207", 5, 3),
        ("c-again.yaml", "PD206", 3, 18),
        ("c-again.yaml", "PD207", 5, 3),  # a duplicate is still checked: its own problems
    ]
    assert result.diagnostics[0].message == f"model 'small' is also defined at {first}:5"
    assert result.diagnostics[1].hint == (
        f"first defined at {tmp_path / 'b-policy.yaml'}:3; policy names are unique in a bundle"
    )


def test_policy_test_for_an_unknown_policy(tmp_path: Path) -> None:
    result = bundle(
        tmp_path,
        ("policy.yaml", HEAD),
        (
            "tests/demo.test.yaml",
            """\
            apiVersion: policyd/v1
            kind: PolicyTest
            metadata: {name: t}
            policy: dmeo
            cases: [{name: c, request: {}, expect: {allowed: true}}]
            """,
        ),
    )
    d = only(result.diagnostics)
    assert (Path(d.file).name, d.code, d.line, d.column) == ("demo.test.yaml", "PD208", 4, 9)
    assert (d.message, d.hint) == (
        "PolicyTest refers to unknown policy 'dmeo'",
        "did you mean 'demo'?",
    )


# --- prompts and rollouts --------------------------------------------------------------------

PROMPTS = """\
context: {user: {id: string}}
prompts:
  system:
    versions:
      v1: {template: "You are helpful."}
      v2: {file: prompts/v2.md}
"""  # lines 7-12


def test_prompt_files_are_read_relative_to_the_policy_file(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "v2.md").write_text("Be brief.\n")
    result = bundle(tmp_path, ("policy.yaml", HEAD + PROMPTS))
    assert result.diagnostics == []
    assert result.policies["demo"].prompt_texts[("system", "v2")] == "Be brief.\n"


def test_missing_prompt_file(tmp_path: Path) -> None:
    d = only(check(tmp_path, HEAD + PROMPTS))
    assert where([d]) == [("PD210", 12, 18)]
    assert d.message == f"prompt file '{tmp_path / 'prompts' / 'v2.md'}' does not exist"
    assert d.hint == "paths are relative to the policy file's directory"


def test_rollout_references_sums_and_schedule(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "v2.md").write_text("Be brief.\n")
    diagnostics = check(
        tmp_path,
        HEAD
        + PROMPTS
        + """\
rollouts:
  - name: r1
    prompt: sytem
    sticky_by: request.user.id
    default: v1
    variants: {v1: 100}
  - name: r2
    prompt: system
    sticky_by: request.user.id
    default: v0
    variants: {v1: 90, v3: 20}
    schedule:
      - {at: "2026-12-08T00:00:00Z", variants: {v1: 50, v2: 50}}
      - {at: "2026-12-08T00:00:00Z", variants: {v1: 33.333, v2: 66.667}}
""",
    )
    assert where(diagnostics) == [
        ("PD204", 15, 13),  # unknown prompt
        ("PD209", 22, 14),  # default v0
        ("PD401", 23, 15),  # 90 + 20
        ("PD209", 23, 24),  # variant v3
        ("PD402", 26, 14),  # same time as the entry before
        ("PD401", 26, 53),  # 33.333 is finer than 0.01%
        ("PD401", 26, 65),  # 66.667 too
    ]
    prompt, default, total, v3, order, share, _ = diagnostics
    assert prompt.hint == "did you mean 'system'?"
    assert default.hint == (
        "defined versions: v1, v2; add v0 under prompts.system.versions, or use one of those"
    )
    assert total.message == "variant percentages sum to 110, not 100"
    assert v3.message == "prompt 'system' has no version 'v3'"
    assert order.hint == "list schedule entries in increasing time order"
    assert share.message == "share 33.333% of 'v1' is finer than 0.01%"


# --- values ----------------------------------------------------------------------------------

BUDGET = """\
budgets:
  - name: daily
    key: '"all"'
    window: calendar_day
    limit: {usd: 5}
"""  # lines 7-11


def test_budget_alerts_in_range_unique_and_sorted(tmp_path: Path) -> None:
    diagnostics = check(tmp_path, HEAD + BUDGET + "    alerts: [0.9, 80, 0.5, 0.5, 0]\n")
    assert where(diagnostics) == [("PD403", 12, 13), ("PD403", 12, 19), ("PD403", 12, 33)]
    unsorted, percent, zero = diagnostics
    assert unsorted.message == "alert thresholds must be unique and in increasing order"
    assert unsorted.hint == "write [0, 0.5, 0.9, 80]"
    assert (percent.message, percent.hint) == (
        "alert threshold 80 is outside (0, 1]",
        "thresholds are fractions of the limit: write 0.8 for 80%",
    )
    assert zero.message == "alert threshold 0 is outside (0, 1]"


def test_time_zones_are_iana_names(tmp_path: Path) -> None:
    diagnostics = check(tmp_path, HEAD + BUDGET + "    timezone: Europe/Berln\n")
    assert where(diagnostics) == [("PD404", 12, 15)]
    assert diagnostics[0].hint == "did you mean 'Europe/Berlin'?"
    ok = check(tmp_path, HEAD + BUDGET + "    timezone: America/Argentina/Buenos_Aires\n")
    assert ok == []


def test_the_time_zone_list_is_read_once_for_many_wrong_zones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing the tz database costs ~6 ms: 1,000 budgets with a wrong zone took 6 s."""
    import zoneinfo

    from policyd.checks import budgets

    listed: list[int] = []
    real = zoneinfo.available_timezones

    def counted() -> set[str]:
        listed.append(1)
        return real()

    budgets._zones.cache_clear()
    monkeypatch.setattr(zoneinfo, "available_timezones", counted)
    try:
        body = BUDGET + "    timezone: Europe/Berln\n"
        first = check(tmp_path / "a", HEAD + body)
        again = check(tmp_path / "b", HEAD + body)
    finally:
        budgets._zones.cache_clear()
    assert [d.hint for d in first + again] == ["did you mean 'Europe/Berlin'?"] * 2
    assert len(listed) == 1


@pytest.mark.parametrize(
    ("pattern", "column", "says"),
    [
        (r"'secret(?=\s*:)'", 40, "lookahead/lookbehind"),  # at '(?='
        (r"'(a+)\1'", 38, "backreferences"),  # at '\1'
        ("'[a-'", 34, "write the pattern in RE2 syntax"),  # at '[a-'
        ("'x*'", 34, "make at least one part of the pattern required"),  # the whole pattern
    ],
)
def test_deny_patterns_are_checked_by_re2_at_the_offending_construct(
    tmp_path: Path, pattern: str, column: int, says: str
) -> None:
    d = only(
        check(
            tmp_path,
            HEAD + f"guardrails:\n  input:\n    - {{name: g, deny_patterns: [{pattern}]}}\n",
        )
    )
    assert (d.code, d.line, d.column) == ("PD405", 9, column)
    assert d.hint is not None and says in d.hint


def test_weighted_tier_needs_a_positive_weight(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            HEAD
            + """\
tiers:
  economy:
    strategy: weighted
    targets: [{model: small, weight: 0}, {model: large, weight: 0}]
routing: {default: economy}
""",
        )
    )
    assert where([d]) == [("PD406", 10, 14)]


def test_guardrail_shapes_and_actions(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
guardrails:
  input:
    - {name: nothing, action: block}
    - {name: schema-on-input, json_schema: {type: object}}
    - {name: redact-a-size, max_tokens: 100, action: redact}
  output:
    - {name: bad-schema, json_schema: {type: objekt}}
""",
    )
    assert where(diagnostics) == [
        ("PD407", 9, 14),
        ("PD407", 10, 44),
        ("PD408", 11, 54),
        ("PD407", 13, 39),
    ]
    assert diagnostics[1].hint == "move this guardrail under guardrails.output"
    assert diagnostics[3].message.startswith("invalid JSON Schema: ")


def test_unreachable_rule_is_a_warning_not_an_error(tmp_path: Path) -> None:
    result = bundle(
        tmp_path,
        (
            "policy.yaml",
            HEAD
            + """\
tiers: {economy: {targets: [{model: small}]}}
routing:
  default: economy
  rules:
    - {name: all, when: " true ", tier: economy}
    - {name: big, when: request.input_tokens > 10, tier: economy}
    - {name: huge, when: request.input_tokens > 99, tier: economy}
""",
        ),
    )
    assert where(result.diagnostics) == [("PD501", 12, 14), ("PD501", 13, 14)]
    assert {d.severity for d in result.diagnostics} == {Severity.WARNING}
    assert result.diagnostics[0].hint == (
        "rule 'all' above it always matches (first match wins); move this rule up or remove it"
    )
    assert result.ok and "demo" in result.policies  # warnings do not stop a policy loading


def test_cheapest_strategy_warns_about_unpriced_models(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
  local: {litellm: ollama/llama3}
tiers: {fast: {strategy: cheapest, targets: [{model: small}, {model: local}]}}
routing: {default: fast}
""",
    )
    assert where(diagnostics) == [("PD502", 8, 70)]
    assert diagnostics[0].severity is Severity.WARNING


# --- CEL: errors located inside the expression -----------------------------------------------

CEL_HEAD = (
    HEAD
    + """\
context:
  tenant: {id: string, tier: string}
  tags: list<string>
tiers: {economy: {targets: [{model: small}]}}
routing:
  default: economy
  rules:
"""
)  # rules start on line 14


def rule(when: str) -> str:
    return f"    - name: r\n      tier: economy\n      when: {when}\n"  # 'when' on line 16


def test_unknown_attribute_with_did_you_mean(tmp_path: Path) -> None:
    d = only(check(tmp_path, CEL_HEAD + rule('request.tenant.tierr == "enterprise"')))
    assert where([d]) == [("PD302", 16, 28)]
    assert d.message == (
        "undefined field 'tierr' of request.tenant in CEL expression "
        "'request.tenant.tierr == \"enterprise\"'"
    )
    assert d.hint == "did you mean 'tier'?"


def test_wrong_type_points_at_the_operator(tmp_path: Path) -> None:
    d = only(check(tmp_path, CEL_HEAD + rule("request.tags > 3")))
    assert where([d]) == [("PD303", 16, 26)]
    assert d.message.startswith("no matching overload for '>' applied to (list<string>, int)")


def test_unknown_function(tmp_path: Path) -> None:
    d = only(check(tmp_path, CEL_HEAD + rule('lower(request.tenant.id) == "acme"')))
    assert where([d]) == [("PD304", 16, 13)]
    assert d.message.startswith("unknown function 'lower'")


def test_condition_that_is_not_a_bool(tmp_path: Path) -> None:
    d = only(check(tmp_path, CEL_HEAD + rule("request.tenant.id")))
    assert where([d]) == [("PD305", 16, 13)]
    assert d.message == "condition must be a bool, but 'request.tenant.id' is string"


def test_syntax_error(tmp_path: Path) -> None:
    d = only(check(tmp_path, CEL_HEAD + rule('request.tenant.id = "acme"')))
    assert where([d]) == [("PD301", 16, 31)]
    assert d.hint == "compare with '==', not '='"


def test_positions_inside_quoted_and_block_scalars(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        CEL_HEAD
        + """\
    - name: double-quoted
      tier: economy
      when: "\\"code\\" in request.tags && request.tenant.tierr == \\"x\\""
    - name: single-quoted
      tier: economy
      when: '''code'' in request.tags && request.tenant.tierr == ''x'''
    - name: folded
      tier: economy
      when: >-
        "code" in request.tags &&
          request.tenant.tierr == "x"
    - name: literal
      tier: economy
      when: |
        "code" in request.tags
        && request.tenant.tierr == "x"
""",
    )
    assert where(diagnostics) == [
        ("PD302", 16, 57),
        ("PD302", 19, 57),  # same columns: '' and \" are both two characters
        ("PD302", 24, 26),
        ("PD302", 29, 27),
    ]


def test_keys_are_type_checked_too(tmp_path: Path) -> None:
    text = (
        HEAD + "context: {user: {id: string}}\n" + BUDGET.replace("'\"all\"'", "request.user.idd")
    )
    d = only(check(tmp_path, text))
    assert where([d]) == [("PD302", 10, 23)]
    assert d.hint == "did you mean 'id'?"


def test_cel_positions_are_the_loaders_scalar_offsets_of_the_compile_error(
    tmp_path: Path,
) -> None:
    """The column is the CEL error's offset mapped through the source map, not re-counted."""
    text = CEL_HEAD + rule(
        ">-\n        request.tenant.id == 'a' &&\n          size(request.tags) > 'b'"
    )
    d = only(check(tmp_path, text))
    doc = load_text(text).documents[0]
    path = ("routing", "rules", 0, "when")
    source = doc.data["routing"]["rules"][0]["when"]
    declared = {"tenant": {"id": "string", "tier": "string"}, "tags": "list<string>"}
    declarations = {"request": {**BUILTIN_REQUEST, **declared}, "now": "timestamp"}
    with pytest.raises(cel.CompileError) as error:
        cel.compile(source, declarations)
    pos = doc.source_map.scalar_offset(path, error.value.offset)
    assert (d.code, d.line, d.column) == (error.value.code, pos.line, pos.column)
    assert (d.line, d.column) == (18, 30)


# --- all problems at once; only clean policies go on -----------------------------------------


def test_every_problem_is_reported_and_only_clean_policies_are_kept(tmp_path: Path) -> None:
    broken = (
        HEAD.replace("name: demo", "name: broken")
        + """\
tiers:
  economy: {targets: [{model: smal}], fallback: [economy]}
routing: {default: econmy}
budgets:
  - {name: b, key: request.nope, window: calendar_day, timezone: Mars/Base, limit: {usd: 1}}
"""
    )
    result = bundle(tmp_path, ("broken.yaml", broken), ("clean.yaml", HEAD))
    assert [d.code for d in result.diagnostics] == [
        "PD201",
        "PD205",
        "PD202",
        "PD302",
        "PD404",
    ]
    assert not result.ok
    assert set(result.policies) == {"demo"}
    assert isinstance(result.policies["demo"], PolicyContext)


def test_attribute_without_request_prefix_gets_a_hint(tmp_path: Path) -> None:
    d = only(check(tmp_path, CEL_HEAD + rule('tenant.tier == "enterprise"')))
    assert where([d]) == [("PD302", 16, 13)]
    assert d.hint == "request attributes are read through request: write request.tenant"


def test_a_model_named_where_a_tier_goes_says_so(tmp_path: Path) -> None:
    d = only(
        check(
            tmp_path,
            HEAD + "tiers: {economy: {targets: [{model: small}]}}\nrouting: {default: large}\n",
        )
    )
    assert where([d]) == [("PD202", 8, 20)]
    assert d.message == "'large' is a model, not a tier"
    assert d.hint == (
        "routing and downgrades choose tiers: add a tier with targets: [{model: large}]"
    )


# --- any edit of a real policy: diagnostics, never a traceback --------------------------------

POLICIES = Path(__file__).resolve().parent.parent / "policies"
SHIPPED = (
    (POLICIES / "models.yaml").read_text() + "---\n" + (POLICIES / "support-bot.yaml").read_text()
)
_TOKEN = re.compile(r"(?<=[:\[{,] )[^\s,\]{}#][^,\]{}#\n]*")
REPLACEMENTS = st.sampled_from(
    ["", "0", "-1", "1.5", "true", "x", "economy", "[]", "{}", "30", "request.nope", '"a" +']
)


@settings(max_examples=80, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), REPLACEMENTS), min_size=1, max_size=3))
def test_any_edit_of_a_real_policy_gives_located_diagnostics(edits: list[tuple[int, str]]) -> None:
    """Whatever a typo does to the shipped catalog and policy, check reports it in the file."""
    text = SHIPPED
    for pick, replacement in edits:
        spots = list(_TOKEN.finditer(text))
        spot = spots[pick % len(spots)]
        text = text[: spot.start()] + replacement + text[spot.end() :]
    loaded = load_text(text, str(POLICIES / "support-bot.yaml"))  # prompt files are found
    diagnostics = list(loaded.diagnostics)
    policies, catalogs = [], []
    for doc in loaded.documents:
        typed, problems = to_model(doc)
        diagnostics += problems
        if isinstance(typed, document.Policy):
            policies.append((typed, doc))
        elif isinstance(typed, document.ModelCatalog):
            catalogs.append((typed, doc))
    diagnostics += check_bundle(policies, catalogs, [])[1]
    lines = text.split("\n")
    for d in diagnostics:
        assert re.fullmatch(r"PD\d{3}", d.code), d
        assert 1 <= d.line <= len(lines), d
        assert 1 <= d.column <= len(lines[d.line - 1]) + 1, d
        assert d.message
