"""Cache directives and prompt rollouts: keys, scopes, bucketing, schedules."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime

from engine_bundles import policy
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.stages.prompts import assign, bucket, ranges

BODY = """
tiers:
  t: {targets: [{model: small}, {model: medium}]}
routing: {default: t}
cache:
  rules:
    - name: faq
      when: request.feature == "faq"
      ttl: 1h
      key: [model, messages]
      scope: tenant
    - name: shared-docs
      when: request.feature == "docs"
      ttl: 10m
      scope: global
    - name: mine
      when: request.feature == "mine"
      ttl: 5m
    - name: never
      when: request.feature == "account"
      ttl: 0s
prompts:
  system:
    versions:
      v1: {template: "Hello {{ tenant.id }} from {{ user.id }}!"}
      v2: {template: "Hi {{ tenant.id }}."}
  footer:
    versions:
      only: {template: "Be kind."}
rollouts:
  - name: system-v2
    prompt: system
    sticky_by: request.user.id
    when: request.tenant.tier != "enterprise"
    default: v1
    variants: {v1: 70, v2: 30}
    schedule:
      - {at: "2026-12-01T00:00:00Z", variants: {v1: 0, v2: 100}}
"""


def req(feature: str, tenant: str = "acme", user: str = "u1", text: str = "hi") -> dict:
    return {
        "feature": feature,
        "tenant": {"id": tenant, "tier": "pro"},
        "user": {"id": user},
        "messages": [{"role": "user", "content": text}],
    }


def test_cache_rule_sets_ttl_key_and_tenant_namespace(make_engine):
    engine = make_engine(policy(BODY))
    d = engine.decide(req("faq"))
    assert d.cache is not None
    assert (d.cache.ttl_s, d.cache.rule, d.cache.namespace) == (
        3600,
        "faq",
        "policyd:p:tenant:acme",
    )
    expected = json.dumps(
        {
            "__namespace__": "policyd:p:tenant:acme",
            "messages": req("faq")["messages"],
            "model": d.model,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert d.cache.key == hashlib.sha256(expected.encode()).hexdigest()


def test_cache_keys_are_scoped_never_shared(make_engine):
    engine = make_engine(policy(BODY))
    a, b = engine.decide(req("faq", tenant="a")), engine.decide(req("faq", tenant="b"))
    assert a.cache.key != b.cache.key and a.cache.namespace != b.cache.namespace
    u1, u2 = engine.decide(req("mine", user="1")), engine.decide(req("mine", user="2"))
    assert u1.cache.namespace == "policyd:p:user:1" and u1.cache.key != u2.cache.key
    g1, g2 = engine.decide(req("docs", tenant="a")), engine.decide(req("docs", tenant="b"))
    assert g1.cache.key == g2.cache.key and g1.cache.namespace == "policyd:p:global"


def test_ttl_zero_means_do_not_cache_and_no_match_means_none(make_engine):
    engine = make_engine(policy(BODY))
    d = engine.decide(req("account"))
    assert d.cache is not None and d.cache.ttl_s == 0 and d.cache.key is None
    assert engine.decide(req("other")).cache is None


def test_missing_scope_id_disables_caching_with_a_trace(make_engine):
    engine = make_engine(policy(BODY))
    request = req("faq")
    del request["tenant"]
    d = engine.decide(request)
    assert d.cache is None
    assert any(t.stage == "cache" and t.outcome == "skip" for t in d.trace)


def test_cache_key_is_identical_in_another_process(make_engine, tmp_path):
    engine = make_engine(policy(BODY))
    key = engine.decide(req("faq", text="ünïcödé ✓")).cache.key
    code = (
        "import sys; from policyd import Engine;"
        f"e = Engine.from_path({str(tmp_path)!r});"
        "r = {'feature': 'faq', 'tenant': {'id': 'acme', 'tier': 'pro'}, 'user': {'id': 'u1'},"
        " 'messages': [{'role': 'user', 'content': 'ünïcödé ✓'}]};"
        "print(e.decide(r).cache.key)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert out.stdout.strip() == key


def test_rollout_bucketing_is_sha256_mod_10000(make_engine):
    engine = make_engine(policy(BODY))
    for user in ("u1", "u2", "u3", "alice", "bob"):
        d = engine.decide(req("x", user=user))
        point = int(hashlib.sha256(f"system-v2:{user}".encode()).hexdigest(), 16) % 10_000
        assert d.prompts["system"].version == ("v1" if point < 7000 else "v2")
        assert d.prompts["system"].rollout == "system-v2"


def test_rollout_text_template_and_fixed_prompt(make_engine):
    engine = make_engine(policy(BODY))
    d = engine.decide(req("x", tenant="acme", user="u1"))
    choice = d.prompts["system"]
    assert choice.text in ("Hello acme from u1!", "Hi acme.")
    assert d.prompts["footer"].version == "only" and d.prompts["footer"].text == "Be kind."


def test_ineligible_or_keyless_requests_get_the_default(make_engine):
    engine = make_engine(policy(BODY))
    enterprise = req("x")
    enterprise["tenant"]["tier"] = "enterprise"
    assert engine.decide(enterprise).prompts["system"].version == "v1"
    keyless = req("x")
    del keyless["user"]
    d = engine.decide(keyless)
    assert d.prompts["system"].version == "v1"
    assert any(t.stage == "prompts" and t.outcome == "default" for t in d.trace)


def test_schedule_switches_shares_at_its_time(make_engine, clock):
    engine = make_engine(policy(BODY))
    users = [f"user{i}" for i in range(200)]
    before = {engine.decide(req("x", user=u)).prompts["system"].version for u in users}
    assert before == {"v1", "v2"}
    clock.now = datetime(2026, 12, 1, tzinfo=UTC)
    after = {engine.decide(req("x", user=u)).prompts["system"].version for u in users}
    assert after == {"v2"}


def test_bucketing_is_stable_across_processes():
    users = [f"user-{i}" for i in range(50)]
    here = [bucket("r", u) for u in users]
    code = f"from policyd.stages.prompts import bucket;print([bucket('r', u) for u in {users!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "7", "PATH": ""},
    )
    assert out.stdout.strip() == str(here)


@settings(max_examples=200, deadline=None)
@given(
    shares=st.lists(st.integers(0, 100), min_size=2, max_size=4).filter(lambda s: sum(s) <= 100),
    grow=st.integers(1, 100),
    keys=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=30),
)
def test_growing_the_last_variant_only_moves_users_into_it(shares, grow, keys):
    names = [f"v{i}" for i in range(len(shares) + 1)]
    last = 100 - sum(shares)
    before = dict(zip(names, [*shares, last], strict=True))
    # take `grow` points from the earlier variants, latest first, and give them to the last
    after = dict(before)
    remaining = grow
    for name in reversed(names[:-1]):
        take = min(after[name], remaining)
        after[name] -= take
        after[names[-1]] += take
        remaining -= take
    t_before, t_after = ranges(before), ranges(after)
    for key in keys:
        point = bucket("r", key)
        old, new = assign(t_before, point), assign(t_after, point)
        assert new == old or new == names[-1]
