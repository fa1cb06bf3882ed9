"""Routing's less travelled paths: the slow path's chain, max_tokens, nested tiers, weights.

Written against mutants of policyd/stages/routing.py that survived the rest of the suite
(tools/mutation.py). Catalog windows: small 1,000, medium 8,000, huge 128,000,
large 200,000 tokens.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from engine_bundles import policy

ORDERED = """
tiers:
  best:
    strategy: ordered
    targets: [{model: large}, {model: huge}]
    fallback: [cheap]
  cheap:
    strategy: ordered
    targets: [{model: small}, {model: medium}]
  a:
    targets: [{model: small}]
    fallback: [b]
  b:
    targets: [{model: medium}]
    fallback: [c, large]
  c:
    targets: [{model: huge}]
routing:
  default: cheap
  rules:
    - {name: best, when: 'request.feature == "best"', tier: best}
    - {name: a, when: 'request.feature == "a"', tier: a}
"""

WEIGHTED = """
tiers:
  w:
    strategy: weighted
    sticky_by: 'request.feature == "no-key" ? dyn(null) : dyn(request.user.id)'
    targets: [{model: small, weight: 10}, {model: medium, weight: 0}, {model: huge, weight: 0}]
routing: {default: w}
"""


def msg(text: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def skipped(decision) -> list[str]:
    return [t.rule for t in decision.trace if t.outcome == "skip"]


def test_the_slow_path_keeps_the_tiers_other_targets_before_the_chain(make_engine):
    # 1,004 tokens: more than the smallest window in best's chain, so the chain is
    # filtered per request; huge (the tier's other target) must stay first in it.
    engine = make_engine(policy(ORDERED))
    d = engine.decide({"feature": "best", "messages": msg("x" * 4000)})
    assert (d.model, d.fallbacks) == ("large", ("huge", "medium"))
    assert d.litellm_fallbacks == ("openai/gpt-4o", "anthropic/claude-haiku-4-5")
    assert skipped(d) == ["small"]


def test_max_tokens_counts_toward_the_context_window(make_engine):
    engine = make_engine(policy(ORDERED))
    short = {"messages": msg()}
    assert engine.decide(short).model == "small"
    d = engine.decide({**short, "max_tokens": 1000})  # a few input tokens + 1,000 > 1,000
    assert (d.model, d.fallbacks) == ("medium", ())
    assert skipped(d) == ["small"]
    trace = next(t for t in d.trace if t.outcome == "skip")
    assert trace.detail.startswith("context window 1000 < 100")  # input tokens + 1,000
    assert engine.decide({**short, "max_tokens": 10}).model == "small"


def test_max_tokens_that_is_not_a_positive_int_adds_nothing(make_engine):
    engine = make_engine(policy(ORDERED))
    for value in (0, -5000):
        assert engine.decide({"messages": msg(), "max_tokens": value}).model == "small"


def test_a_request_too_large_for_its_tier_goes_to_the_first_fallback_that_fits(make_engine):
    engine = make_engine(policy(ORDERED))
    # 10,000 tokens: too big for small (a's only target) and for medium (b's)
    d = engine.decide({"feature": "a", "input_tokens": 10_000})
    assert (d.model, d.fallbacks) == ("huge", ("large",))
    assert d.allowed and list(dict.fromkeys(skipped(d))) == ["small", "medium"]


def test_nested_tier_fallbacks_expand_in_order(make_engine):
    engine = make_engine(policy(ORDERED))
    d = engine.decide({"feature": "a", "messages": msg()})
    # a's targets, then tier b (its targets, then tier c, then large)
    assert (d.model, d.fallbacks) == ("small", ("medium", "huge", "large"))


def test_when_only_zero_weight_targets_are_left_the_first_is_taken(make_engine):
    engine = make_engine(policy(WEIGHTED))
    d = engine.decide({"user": {"id": "u"}, "messages": msg("x" * 4000)})
    assert (d.model, d.fallbacks) == ("medium", ("huge",))
    assert d.trace[-1].detail == "medium (weighted: no positive weight left, first target)"
    # with small usable, the only positive weight always wins
    for i in range(20):
        assert engine.decide({"user": {"id": f"u{i}"}, "messages": msg()}).model == "small"


def test_a_null_sticky_key_falls_back_to_the_request_id(make_engine):
    engine = make_engine(policy(WEIGHTED))
    d = engine.decide({"feature": "no-key", "id": "req-1", "messages": msg()})
    notes = [t[1:4] for t in routing_trace(d)]
    assert ("w", "error", "sticky_by failed (null)") in notes
    assert notes[-1] == ("w", "model", "small (weighted, seeded by request id)")
    failing = engine.decide({"feature": "x", "messages": msg()})  # no user: an error
    notes = [t[1:4] for t in routing_trace(failing)]
    assert any(n[:2] == ("w", "error") and n[2].startswith("sticky_by failed (") for n in notes)
    assert "sticky_by failed (null)" not in [n[2] for n in notes]
    assert notes[-1] == ("w", "model", "small (weighted, random)")
    keyed = engine.decide({"feature": "x", "user": {"id": "u"}, "messages": msg()})
    assert keyed.trace[-1].detail == "small (weighted, sticky)"
    assert all(t.outcome != "error" for t in keyed.trace)


COOLING = """
tiers:
  best:
    targets: [{model: large}, {model: huge}]
    fallback: [medium]
  solo:
    targets: [{model: huge}]
