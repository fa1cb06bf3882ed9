"""The generated decide function (policyd.fused) decides exactly as the stages do.

``Engine.decide`` runs a policy's generated function where ``policyd.fused`` can write
one; ``adecide``, the policy test runner and policies it cannot write out run the steps.
Both must give equal decisions: every field, ``to_dict()``, the trace and its texts
(rendered lazily on the generated path), the explain rows, the prepared request, the
refusal of a malformed request. Checked on generated requests for the benchmark bundle,
the shipped bundle (its text scans also in test_fused_text.py) and small bundles that
reach the generator's other paths (warn guardrails, size limits with and without a
condition, no-store and global cache rules, templates with placeholders, weighted tiers
without a sticky key, cooldowns, no routing, a condition with a macro, which is called
rather than inlined).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from engine_bundles import CATALOG, policy
from fused_helpers import NOW, Setup, compiled_bundle, setup_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd import Engine
from policyd.deciding import decide
from policyd.decision import Decision, PendingTrace
from policyd.request import TokenCounter

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from routing_mix import varied_requests  # noqa: E402

WIDE_BODY = """
tiers:
  cheap: {strategy: ordered, targets: [{model: small}, {model: medium}], fallback: [big]}
  mixed:
    strategy: weighted
    targets: [{model: small, weight: 50}, {model: medium, weight: 30}, {model: huge, weight: 20}]
    fallback: [big]
  sticky:
    strategy: weighted
    sticky_by: request.tenant.id
    targets: [{model: medium, weight: 1}, {model: large, weight: 3}]
    fallback: [cheap]
  big: {strategy: cheapest, targets: [{model: large}, {model: huge}]}
routing:
  default: cheap
  rules:
    - name: mixed
      when: request.feature == "mix" || "mix" in request.tags
      tier: mixed
    - name: sticky
      when: request.priority > 3 && request.tenant.tier == "pro"
      tier: sticky
    - name: vip
      when: request.user.id.startsWith("vip")
      tier: big
    - name: tagged-code
      when: request.tags.exists(t, t == "code") && request.priority < 9
      tier: big
  context_window: skip_small
  cooldown: {after_failures: 1, for: 30s}
guardrails:
  input:
    - name: many-tags
      when: size(request.tags) > 2
      action: warn
      on_error: allow
    - name: urgent
      when: request.priority > 8
      action: warn
    - name: no-secrets
      when: request.feature == "secret"
      action: block
      on_error: allow
    - name: pasted
      max_chars: 4000
      action: warn
    - name: long-secret-sessions
      when: request.feature == "mine"
      max_messages: 3
      max_tokens: 1500
      action: block
cache:
  rules:
    - name: never
      when: request.feature == "account"
      ttl: 0s
    - name: docs
      when: request.feature == "docs" || request.priority == 2
      ttl: 10m
      scope: global
      key: [model, messages, feature]
    - name: mine
      when: request.feature == "mine"
      ttl: 5m
      scope: user
    - name: tenant
      when: request.tenant.tier == "pro"
      ttl: 1h
prompts:
  system:
    versions:
      v1: {template: "Hello {{ tenant.id }} from {{ user.id }}!"}
      v2: {template: "Hi {{ tenant.id }}."}
  footer:
    versions:
      only: {template: "Be kind, {{ user.id }}."}
  tone:
    versions:
      a: {template: "Plain."}
      b: {template: "Warm."}
rollouts:
  - name: system-v2
    prompt: system
    sticky_by: request.user.id
    when: request.tenant.tier != "enterprise"
    default: v1
    variants: {v1: 50, v2: 50}
    schedule:
      - {at: "2026-11-01T00:00:00Z", variants: {v1: 20, v2: 80}}
  - name: tone
    prompt: tone
    sticky_by: request.priority
    default: a
    variants: {a: 30, b: 70}
"""

NO_ROUTING_BODY = """
guardrails:
  input:
    - name: vip-only
      when: request.user.id.startsWith("vip") && request.priority < 5
      action: block
      message: VIPs only at low priority
    - name: tagged
      when: '"x" in request.tags'
      action: warn
cache:
  rules:
    - name: all
      when: request.feature != ""
      ttl: 1m
      scope: tenant
