"""Mistakes that used to pass ``check`` silently, and noise that hid the real error (#12).

Each test writes a small bundle, checks it, and asserts the exact diagnostics; the
result never depends on whether LiteLLM is installed (its price map is switched off
with monkeypatch and the output compared).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from policyd import prices
from policyd.bundle import load_bundle
from policyd.diagnostics import Diagnostic

HEAD = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: demo}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def check(tmp_path: Path, text: str, name: str = "policy.yaml") -> list[Diagnostic]:
    write(tmp_path, name, text)
    return load_bundle(tmp_path).diagnostics


def codes(diagnostics: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.column) for d in diagnostics]


# --- prices: a USD limit on an unpriced model is an error, with or without LiteLLM -----------

USD_POLICY = (
    HEAD
    + """\
models:
  mini: {litellm: openai/gpt-4o-mini}
  priced: {litellm: openai/gpt-4o, price: {input_per_mtok: 2.5, output_per_mtok: 10}}
tiers: {t: {targets: [{model: mini}], fallback: [priced]}}
routing: {default: t, context_window: ignore}
budgets:
  - name: daily
    key: "'all'"
    window: calendar_day
    limit: {usd: 5}
"""
)


def test_usd_limit_on_a_model_without_price_is_an_error_naming_both(tmp_path: Path) -> None:
    diagnostics = check(tmp_path, USD_POLICY)
    assert codes(diagnostics) == [("PD410", 13, 18)]
    d = diagnostics[0]
    assert d.is_error
    assert "budget 'daily'" in d.message and "'mini'" in d.message and "$0" in d.message
    assert d.hint is not None and "price: {input_per_mtok" in d.hint and ":5" in d.hint


def test_check_is_the_same_without_litellms_price_map(tmp_path: Path, monkeypatch) -> None:
    with_map = [str(d) for d in check(tmp_path, USD_POLICY)]
    monkeypatch.setattr(prices, "litellm_price_map", lambda: None)
    assert [str(d) for d in load_bundle(tmp_path).diagnostics] == with_map


def test_a_priced_model_and_a_token_only_budget_are_fine(tmp_path: Path) -> None:
    # 100,000 tokens: a default request (4,096 output tokens) fits, so no PD505 either
    text = USD_POLICY.replace("{usd: 5}", "{tokens: 100000}")
    assert check(tmp_path, text) == []
    fixed = USD_POLICY.replace(
        "mini: {litellm: openai/gpt-4o-mini}",
        "mini: {litellm: openai/gpt-4o-mini, price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}",
    )
    assert check(tmp_path, fixed) == []


def test_decisions_use_only_the_policys_facts(tmp_path: Path) -> None:
    spec = prices.resolve(
        "m", __import__("policyd.document").document.ModelSpec(litellm="openai/gpt-4o")
    )
    assert (spec.context_window, spec.input_micros_per_mtok, spec.source) == (
        None,
        None,
        "unknown",
    )


def test_skip_small_warns_once_per_model_without_a_window(tmp_path: Path) -> None:
    text = (
        HEAD
        + """\
models:
  a: {litellm: openai/a, context_window: 8000}
  b: {litellm: openai/b}
tiers: {t: {targets: [{model: a}, {model: b}]}, u: {targets: [{model: b}]}}
routing: {default: t}
"""
    )
    diagnostics = check(tmp_path, text)
    assert codes(diagnostics) == [("PD502", 7, 43)]
    assert "never skips it" in diagnostics[0].message
    # no model has a window and skip_small is only the default: nothing to say
    assert check(tmp_path, text.replace(", context_window: 8000", "")) == []


# --- prompt placeholders --------------------------------------------------------------------


def test_template_placeholders_are_checked_like_cel_paths(tmp_path: Path) -> None:
    text = (
        HEAD
        + """\
context: {tenant: {id: string, name: string}, tags: list<string>, extra: dyn}
prompts:
  system:
    versions:
      v1: {template: "Hi {{ tenant.nmae }} {{ request.user.id }} {{ extra.any.thing }}"}
      v2: {template: "{{ tags.first }} {{ tenant.id.x }} {{ tenant.id }}"}
"""
    )
    diagnostics = check(tmp_path, text)
    assert codes(diagnostics) == [
        ("PD214", 8, 29),
        ("PD214", 8, 47),
        ("PD214", 9, 26),
        ("PD214", 9, 43),
    ]
    assert "unknown field of tenant 'nmae'" in diagnostics[0].message
    assert diagnostics[0].hint == "did you mean 'name'?"
    assert diagnostics[1].hint == "write {{ user.id }}"
    assert "cannot index a list" in diagnostics[2].message
    assert "tenant.id is a string" in diagnostics[3].message


def test_placeholders_in_prompt_files_point_into_the_file(tmp_path: Path) -> None:
    write(tmp_path, "prompts/s.md", "Hello\n  {{ tenant.nmae }}\n")
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
context: {tenant: {name: string}}
prompts: {s: {versions: {v1: {file: prompts/s.md}}}}
""",
    )
    assert [(Path(d.file).name, d.line, d.column, d.code) for d in diagnostics] == [
        ("s.md", 2, 6, "PD214")
    ]