routing:
  default: best
  rules:
    - {name: solo, when: 'request.feature == "solo"', tier: solo}
  cooldown: {after_failures: 2, for: 30s}
"""


def test_a_cooldown_starts_after_the_set_failures_and_is_announced_once(make_engine, clock):
    engine = make_engine(policy(COOLING))
    events: list[dict] = []
    engine.on_event(events.append)
    request = {"messages": msg()}
    d = engine.decide(request)
    assert d.model == "large"
    engine.record(d, error="boom")
    engine.record(d, latency_s=0.1)  # a success resets the count
    engine.record(d, error="boom")
    assert events == [] and engine.decide(request).model == "large"
    engine.record(d, error="boom")
    assert events == [{"type": "cooldown_started", "model": "large", "seconds": 30.0}]
    cooled = engine.decide(request)
    assert (cooled.model, cooled.fallbacks) == ("huge", ("medium",))
    clock.now += timedelta(seconds=29)
    assert engine.decide(request).model == "huge"
    clock.now += timedelta(seconds=1)  # the cooldown ends exactly 30 s after it started
    assert engine.decide(request).model == "large"


def test_failures_count_against_the_model_reported(make_engine):
    engine = make_engine(policy(COOLING))
    d = engine.decide({"messages": msg()})
    engine.record(d, error="boom", model="huge")
    engine.record(d, error="boom", model="huge")
    again = engine.decide({"messages": msg()})
    assert (again.model, again.fallbacks) == ("large", ("medium",))


def test_every_target_cooling_down_is_used_anyway_with_a_warning(make_engine):
    engine = make_engine(policy(COOLING))
    request = {"feature": "solo", "messages": msg()}
    d = engine.decide(request)
    engine.record(d, error="boom")
    engine.record(d, error="boom")
    cooled = engine.decide(request)
    assert cooled.model == "huge" and cooled.allowed
    assert cooled.warnings == ("solo: every target is cooling down; using them anyway",)


def test_without_a_cooldown_failures_change_nothing(make_engine):
    engine = make_engine(policy(COOLING.replace("  cooldown: {after_failures: 2, for: 30s}\n", "")))
    events: list[dict] = []
    engine.on_event(events.append)
    d = engine.decide({"messages": msg()})
    for _ in range(5):
        engine.record(d, error="boom")
    assert engine.decide({"messages": msg()}).model == "large" and events == []


def routing_trace(decision) -> list[tuple]:
    return [tuple(t)[:4] for t in decision.trace if t.stage == "routing"]


def test_the_trace_of_the_slow_path_names_each_skip_and_the_choice(make_engine, clock):
    engine = make_engine(policy(COOLING))
    request = {"feature": "x", "messages": msg()}
    d = engine.decide(request)
    engine.record(d, error="boom")
    engine.record(d, error="boom")
    cooled = engine.decide(request)
    assert cooled.litellm_model == "openai/gpt-4o"
    assert routing_trace(cooled) == [
        ("routing", None, "default", "no rule matched; tier best"),
        ("routing", "large", "skip", "cooling down after reported failures"),
        ("routing", "best", "model", "huge (ordered)"),
    ]
    big = make_engine(policy(ORDERED)).decide({"feature": "best", "input_tokens": 5000})
    assert big.litellm_model == "anthropic/claude-sonnet-4-5"
    assert routing_trace(big) == [
        ("routing", "best", "match", "tier best"),
        ("routing", "small", "skip", "context window 1000 < 5000 tokens needed"),
        ("routing", "best", "model", "large (ordered)"),
    ]


@pytest.mark.parametrize(
    ("request_", "model"),
    [
        ({"input_tokens": 1000}, "small"),  # exactly the window: fits
        ({"input_tokens": 1001}, "medium"),
        ({"input_tokens": 999, "max_tokens": 1}, "small"),
        ({"input_tokens": 1000, "max_tokens": 1}, "medium"),
        ({"input_tokens": 1000, "max_tokens": 0}, "small"),
    ],
)
def test_the_context_window_bound_is_inclusive(make_engine, request_, model):
    assert make_engine(policy(ORDERED)).decide(request_).model == model


def test_context_window_ignore_never_filters_by_size(make_engine):
    body = COOLING.replace("default: best", "default: cheap").replace(
        "  solo:\n", "  cheap:\n    targets: [{model: small}, {model: medium}]\n  solo:\n"
    )
    engine = make_engine(policy(body.replace("routing:\n", "routing:\n  context_window: ignore\n")))
    d = engine.decide({"messages": msg()})
    engine.record(d, error="boom", model="medium")
    engine.record(d, error="boom", model="medium")
    big = engine.decide({"input_tokens": 5000})  # medium cools: the slow path runs
    assert (big.model, big.fallbacks, big.warnings) == ("small", (), ())


def test_a_model_is_usable_again_once_its_cooldown_ends_while_another_cools(make_engine, clock):
    engine = make_engine(policy(COOLING))
    d = engine.decide({"messages": msg()})
    engine.record(d, error="boom", model="large")
    engine.record(d, error="boom", model="large")
    clock.now += timedelta(seconds=20)
    engine.record(d, error="boom", model="huge")
    engine.record(d, error="boom", model="huge")
    clock.now += timedelta(seconds=11)  # large's cooldown is over, huge's is not
    again = engine.decide({"messages": msg()})
    assert (again.model, again.fallbacks, again.warnings) == ("large", ("medium",), ())


HALVES = """
tiers:
  half:
    strategy: weighted
    sticky_by: request.user.id
    targets: [{model: small, weight: 1}, {model: medium, weight: 1}]
  byint:
    strategy: weighted
    sticky_by: size(request.tags)
    targets: [{model: small, weight: 1}, {model: medium, weight: 1}]
  one:
    strategy: weighted
    sticky_by: request.user.id
    targets: [{model: small, weight: 1}, {model: medium, weight: 0}]
