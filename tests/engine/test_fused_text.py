"""Text-scan guardrails written out (policyd.fused_guardrails) decide exactly as the stage.

A policy whose input guardrails scan text (PII redaction, injection, deny patterns and
terms, allow patterns) is written out as one generated function like any other; its
scans call the functions the stage calls, in the same order. Checked with hypothesis on
generated requests (texts built from the detection corpus, injection phrases, the
policies' own patterns and terms, unicode tricks, content parts, every role) for the
shipped bundle (support-bot) and a small bundle reaching the other paths (redact with
roles, two redactions, a text check behind a condition, a size limit that warns before
the text is scanned, warn and block on findings, allow patterns, a cache key over the
redacted messages, a redaction handed over to the steps when a model is too small or
cooling down); and on support_mix's hostile requests at three clock times. Every field,
the trace and its texts, ``to_dict()``, the explain rows, the redacted messages.
"""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from engine_bundles import CATALOG, policy
from fused_helpers import NOW, Setup, setup_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd import Engine
from policyd.decision import Decision, PendingTrace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "guardrails"))

from guardrail_corpus import (  # noqa: E402
    PII_NEGATIVES,
    PII_POSITIVES,
    SECRET_NEGATIVES,
    SECRET_POSITIVES,
)
from support_mix import INJECTIONS, NEAR_MISSES, PII_VALUES, TRICKS, varied_requests  # noqa: E402

TEXT_BODY = """
tiers:
  tiny: {strategy: ordered, targets: [{model: small}, {model: medium}], fallback: [big]}
  big: {strategy: ordered, targets: [{model: large}]}
routing:
  default: tiny
  rules:
    - name: big
      when: request.feature == "big"
      tier: big
  context_window: skip_small
  cooldown: {after_failures: 1, for: 30s}
guardrails:
  input:
    - name: cards
      pii: [credit_card, email]
      roles: [user]
      action: redact
    - name: docs-secrets
      when: request.feature == "docs" || request.tenant.tier == "free"
      pii: [secret]
      action: block
      on_error: allow
    - name: words
      deny_terms: [forbidden, "secret plan"]
      action: warn
    - name: long-or-phone
      max_chars: 3000
      pii: [phone]
      action: warn
    - name: rest
      pii: [email, phone, ip_address, us_ssn, iban]
      roles: [user, tool, system]
      action: redact
    - name: polite
      when: request.feature == "polite"
      allow_patterns: ['(?i)please']
      action: block
      message: Say please
    - name: injection
      injection: true
      deny_patterns: ['(?i)reveal (the )?system prompt']
      roles: [user, tool]
      action: block
cache:
  rules:
    - name: faq
      when: request.feature == "faq"
      ttl: 1h
      key: [model, messages]
"""

PIECES = (
    *PII_VALUES,
    *NEAR_MISSES,
    *INJECTIONS,
    *TRICKS,
    *(value for _, value in PII_POSITIVES),
    *(value for _, value in SECRET_POSITIVES),
    *(text for _, text in PII_NEGATIVES),
    *SECRET_NEGATIVES,
    "forbidden",
    "the secret plan",
    "please",
    "hello",
    "café ☕",
    "\ud800",  # a lone surrogate
    "",
)

_TEXT = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=5).map(" ".join),
    st.tuples(st.integers(0, 5000), st.sampled_from(PIECES)).map(lambda t: "x " * t[0] + t[1]),
)
_PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _TEXT}),
    st.fixed_dictionaries({"type": st.just("output_text"), "text": _TEXT}),
    st.just({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
)
_MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant", "tool"]),
        "content": st.one_of(_TEXT, st.lists(_PART, max_size=3)),
    }
)
_PRESENT = {
    "tenant": st.fixed_dictionaries(
        {
            "id": st.sampled_from(["t1", "t2"]),
            "tier": st.sampled_from(["free", "pro", "enterprise"]),
        }
    ),
    "user": st.fixed_dictionaries({"id": st.sampled_from(["u1", "u2", ""])}),
    "feature": st.sampled_from(["faq", "docs", "polite", "big", "chat", "account"]),
    "tags": st.lists(st.sampled_from(["code", "billing"]), max_size=2),
}
_OPTIONAL = {
    "temperature": st.sampled_from([0.0, 0.7]),
    "max_tokens": st.one_of(st.integers(1, 3000), st.integers(1, 150_000)),
    "input_tokens": st.sampled_from([70_000, 150_000]),
    "id": st.sampled_from(["r1", "r2"]),
}


@st.composite
def _requests(draw: st.DrawFn) -> dict[str, Any]:
    """Messages; tenant, user, feature and tags mostly present (a missing one makes a
    condition fail), the rest now and then."""
    request: dict[str, Any] = {"messages": draw(st.lists(_MESSAGE, min_size=1, max_size=6))}
    for name, value in _PRESENT.items():
        if draw(st.integers(0, 9)) < 9:
            request[name] = draw(value)
    for name, value in _OPTIONAL.items():
        if draw(st.booleans()):
            request[name] = draw(value)
    if "tenant" in request and draw(st.integers(0, 9)) == 0:
        del request["tenant"]["tier"]
    return request


_REQUEST = _requests()

_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    path = tmp_path_factory.mktemp("text")
    (path / "models.yaml").write_text(textwrap.dedent(CATALOG))
    (path / "policy.yaml").write_text(policy(TEXT_BODY, name="text"))
    return {"text": path, "shipped": ROOT / "policies"}