"""

SMALL = {
    "wide": (WIDE_BODY, "priority: int"),
    "no-routing": (NO_ROUTING_BODY, "priority: int"),
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {"routing-heavy": ROOT / "benchmarks" / "policies" / "routing-heavy"}
    out["shipped"] = ROOT / "policies"
    for name, (body, context) in SMALL.items():
        path = tmp_path_factory.mktemp(name)
        (path / "models.yaml").write_text(textwrap.dedent(CATALOG))
        (path / "policy.yaml").write_text(policy(body, name=name, context=context))
        out[name] = path
    return out


# -- requests -----------------------------------------------------------------------------

_WORDS = st.sampled_from(["mix", "research", "batch", "x", "code", "", "vip-1", "pro"])
_ODD = st.one_of(st.integers(-2, 12), st.booleans(), st.floats(-1, 3), st.none(), _WORDS)
_TEXT = st.one_of(_WORDS, st.integers(0, 9000).map(lambda n: "word " * (n // 5)))
_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant"]), "content": _TEXT}
)
_TENANT = {
    "id": st.one_of(_WORDS, st.just("internal-1")),
    "tier": st.sampled_from(["pro", "free", "enterprise"]),
    "plan": st.sampled_from(["pro", "free", "enterprise", "team"]),
    "region": st.sampled_from(["eu", "us"]),
}
_USER = {
    "id": st.one_of(_WORDS, st.just("vip-7")),
    "country": st.sampled_from(["US", "DE", "KP"]),
    "beta": st.booleans(),
}


_FEATURES = ["mix", "secret", "account", "docs", "mine", "faq", "code", "admin", "", "batch"]
_FEATURES += ["summarize"]


@st.composite
def _record(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """Each field present (mostly), absent, or of a wrong type (a refusal)."""
    out: dict[str, Any] = {}
    for name, good in fields.items():
        roll = draw(st.integers(0, 19))
        if roll < 15:
            out[name] = draw(good)
        elif roll == 15:
            out[name] = draw(_ODD)
    return out


_REQUEST = st.builds(
    lambda messages, rest: {"messages": messages, **rest},
    st.lists(_MESSAGE, min_size=1, max_size=24),
    _record(
        {
            "tenant": _record(_TENANT),
            "user": _record(_USER),
            "feature": st.sampled_from(_FEATURES),
            "tags": st.lists(_WORDS, max_size=4),
            "priority": st.integers(0, 10),
            "temperature": st.sampled_from([0.0, 0.7, 1.8]),
            "max_tokens": st.one_of(st.integers(1, 3000), st.integers(1, 300_000)),
            "model": st.sampled_from(["big-1", "small"]),
            "id": _WORDS,
            "org": _record({"id": _WORDS, "plan": st.sampled_from(["team", "solo"])}),
            "repo_files": st.integers(0, 900),
        }
    ),
)

_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("name", ["routing-heavy", "shipped", "wide", "no-routing"])
@_SETTINGS
@given(request=_REQUEST, seed=st.integers(0, 1000))
def test_generated_requests_decide_alike(
    bundles: dict[str, Path], name: str, request: dict[str, Any], seed: int
) -> None:
    setup = setup_of(bundles[name])
    for policy_name in setup.compiled.policies:
        setup.both(policy_name, request, seed)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), when=st.sampled_from([0, 1, 2]))
def test_the_benchmark_mix_decides_alike(seed: int, when: int) -> None:
    """routing_mix's varied requests (missing, mistyped, oversized, malformed) at the three
    clock times of the agreement test: before, during and after the rollout schedule."""
    now = [NOW, datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)][when]
    setup = setup_of(ROOT / "benchmarks" / "policies" / "routing-heavy", now)
    for request in varied_requests(5, seed):
        setup.both("routing-heavy", request, seed)


def test_a_cooldown_hands_over_to_the_steps(bundles: dict[str, Path]) -> None:
    """While a model cools down the generated function gives the decision to the stages
    (the same prepared request, clock reading and id): equal to the steps' decision."""
    setup = Setup(bundles["wide"])  # its own runtime: the cooldown stays in this test
    request = {"messages": [{"role": "user", "content": "hi"}], "feature": "mix", "priority": 0}
    setup.runtime.cooldowns.report("small", True, 1, 30.0, NOW.timestamp())
    setup.both("wide", request, 0)
    fused = setup.compiled.policy(None).fused
    assert fused is not None
    decision = fused(request, "estimate")[0]
    assert decision.allowed and decision.model != "small"
    assert ("routing", "small", "skip") in [(t.stage, t.rule, t.outcome) for t in decision.trace]