def test_a_missing_value_keeps_the_placeholder_and_warns(tmp_path: Path) -> None:
    from policyd import Engine

    write(
        tmp_path,
        "p.yaml",
        HEAD
        + """\
context: {tenant: {id: string}}
prompts: {s: {versions: {v1: {template: "for {{ tenant.id }}."}}}}
""",
    )
    engine = Engine.from_path(str(tmp_path))
    missing = engine.decide({"messages": []})
    assert missing.prompts["s"].text == "for {{ tenant.id }}."
    assert missing.warnings == ("s: placeholder {{ tenant.id }} has no value in the request",)
    given = engine.decide({"messages": [], "tenant": {"id": "acme"}})
    assert given.prompts["s"].text == "for acme." and given.warnings == ()
    engine.close()


# --- guardrail roles ------------------------------------------------------------------------


def test_guardrail_roles_are_chat_roles(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
guardrails:
  input:
    - {name: a, pii: [email], roles: [usr, x-retrieved, tool]}
    - {name: b, pii: [email], roles: []}
""",
    )
    assert codes(diagnostics) == [("PD409", 6, 39), ("PD409", 7, 38)]
    assert diagnostics[0].message == "unknown message role 'usr'"
    assert diagnostics[0].hint is not None and diagnostics[0].hint.startswith(
        "did you mean 'user'?"
    )
    assert "checks no message" in diagnostics[1].message


# --- PolicyTest requests and expect paths ---------------------------------------------------

TESTED = (
    HEAD
    + """\
context: {tenant: {id: string}}
models: {m: {litellm: openai/m}}
tiers: {t: {targets: [{model: m}]}}
routing: {default: t}
prompts: {sys.prompt: {versions: {v1: {template: hi}}}}
---
apiVersion: policyd/v1
kind: PolicyTest
metadata: {name: t}
policy: demo
cases:
  - name: c
    request: {tenant: {id: 5}, tenantt: {}, messages: []}
    expect: {tier: t, tierr: t, prompts.sys.prompt.version: v1, prompts.nope.version: v1,
             trace.rule: x, budgets.0.spent_usd: 0, output.allowed: true}
    output: fine
    record: {output_tokens: 5, model: mm}
"""
)


def test_test_requests_and_expect_paths_are_checked_at_check_time(tmp_path: Path) -> None:
    diagnostics = check(tmp_path, TESTED)
    assert codes(diagnostics) == [
        ("PD215", 16, 28),
        ("PD503", 16, 32),
        ("PD216", 17, 23),
        ("PD216", 17, 65),
        ("PD216", 18, 14),
        ("PD201", 20, 39),
    ]
    by_code = {d.code: d for d in diagnostics}
    assert "request.tenant.id: must be a string, not an integer" in by_code["PD215"].message
    assert by_code["PD503"].hint == "did you mean 'tenant'?"
    assert diagnostics[2].hint == "did you mean 'tier'?"
    assert "no prompt 'nope'" in diagnostics[3].message
    assert "trace is a list" in diagnostics[4].message


# --- one root cause, one error ----------------------------------------------------------------

CATALOG = """\
apiVersion: policyd/v1
kind: ModelCatalog
metadata: {name: shared}
models:
  a: {litellm: openai/a}
  b: {litellm: openai/b}
"""
USER = (
    HEAD
    + """\
tiers: {t: {targets: [{model: a}, {model: b}], fallback: [b]}}
routing: {default: t}
"""
)


def test_a_catalog_key_typo_is_one_error(tmp_path: Path) -> None:
    write(tmp_path, "models.yaml", CATALOG.replace("models:", "modles:"))
    diagnostics = check(tmp_path, USER)
    assert codes(diagnostics) == [("PD101", 4, 1)]
    assert diagnostics[0].hint == "did you mean 'models'?"


def test_a_broken_policy_is_not_unknown_to_its_tests(tmp_path: Path) -> None:
    write(tmp_path, "models.yaml", CATALOG)
    write(
        tmp_path,
        "t.yaml",
        "apiVersion: policyd/v1\nkind: PolicyTest\nmetadata: {name: t}\npolicy: demo\n"
        "cases: [{name: c, request: {}, expect: {allowed: true}}]\n",
    )
    diagnostics = check(tmp_path, USER.replace("routing:", "routnig:"))
    assert [d.code for d in diagnostics] == ["PD101"]


def test_a_policy_that_failed_structure_still_gets_its_other_problems(tmp_path: Path) -> None:
    write(tmp_path, "models.yaml", CATALOG)
    text = (
        USER
        + 'budgets: [{name: x, key: "request.tenat", window: calendar_day, limit: {requests: 1}}]\n'
    )
    diagnostics = check(
        tmp_path, text.replace("metadata: {name: demo}", "metadata: {name: demo, lables: {}}")
    )
    assert [d.code for d in diagnostics] == ["PD101", "PD302"]


def test_duplicate_policy_names_do_not_hide_other_errors(tmp_path: Path) -> None:
    write(tmp_path, "models.yaml", CATALOG)
    write(tmp_path, "a.yaml", USER)
    diagnostics = check(tmp_path, USER.replace("model: b}", "model: c}"), name="b.yaml")
    assert [d.code for d in diagnostics] == ["PD206", "PD201"]


def test_several_paths_are_one_bundle(tmp_path: Path) -> None:
    catalog = write(tmp_path, "models.yaml", CATALOG)
    policy = write(tmp_path, "policy.yaml", USER)
    assert load_bundle(policy, catalog).diagnostics == []
    assert [d.code for d in load_bundle(policy).diagnostics] == ["PD201", "PD201", "PD203"]


@pytest.mark.parametrize("each, codes_", [(False, []), (True, ["PD201", "PD201", "PD203"])])
def test_cli_check_paths_are_one_bundle_unless_each(tmp_path: Path, each: bool, codes_) -> None:
    import json

    from click.testing import CliRunner

    from policyd.cli import main

    catalog = write(tmp_path, "models.yaml", CATALOG)
    policy = write(tmp_path, "policy.yaml", USER)
    args = ["check", "--format", "json", policy, catalog] + (["--each"] if each else [])
    result = CliRunner().invoke(main, args)
    found = json.loads(result.output) if result.output.strip() else []
    assert [p["code"] for p in found] == codes_
    assert "one bundle" in CliRunner().invoke(main, ["check", "--help"]).output


# --- settings that have no effect (the field audit) ---------------------------------------


def test_settings_without_effect_are_warned(tmp_path: Path) -> None:
    diagnostics = check(
        tmp_path,
        HEAD
        + """\
models: {m: {litellm: openai/m}, n: {litellm: openai/n}}
tiers: {t: {targets: [{model: m, weight: 3}, {model: n}], sticky_by: request.id}}
routing: {default: t, retry: {attempts: 1, base: 20s}}
cache: {rules: [{name: c, when: "true", ttl: 1m}]}
""",
    )
    assert [(d.code, d.severity.value) for d in diagnostics] == [("PD504", "warning")] * 5
    messages = [d.message for d in diagnostics]
    assert messages[0] == "weight has no effect: tier 't' uses strategy ordered"
    assert messages[1] == "sticky_by has no effect: tier 't' uses strategy ordered"
    assert messages[2] == "base 20s is above max 10s: every wait is 10s"
    assert messages[3] == "base has no effect: attempts is 1, so nothing is retried"
    assert "never cached" in messages[4]


def test_require_tests_without_a_test_is_the_reload_error_at_check_time(tmp_path: Path) -> None:
    text = HEAD + "reload: {require_tests: true}\n"
    diagnostics = check(tmp_path, text)
    assert codes(diagnostics) == [("PD602", 4, 25)]
    write(
        tmp_path,
        "t.yaml",
        "apiVersion: policyd/v1\nkind: PolicyTest\nmetadata: {name: t}\npolicy: demo\n"
        "cases: [{name: c, request: {}, expect: {allowed: true}}]\n",
    )
    assert load_bundle(tmp_path).diagnostics == []


def test_expect_values_that_can_never_match_are_errors(tmp_path: Path) -> None:
    text = TESTED.replace(
        """    expect: {tier: t, tierr: t, prompts.sys.prompt.version: v1, prompts.nope.version: v1,
             trace.rule: x, budgets.0.spent_usd: 0, output.allowed: true}""",
        "    expect: {allowed: yes, fallbacks: big, output.allowed: true}",
    ).replace("{tenant: {id: 5}, tenantt: {}, messages: []}", "{messages: []}")
    text = text.replace("record: {output_tokens: 5, model: mm}", "record: {output_tokens: 5}")
    diagnostics = check(tmp_path, text)
    assert [d.code for d in diagnostics] == ["PD216", "PD216"]
    assert (
        diagnostics[0].message == "expect allowed: 'yes' can never match: allowed is true or false"
    )
    assert "is a list" in diagnostics[1].message
