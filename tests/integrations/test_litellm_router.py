"""PolicyRouter on real LiteLLM code paths (Router + mock_response): routing, fallbacks, blocks."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import litellm
import pytest
from llm_setup import ALL_OK, CONTEXT, HELLO, answers

from policyd import Engine
from policyd.integrations.litellm import (
    PolicyBlockedError,
    PolicyRouter,
    PolicyUsageError,
    call_info,
)

LITELLM_NAME = {  # what LiteLLM's logging reports as the model it calls
    "fast-a": "gpt-4o-mini",
    "fast-b": "claude-haiku-4-5",
    "smart-a": "claude-sonnet-4-5",
    "smart-b": "gpt-4o",
}


def ctx(**changes: Any) -> dict[str, Any]:
    out = {**CONTEXT, **changes}
    return out


@pytest.mark.parametrize(
    ("context", "rule_model"),
    [
        (ctx(), "fast-a"),  # no rule: default tier economy
        (ctx(tenant={"id": "big", "tier": "enterprise"}), "smart-a"),  # rule enterprise
        (ctx(feature="solo"), "smart-b"),  # rule solo-feature
    ],
)
async def test_routing_obeys_the_decision_for_every_rule(
    engine: Any, sent: Any, context: dict[str, Any], rule_model: str
) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    decision = engine.decide({**context, "messages": HELLO}, policy="llm-app")
    assert decision.model == rule_model

    response = await router.acompletion(HELLO, context=context)

    info = call_info(response)
    assert info.model == info.decision.model == rule_model
    assert response.choices[0].message.content == f"from {rule_model}"
    assert sent.models == [LITELLM_NAME[rule_model]]


def test_sync_completion_routes_the_same_way(engine: Any, sent: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    response = router.completion(HELLO, context=ctx(tenant={"id": "big", "tier": "enterprise"}))
    assert response.choices[0].message.content == "from smart-a"
    assert sent.models == ["claude-sonnet-4-5"]


async def test_fallbacks_follow_the_decided_order_and_stop_at_attempts(
    engine: Any, sent: Any
) -> None:
    failing = answers(**{m: "litellm.RateLimitError" for m in LITELLM_NAME})
    router = PolicyRouter(engine, "llm-app", model_params=failing)
    context = ctx(tenant={"id": "big", "tier": "enterprise"})
    decision = engine.decide({**context, "messages": HELLO}, policy="llm-app")
    assert decision.fallbacks == ("smart-b", "fast-a", "fast-b")

    with pytest.raises(litellm.RateLimitError) as raised:
        await router.acompletion(HELLO, context=context)

    # attempts: 3 -> the decided model and the first two fallbacks, never fast-b
    assert sent.models == ["claude-sonnet-4-5", "gpt-4o", "gpt-4o-mini"]
    assert "tried smart-a" in "".join(raised.value.__notes__)


async def test_server_errors_fall_back_and_the_answer_says_who_answered(
    engine: Any, sent: Any
) -> None:
    params = {**ALL_OK, **answers(**{"smart-a": "litellm.InternalServerError"})}
    router = PolicyRouter(engine, "llm-app", model_params=params)
    response = await router.acompletion(
        HELLO, context=ctx(tenant={"id": "b", "tier": "enterprise"})
    )
    info = call_info(response)
    assert response.choices[0].message.content == "from smart-b"
    assert info.model == "smart-b"
    assert [(a.model, a.cause) for a in info.attempts] == [
        ("smart-a", "server_error"),
        ("smart-b", None),
    ]
    assert sent.models == ["claude-sonnet-4-5", "gpt-4o"]


async def test_an_error_retry_on_does_not_name_is_not_retried(engine: Any, sent: Any) -> None:
    params = {**ALL_OK, **answers(**{"fast-a": "litellm.ContextWindowExceededError"})}
    router = PolicyRouter(engine, "llm-app", model_params=params)
    with pytest.raises(litellm.ContextWindowExceededError):
        await router.acompletion(HELLO, context=ctx())
    assert sent.models == ["gpt-4o-mini"]


async def test_a_chain_shorter_than_attempts_wraps_round(engine: Any, sent: Any) -> None:
    router = PolicyRouter(
        engine, "llm-app", model_params=answers(**{"smart-b": "litellm.RateLimitError"})
    )
    with pytest.raises(litellm.RateLimitError):
        await router.acompletion(HELLO, context=ctx(feature="solo"))
    assert sent.models == ["gpt-4o"] * 3  # tier solo has one model and attempts: 3


def test_backoff_waits_between_tries(engine: Any, sent: Any) -> None:
    # policy "lean": attempts 2, constant 50ms backoff, no jitter
    router = PolicyRouter(
        engine, "lean", model_params=answers(**{"lean-a": "litellm.RateLimitError", "lean-b": "ok"})
    )
    started = time.perf_counter()
    response = router.completion(HELLO)
    assert time.perf_counter() - started >= 0.05
    assert call_info(response).model == "lean-b"
    assert sent.models == ["gpt-4o-mini", "gpt-4o"]


async def test_a_try_slower_than_the_policy_timeout_falls_back(engine: Any, sent: Any) -> None:
    # policy "lean": timeout 2s; lean-a answers only after 60 s (LiteLLM's mock_delay)
    params = {
        "lean-a": {"mock_response": "late", "mock_delay": 60},
        "lean-b": {"mock_response": "ok"},
    }
    router = PolicyRouter(engine, "lean", model_params=params)
    started = time.perf_counter()
    response = await router.acompletion(HELLO)
    assert time.perf_counter() - started < 30  # gave up on lean-a long before its answer
    info = call_info(response)
    assert response.choices[0].message.content == "ok"
    assert [a.cause for a in info.attempts] == ["timeout", None]


async def test_every_try_timing_out_raises_litellm_timeout(engine: Any) -> None:
    slow = {m: {"mock_response": "late", "mock_delay": 60} for m in ("lean-a", "lean-b")}
    router = PolicyRouter(engine, "lean", model_params=slow)
    with pytest.raises(litellm.Timeout, match=r"timeout of 2s"):
        await router.acompletion(HELLO)


async def test_a_blocked_request_never_reaches_litellm(engine: Any, sent: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    with pytest.raises(PolicyBlockedError) as raised:
        await router.acompletion(
            HELLO, context=ctx(tenant={"id": "x", "tier": "free"}, feature="code")
        )
    error = raised.value
    assert (error.kind, error.blocked_by) == ("guardrail", "free-no-code")
    assert error.message == "Code assistance needs a paid plan"
    assert error.retry_after is None
    assert sent.calls == []


async def test_a_budget_block_carries_retry_after(engine: Any, sent: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    context = ctx(tenant={"id": "tiny", "tier": "pro"})
    await router.acompletion(HELLO, context=context)
    with pytest.raises(PolicyBlockedError) as raised:
        await router.acompletion(HELLO, context=context)
    error = raised.value
    assert (error.kind, error.blocked_by, error.message) == (
        "budget",
        "tiny-tenant",
        "One request a day",
    )
    assert error.retry_after is not None and 0 < error.retry_after <= 86400
    assert len(sent.calls) == 1


async def test_redacted_text_is_what_litellm_receives(engine: Any, sent: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    messages = [{"role": "user", "content": "write to jane.doe@example.com about the invoice"}]
    response = await router.acompletion(messages, context=ctx())
    decision = call_info(response).decision
    assert decision.messages is not None, "the pii guardrail should have redacted the e-mail"
    received = sent.calls[0]["messages"]
    assert received == [dict(m) for m in decision.messages]
    assert "jane.doe@example.com" not in str(received)
    assert "invoice" in received[0]["content"]


async def test_the_rollout_prompt_goes_first_as_the_system_message(engine: Any, sent: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK, system_prompt="system")
    response = await router.acompletion(HELLO, context=ctx())
    info = call_info(response)
    chosen = info.decision.prompts["system"]
    assert info.prompt("system") == chosen.text
    assert sent.calls[0]["messages"] == [{"role": "system", "content": chosen.text}, *HELLO]

    await router.acompletion(HELLO, context=ctx(), system_prompt=None)  # per call: off
    assert sent.calls[1]["messages"] == HELLO


async def test_an_unknown_prompt_name_is_a_clear_error(engine: Any, sent: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    with pytest.raises(PolicyUsageError, match=r"no such prompt.*prompts chosen: system"):
        await router.acompletion(HELLO, context=ctx(), system_prompt="sytem")
    assert sent.calls == []


async def test_arguments_the_policy_owns_are_refused(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    with pytest.raises(PolicyUsageError, match=r"fallbacks= is decided by the policy"):
        await router.acompletion(HELLO, context=ctx(), fallbacks=["gpt-4o"])
    with pytest.raises(PolicyUsageError, match=r"timeout= is decided by the policy"):
        router.completion(HELLO, context=ctx(), timeout=3)


def test_model_params_must_name_policy_models(engine: Any) -> None:
    with pytest.raises(PolicyUsageError, match="model_params names gpt-5, not a model of policy"):
        PolicyRouter(engine, "llm-app", model_params={"gpt-5": {"mock_response": "x"}})


async def test_other_keyword_arguments_pass_through_to_litellm(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    response = await router.acompletion(
        HELLO, context=ctx(), mock_response="per-call mock", max_tokens=5, temperature=0.0
    )
    assert response.choices[0].message.content == "per-call mock"
    assert call_info(response).decision.request["max_tokens"] == 5


async def test_cooldowns_learn_from_failed_tries(bundle: Path, sent: Any) -> None:
    # cooldown: after_failures 2 -> after two rate-limited tries fast-a is skipped.
    # The engine's clock (far from the wall clock) is the one cooldowns must use.
    later = datetime(2031, 5, 6, 7, 8, tzinfo=UTC)
    engine = Engine.from_path(bundle, clock=lambda: later)
    params = {**ALL_OK, **answers(**{"fast-a": "litellm.RateLimitError"})}
    router = PolicyRouter(engine, "llm-app", model_params=params)
    for _ in range(2):
        response = await router.acompletion(HELLO, context=ctx())
        assert call_info(response).model == "fast-b"
    third = await router.acompletion(HELLO, context=ctx())
    assert call_info(third).decision.model == "fast-b"
    assert sent.models == ["gpt-4o-mini", "claude-haiku-4-5"] * 2 + ["claude-haiku-4-5"]


async def test_a_reload_between_two_calls_changes_the_route(
    engine: Any, bundle: Path, sent: Any
) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    first = await router.acompletion(HELLO, context=ctx())
    assert call_info(first).model == "fast-a"

    policy = bundle / "policies.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.write_text(
        text.replace("  default: economy", "  default: premium").replace(
            "  smart-b: {litellm: openai/gpt-4o,",
            "  smart-c: {litellm: openai/gpt-4.1, price: {input_per_mtok: 2.0, "
            "output_per_mtok: 8.0}}\n  smart-b: {litellm: openai/gpt-4o,",
        ),
        encoding="utf-8",
    )
    assert engine.reload() is True

    second = await router.acompletion(HELLO, context=ctx())
    assert call_info(second).model == "smart-a"
    assert "smart-c" in router.router.model_names  # the router follows the new model list
    assert sent.models == ["gpt-4o-mini", "claude-sonnet-4-5"]


async def test_a_policy_without_routing_is_a_clear_error(tmp_path: Path, sent: Any) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: policyd/v1\nkind: Policy\nmetadata: {name: bare}\n"
        "models:\n  m: {litellm: openai/gpt-4o-mini}\n",
        encoding="utf-8",
    )
    router = PolicyRouter(Engine.from_path(tmp_path), model_params={"m": {"mock_response": "x"}})
    with pytest.raises(PolicyUsageError, match=r"decided no model .*no routing section"):
        await router.acompletion(HELLO)
    assert sent.calls == []