@pytest.mark.parametrize("name", ["text", "shipped"])
@_SETTINGS
@given(request=_REQUEST, seed=st.integers(0, 1000))
def test_generated_requests_decide_alike(
    bundles: dict[str, Path], name: str, request: dict[str, Any], seed: int
) -> None:
    setup = setup_of(bundles[name])
    for policy_name in setup.compiled.policies:
        setup.both(policy_name, request, seed)


VALUES = (*PII_VALUES, *NEAR_MISSES, *(value for _, value in SECRET_POSITIVES))
TIMES = (NOW, datetime(2026, 12, 3, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), when=st.sampled_from([0, 1, 2]))
def test_the_support_mix_decides_alike(seed: int, when: int) -> None:
    """support_mix's hostile requests (PII of every kind, injections, unicode tricks, long
    texts with a finding at the end, malformed requests) before, during and after the
    rollout schedule."""
    setup = setup_of(ROOT / "policies", TIMES[when])
    for request in varied_requests(4, seed, values=VALUES):
        setup.both("support-bot", request, seed)


def _redacting(tokens: int) -> dict[str, Any]:
    text = "mail jane.doe@example.com " + "x" * (tokens * 4)
    return {
        "tenant": {"id": "t1", "tier": "pro"},
        "feature": "chat",
        "messages": [{"role": "user", "content": text}],
    }


def test_a_redaction_handed_over_to_the_steps_is_kept(bundles: dict[str, Path]) -> None:
    """Too large for the tier's small model: the steps after the guardrails decide, from the
    redacted messages and the guardrails' trace, as if they had run all along."""
    setup = Setup(bundles["text"])
    request = _redacting(1500)
    setup.both("text", request, 0)
    fused = setup.compiled.policy(None).fused
    assert fused is not None
    decision = fused(request, "estimate")[0]
    assert decision.allowed and decision.model == "medium" and decision.redacted
    assert decision.messages is not None and "[EMAIL]" in decision.messages[0]["content"]
    outcomes = [(t.stage, t.rule, t.outcome) for t in decision.trace]
    assert outcomes[0] == ("guardrails", "cards", "redact")
    assert ("routing", "small", "skip") in outcomes


def test_a_redaction_during_a_cooldown_is_kept(bundles: dict[str, Path]) -> None:
    setup = Setup(bundles["text"])  # its own runtime: the cooldown stays in this test
    setup.runtime.cooldowns.report("small", True, 1, 30.0, NOW.timestamp())
    request = _redacting(1)
    del request["tenant"]["tier"]  # docs-secrets' condition fails: allowed, lazily worded
    setup.both("text", request, 0)
    fused = setup.compiled.policy(None).fused
    assert fused is not None
    decision = fused(request, "estimate")[0]
    assert decision.allowed and decision.model == "medium" and decision.redacted
    assert isinstance(Decision.__dict__["trace"].slot.__get__(decision), tuple)  # rendered
    assert (decision.trace[1].rule, decision.trace[1].outcome) == ("docs-secrets", "error-allowed")
    assert "no such key: 'tier'" in decision.trace[1].detail


def test_support_bot_decides_through_its_generated_function() -> None:
    """Engine.decide runs support-bot's generated function: a redaction, then a condition
    that fails closed, its error text rendered when the trace is first read."""
    engine = Engine.from_path(ROOT / "policies", clock=lambda: NOW)
    compiled = engine.compiled.policy("support-bot")
    assert compiled.fused is not None
    request = {"user": {"id": "u"}, "messages": [{"role": "user", "content": "I am a@example.com"}]}
    decision = engine.decide(request, "support-bot")
    assert isinstance(Decision.__dict__["trace"].slot.__get__(decision), PendingTrace)
    assert decision.blocked_by == "free-tier-no-code" and decision.redacted
    assert decision.messages == ({"role": "user", "content": "I am [EMAIL]"},)
    assert [(t.rule, t.outcome) for t in decision.trace] == [
        ("pii", "redact"),
        ("free-tier-no-code", "block"),
    ]
    assert decision.trace[0].detail == "redacted EMAIL in message 0"
    assert decision.trace[1].detail.endswith("; failing closed")
    assert request["messages"][0]["content"] == "I am a@example.com"  # the caller's, untouched


def test_a_plugin_policy_is_not_written_out(tmp_path: Path) -> None:
    """A plugin is I/O (awaited by adecide): its policy decides through its steps."""
    (tmp_path / "gs_text_plugin.py").write_text(
        "def allow(text, request):\n    return True\n", encoding="utf-8"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        body = """
        tiers: {t: {targets: [{model: small}]}}
        routing: {default: t}
        guardrails:
          input:
            - {name: pii, pii: [email], action: redact}
            - {name: custom, plugin: 'gs_text_plugin:allow'}
        """
        (tmp_path / "models.yaml").write_text(textwrap.dedent(CATALOG))
        (tmp_path / "policy.yaml").write_text(policy(body))
        engine = Engine.from_path(tmp_path, clock=lambda: NOW)
        assert engine.compiled.policy(None).fused is None
        decision = engine.decide({"messages": [{"role": "user", "content": "x a@example.com"}]})
        assert decision.allowed and decision.redacted
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("gs_text_plugin", None)