routing:
  default: half
  rules:
    - {name: byint, when: 'request.feature == "int"', tier: byint}
    - {name: one, when: 'request.feature == "one"', tier: one}
"""


def test_sticky_assignments_are_stable_across_releases(make_engine):
    """The bucket is sha256("<tier>:<key>"): upgrading policyd must not reshuffle users.

    Pinned for string keys and for int keys (hashed by their text, so 7 and "7" agree).
    """
    engine = make_engine(policy(HALVES))

    def picks(requests) -> str:
        return "".join("s" if engine.decide(r).model == "small" else "m" for r in requests)

    assert picks({"user": {"id": f"u{i}"}} for i in range(16)) == "msmmmmmsssmsssmm"
    assert picks({"feature": "int", "tags": ["x"] * i} for i in range(16)) == "mmsmmmsmmmssmmss"


def test_one_positive_weight_is_a_weighted_choice_not_a_fallback(make_engine):
    d = make_engine(policy(HALVES)).decide({"feature": "one", "user": {"id": "u1"}})
    assert (d.model, d.trace[-1].detail) == ("small", "small (weighted, sticky)")


def test_an_empty_request_id_does_not_seed_the_choice(make_engine):
    engine = make_engine(policy(WEIGHTED))
    d = engine.decide({"feature": "no-key", "id": "", "messages": msg()})
    assert d.trace[-1].detail == "small (weighted, random)"


def test_the_trace_of_the_fast_path_and_of_a_failing_rule(make_engine):
    engine = make_engine(policy(ORDERED))
    d = engine.decide({"feature": "best", "messages": msg()})
    assert routing_trace(d) == [
        ("routing", "best", "match", "tier best"),
        ("routing", "best", "model", "large (ordered)"),
    ]
    failing = engine.decide({"messages": msg()})  # no feature: each rule's condition errors
    assert routing_trace(failing) == [
        ("routing", "best", "error", "condition failed, no match: no such key: 'feature'"),
        ("routing", "a", "error", "condition failed, no match: no such key: 'feature'"),
        ("routing", None, "default", "no rule matched; tier cheap"),
        ("routing", "cheap", "model", "small (ordered)"),
    ]
