"""The Engine's public API: decide/adecide, Decision shape, errors, determinism."""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
from engine_bundles import CATALOG, policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd import Decision, Engine, PolicyError, RequestError

BODY = """
tiers:
  cheap: {strategy: weighted, sticky_by: request.user.id,
          targets: [{model: small, weight: 1}, {model: medium, weight: 1}]}
  best: {targets: [{model: large}], fallback: [cheap]}
routing:
  default: cheap
  rules:
    - {name: vip, when: 'request.tenant.tier == "vip"', tier: best}
guardrails:
  input:
    - {name: no-free-code, when: 'request.tenant.tier == "free" && "code" in request.tags',
       message: paid plans only}
    - {name: few-messages, max_messages: 3}
    - {name: short, max_chars: 1000, action: warn}
    - {name: strict-meta, when: 'request.metadata.flag == true'}
    - {name: lenient-meta, when: 'request.metadata.other == true', on_error: allow}
cache:
  rules:
    - {name: all, when: "true", ttl: 1m, scope: global}
"""

KEYS = [
    "allowed",
    "blocked_by",
    "reason",
    "message",
    "model",
    "litellm_model",
    "tier",
    "fallbacks",
    "retry",
    "timeout_s",
    "cache",
    "prompts",
    "budgets",
    "warnings",
    "trace",
    "policy",
]


def ok_request(**extra):
    base = {
        "tenant": {"id": "t", "tier": "pro"},
        "user": {"id": "u"},
        "tags": [],
        "metadata": {"flag": False, "other": False},
        "messages": [{"role": "user", "content": "hello"}],
    }
    base.update(extra)
    return base


def test_decision_to_dict_has_exactly_the_documented_keys(make_engine):
    d = make_engine(policy(BODY)).decide(ok_request())
    data = d.to_dict()
    assert list(data) == KEYS
    json.dumps(data)  # JSON-serialisable
    assert data["policy"]["name"] == "p" and data["policy"]["version"] == "1"
    assert data["policy"]["digest"].startswith("sha256:")
    assert all(set(t) == {"stage", "rule", "outcome", "detail"} for t in data["trace"])
    assert set(data["cache"]) == {"ttl_s", "key", "namespace", "rule"}


def test_decision_is_immutable(make_engine):
    d = make_engine(policy(BODY)).decide(ok_request())
    with pytest.raises(AttributeError):
        d.model = "other"  # type: ignore[misc]


def test_adecide_gives_the_same_decision(make_engine):
    engine = make_engine(policy(BODY))
    sync = engine.decide(ok_request()).to_dict()
    asynchronous = asyncio.run(engine.adecide(ok_request())).to_dict()
    assert sync == asynchronous


def test_guardrail_condition_blocks_with_its_message(make_engine):
    d = make_engine(policy(BODY)).decide(
        ok_request(tenant={"id": "t", "tier": "free"}, tags=["code"])
    )
    assert not d.allowed and d.blocked_by == "no-free-code" and d.message == "paid plans only"
    assert d.model is None and d.cache is None
    assert [t.stage for t in d.trace] == ["guardrails"]  # nothing after a block


def test_size_guardrails_block_and_warn(make_engine):
    engine = make_engine(policy(BODY))
    many = [{"role": "user", "content": "x"}] * 4
    d = engine.decide(ok_request(messages=many))
    assert d.blocked_by == "few-messages" and "4 messages, limit 3" in d.trace[-1].detail
    d = engine.decide(ok_request(messages=[{"role": "user", "content": "y" * 1500}]))
    assert d.allowed and d.warnings == ("short: input is 1500 characters, limit 1000",)


def test_guardrail_condition_errors_fail_closed_unless_allowed(make_engine):
    engine = make_engine(policy(BODY))
    d = engine.decide(ok_request(metadata={"other": False}))  # metadata.flag missing
    assert not d.allowed and d.blocked_by == "strict-meta"
    assert "failing closed" in d.trace[-1].detail
    d = engine.decide(ok_request(metadata={"flag": False}))  # metadata.other missing
    assert d.allowed
    assert any(t.rule == "lenient-meta" and t.outcome == "error-allowed" for t in d.trace)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"tenant": "acme"}, "tenant"),
        ({"tenant": {"id": 5}}, "tenant.id"),
        ({"tags": "code"}, "tags"),
        ({"tags": ["ok", 3]}, "tags[1]"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"user": {"id": True}}, "user.id"),
    ],
)
def test_wrong_types_are_request_errors_naming_the_field(make_engine, request_, field):
    engine = make_engine(policy(BODY))
    with pytest.raises(RequestError) as info:
        engine.decide(request_)
    assert info.value.field == field
    assert f"request.{field}:" in str(info.value)


def test_non_mapping_request_and_unknown_policy(make_engine):
    engine = make_engine(policy(BODY))
    with pytest.raises(RequestError, match="must be a mapping"):
        engine.decide(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="unknown policy 'q'"):
        engine.decide({}, policy="q")


def test_policy_name_required_when_the_bundle_has_several(tmp_path):
    (tmp_path / "m.yaml").write_text(textwrap.dedent(CATALOG))
    for name in ("alpha", "beta"):
        (tmp_path / f"{name}.yaml").write_text(
            policy("routing: {default: t}\ntiers: {t: {targets: [{model: small}]}}\n", name=name)
        )
    engine = Engine.from_path(tmp_path)
    with pytest.raises(RequestError, match=r"name one \(policy=\.\.\. in Python"):
        engine.decide({})
    assert engine.decide({}, policy="beta").policy.name == "beta"
    with pytest.raises(RequestError) as info:
        engine.decide({}, policy="alpah")
    assert "did you mean 'alpha'" in str(info.value)


def test_broken_bundle_raises_one_policy_error_with_every_diagnostic(tmp_path):
    (tmp_path / "m.yaml").write_text(textwrap.dedent(CATALOG))
    (tmp_path / "p.yaml").write_text(
        policy(
            "tiers: {t: {targets: [{model: nope}], fallback: [gone]}}\n"
            "routing: {default: missing}\n"
        )
    )
    with pytest.raises(PolicyError) as info:
        Engine.from_path(tmp_path)
    codes = sorted(d.code for d in info.value.diagnostics if d.is_error)
    assert codes == ["PD201", "PD202", "PD203"]
    assert "p.yaml" in str(info.value)


def test_input_tokens_are_computed_and_the_counter_named(make_engine):
    d = make_engine(policy(BODY)).decide(
        ok_request(messages=[{"role": "user", "content": "abcdefgh"}])
    )
    assert d.token_counter == "estimate:chars/4"
    assert d.request["input_chars"] == 8 and d.request["input_tokens"] == 2 + 4


requests = st.fixed_dictionaries(
    {
        "tenant": st.fixed_dictionaries(
            {"id": st.text(max_size=5), "tier": st.sampled_from(["free", "pro", "vip"])}
        ),
        "user": st.fixed_dictionaries({"id": st.text(min_size=1, max_size=5)}),
        "tags": st.lists(st.sampled_from(["code", "faq"]), max_size=2),
        "metadata": st.just({"flag": False, "other": True}),
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.just("user"), "content": st.text(max_size=20)}),
            max_size=4,
        ),
    }
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests)
def test_same_request_same_decision_across_fresh_engines(make_engine, request):
    first = make_engine(policy(BODY)).decide(request).to_dict()
    second = make_engine(policy(BODY)).decide(request).to_dict()
    assert first == second
    assert isinstance(Decision, type)
