"""Routing: rules, strategies, stickiness, fallback chains, context windows, cooldowns."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from engine_bundles import policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TIERS = """
tiers:
  cheap:
    strategy: weighted
    sticky_by: request.user.id
    targets: [{model: small, weight: 75}, {model: medium, weight: 25}]
    fallback: [medium]
  best:
    strategy: ordered
    targets: [{model: large}, {model: huge}]
    fallback: [cheap]
routing:
  default: cheap
  rules:
    - name: enterprise
      when: request.tenant.tier == "enterprise"
      tier: best
    - name: tagged-code
      when: '"code" in request.tags'
      tier: best
  retry: {attempts: 3, base: 100ms, max: 2s, on: [rate_limit, timeout]}
  timeout: 20s
  cooldown: {after_failures: 2, for: 30s}
"""


def msg(text: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_first_matching_rule_picks_the_tier_and_ordered_chain(make_engine):
    engine = make_engine(policy(TIERS))
    d = engine.decide(
        {
            "tenant": {"id": "a", "tier": "enterprise"},
            "tags": ["code"],
            "user": {"id": "u"},
            "messages": msg(),
        }
    )
    assert (d.tier, d.model, d.litellm_model) == ("best", "large", "anthropic/claude-sonnet-4-5")
    # the tier's other target, then the fallback tier's targets in weight order, no duplicates
    assert d.fallbacks == ("huge", "small", "medium")
    assert d.litellm_fallbacks == (
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
    )
    assert d.trace[0].rule == "enterprise" and d.trace[0].outcome == "match"
    assert d.retry is not None and d.retry.attempts == 3 and d.retry.on == ("rate_limit", "timeout")
    assert d.timeout_s == 20.0


def test_later_rule_and_default(make_engine):
    engine = make_engine(policy(TIERS))
    d = engine.decide({"tenant": {"id": "a", "tier": "pro"}, "tags": ["code"], "messages": msg()})
    assert d.tier == "best" and d.trace[0].rule == "tagged-code"
    d = engine.decide({"tenant": {"id": "a", "tier": "pro"}, "tags": [], "user": {"id": "u1"}})
    assert d.tier == "cheap"
    assert d.model in ("small", "medium")
    assert d.model not in d.fallbacks


def test_condition_error_is_no_match_and_traced(make_engine):
    engine = make_engine(policy(TIERS))
    d = engine.decide({"user": {"id": "u1"}, "messages": msg()})  # no tenant, no tags
    errors = [t for t in d.trace if t.outcome == "error"]
    assert [t.rule for t in errors] == ["enterprise", "tagged-code"]
    assert all("no match" in t.detail for t in errors)
    assert d.allowed and d.tier == "cheap"


def test_sticky_weighted_choice_is_stable_and_follows_weights(make_engine):
    engine = make_engine(policy(TIERS))
    picks = Counter()
    for i in range(4000):
        request = {"tenant": {"id": "t", "tier": "pro"}, "tags": [], "user": {"id": f"user-{i}"}}
        first = engine.decide(request).model
        assert engine.decide(request).model == first  # same key, same target
        picks[first] += 1
    share = picks["small"] / 4000
    assert 0.72 < share < 0.78, picks


def test_weighted_without_sticky_key_uses_request_id_then_random(make_engine):
    body = TIERS.replace("    sticky_by: request.user.id\n", "")
    engine = make_engine(policy(body))
    seeded = [engine.decide({"id": "req-42", "tags": []}) for _ in range(5)]
    assert len({d.model for d in seeded}) == 1
    assert "seeded by request id" in seeded[0].trace[-1].detail
    unseeded = engine.decide({"tags": []})
    assert "random" in unseeded.trace[-1].detail


def test_skip_small_filters_models_by_context_window(make_engine):
    engine = make_engine(policy(TIERS))
    # 4,000 characters ~ 1,004 tokens: too big for small (1,000), fits medium (8,000)
    d = engine.decide(
        {
            "tenant": {"id": "t", "tier": "pro"},
            "tags": [],
            "user": {"id": "u"},
            "messages": msg("x" * 4000),
        }
    )
    assert d.model == "medium"
    assert "small" not in d.fallbacks
    assert any(t.outcome == "skip" and t.rule == "small" for t in d.trace)


def test_too_large_for_every_model_blocks(make_engine):
    engine = make_engine(policy(TIERS))
    d = engine.decide({"tags": [], "input_tokens": 500_000, "user": {"id": "u"}})
    assert not d.allowed and d.blocked_by == "context_window"
    assert d.model is None and d.fallbacks == ()


def test_cooldown_skips_a_failing_model_and_it_returns(make_engine, clock):
    engine = make_engine(policy(TIERS))
    request = {"tenant": {"id": "a", "tier": "enterprise"}, "tags": [], "messages": msg()}
    d = engine.decide(request)
    assert d.model == "large"
    engine.record(d, error="RateLimitError")
    assert engine.decide(request).model == "large"  # one failure: not yet
    engine.record(d, error=TimeoutError("slow"))
    cooled = engine.decide(request)
    assert cooled.model == "huge" and "large" not in cooled.fallbacks
    clock.now += timedelta(seconds=31)
    assert engine.decide(request).model == "large"


def test_success_resets_the_failure_count(make_engine):
    engine = make_engine(policy(TIERS))
    request = {"tenant": {"id": "a", "tier": "enterprise"}, "tags": [], "messages": msg()}
    d = engine.decide(request)
    engine.record(d, error="boom")
    engine.record(d, latency_s=0.2)
    engine.record(d, error="boom")
    assert engine.decide(request).model == "large"


def test_cheapest_strategy_orders_by_price(make_engine):
    body = """
    tiers:
      t:
        strategy: cheapest
        targets: [{model: large}, {model: medium}, {model: small}]
    routing: {default: t}
    """
    d = make_engine(policy(body)).decide({"messages": msg()})
    assert d.model == "small" and d.fallbacks == ("medium", "large")


# ---------------------------------------------------------------- property: fallback chains

MODELS = ["small", "medium", "large", "huge"]


@st.composite
def tier_graphs(draw):
    """Random acyclic tier graphs: tier i may fall back to models and to tiers j > i."""
    n = draw(st.integers(1, 4))
    tiers = {}
    for i in range(n):
        targets = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=4, unique=True))
        later = [f"t{j}" for j in range(i + 1, n)]
        fallback = draw(st.lists(st.sampled_from(MODELS + later), max_size=4, unique=True))
        strategy = draw(st.sampled_from(["ordered", "weighted", "cheapest"]))
        tiers[f"t{i}"] = (strategy, targets, fallback)
    return tiers


def _yaml(tiers) -> str:
    lines = ["tiers:"]
    for name, (strategy, targets, fallback) in tiers.items():
        lines.append(f"  {name}:")
        lines.append(f"    strategy: {strategy}")
        lines.append("    targets: [" + ", ".join(f"{{model: {m}}}" for m in targets) + "]")
        lines.append("    fallback: [" + ", ".join(fallback) + "]")
    lines.append("routing: {default: t0, context_window: ignore}")
    return "\n".join(lines) + "\n"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tiers=tier_graphs(), user=st.text(min_size=1, max_size=8))
def test_fallbacks_never_hold_the_chosen_model_or_duplicates(make_engine, tiers, user):
    engine = make_engine(policy(_yaml(tiers)))
    d = engine.decide({"user": {"id": user}, "id": user})
    assert d.model not in d.fallbacks
    assert len(set(d.fallbacks)) == len(d.fallbacks)
    _strategy, targets, fallback = tiers["t0"]
    assert d.model in targets
    # every model reachable through the tier's targets and fallbacks is offered
    reachable, todo, seen = set(targets), list(fallback), set()
    while todo:
        entry = todo.pop()
        if entry in tiers and entry not in seen:
            seen.add(entry)
            reachable |= set(tiers[entry][1])
            todo.extend(tiers[entry][2])
        elif entry not in tiers:
            reachable.add(entry)
    assert set(d.fallbacks) | {d.model} == reachable