def test_the_engine_decides_through_the_generated_function(bundles: dict[str, Path]) -> None:
    engine = Engine.from_path(bundles["routing-heavy"], clock=lambda: NOW)
    compiled = engine.compiled.policy(None)
    assert compiled.fused is not None
    request = {"messages": [{"role": "user", "content": "hi"}], "tenant": {"id": "t"}}
    decision = engine.decide(request)
    # only the generated path leaves an error's text to be rendered when read
    assert isinstance(Decision.__dict__["trace"].slot.__get__(decision), PendingTrace)
    assert decision.revision is compiled
    assert decision.blocked_by == "embargoed-country"
    assert decision.trace[0].detail == "condition failed: no such key: 'user'; failing closed"


def test_the_shipped_policies_decide_through_their_generated_functions(
    bundles: dict[str, Path],
) -> None:
    """Both shipped policies are written out (support-bot with its text scans: see
    test_fused_text.py) and decide the example requests as their steps do."""
    setup = setup_of(bundles["shipped"])
    fused = {n: p.fused is not None for n, p in setup.compiled.policies.items()}
    assert fused == {"code-assistant": True, "support-bot": True}
    engine = Engine.from_path(bundles["shipped"], clock=lambda: NOW)
    counter = TokenCounter()
    for path in sorted((ROOT / "examples" / "requests").glob("*.json")):
        request = json.loads(path.read_text())
        for name in engine.policies:
            served = engine.compiled.policies[name]
            ours = engine.decide(request, name)
            theirs = decide(served, setup.runtime, counter, request)
            assert dataclasses.replace(ours, id="") == dataclasses.replace(theirs, id="")
            assert ours.to_dict() == theirs.to_dict()


def test_a_budgeted_policy_is_not_written_out(bundles: dict[str, Path], tmp_path: Path) -> None:
    body = """
    tiers: {t: {targets: [{model: small}]}}
    routing: {default: t}
    budgets:
      - name: day
        key: request.tenant.id
        limit: {usd: 1.0}
        window: calendar_day
    """
    (tmp_path / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (tmp_path / "policy.yaml").write_text(policy(body))
    compiled, _ = compiled_bundle(tmp_path, lambda: NOW)
    assert compiled.policy(None).fused is None
    engine = Engine.from_path(tmp_path, clock=lambda: NOW)
    decision = engine.decide(
        {"tenant": {"id": "a"}, "messages": [{"role": "user", "content": "x"}]}
    )
    assert decision.allowed and [b.name for b in decision.budgets] == ["day"]


def test_an_error_text_is_rendered_when_the_trace_is_read(bundles: dict[str, Path]) -> None:
    """On the generated path a CEL error's text waits until the trace is read; then it is
    the stages' text, the same for every way of reading the decision."""
    fused = setup_of(bundles["routing-heavy"]).compiled.policy(None).fused
    assert fused is not None
    request = {"messages": [{"role": "user", "content": "hi"}], "tenant": {"id": "t"}}
    decision = fused(request, "estimate")[0]
    raw = Decision.__dict__["trace"].slot.__get__(decision)  # the stored value, unread
    assert isinstance(raw, PendingTrace)
    assert copy.copy(decision).trace == decision.trace  # through __getstate__
    assert type(decision.trace) is tuple
    assert "condition failed: no such key: 'user'" in decision.trace[0].detail
    assert dataclasses.replace(decision).trace == decision.trace
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.trace = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("messages", "chars", "outcome"),
    [(21, 10, "block"), (20, 10, None), (2, 3001, "warn"), (25, 4000, "block")],
)
def test_the_shipped_size_limits_fire_alike(
    bundles: dict[str, Path], messages: int, chars: int, outcome: str | None
) -> None:
    """code-assistant's max_messages (block) and max_chars (warn), at and over the limit."""
    setup = setup_of(bundles["shipped"])
    text = "x" * (chars // messages)
    request = {
        "org": {"id": "o", "plan": "team"},
        "messages": [{"role": "user", "content": text + "y" * (chars % messages * (i == 0))}
                     for i in range(messages)],
    }  # fmt: skip
    setup.both("code-assistant", request, 0)
    fused = setup.compiled.policies["code-assistant"].fused
    assert fused is not None
    decision = fused(request, "estimate")[0]
    fired = [t.outcome for t in decision.trace if t.stage == "guardrails"]
    assert fired == ([outcome] if outcome else [])
