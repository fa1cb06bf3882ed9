"""Cache directives carried out through LiteLLM's cache; spend recorded from LiteLLM's cost."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import litellm
import pytest
from llm_setup import ALL_OK, CONTEXT, HELLO

from policyd.integrations.litellm import PolicyRouter, call_info, install_cache


def spent_usd(engine: Any, tenant: str) -> float:
    """What the tenant's daily budget has settled so far (a throwaway decision reads it)."""
    decision = engine.decide(
        {"tenant": {"id": tenant, "tier": "enterprise"}, "user": {"id": "probe"},
         "messages": []}, policy="llm-app")  # fmt: skip
    engine.record(decision, input_tokens=0, output_tokens=0, cost_usd=0.0)
    (budget,) = [b for b in decision.budgets if b.name == "tenant-daily"]
    assert budget.spent_usd is not None
    return budget.spent_usd


async def cached(key: str) -> None:
    """LiteLLM writes the cache in a background task: wait until the entry is there."""
    for _ in range(200):
        if litellm.cache.cache.get_cache(key) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"LiteLLM never cached {key}")


async def test_spend_recorded_equals_litellms_reported_cost(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    tenant = {"id": "spender", "tier": "pro"}
    costs = []
    for context in (
        {**CONTEXT, "tenant": tenant},  # fast-a
        {**CONTEXT, "tenant": {**tenant, "tier": "enterprise"}},  # smart-a
    ):
        response = await router.acompletion(HELLO, context=context)
        reported = response._hidden_params["response_cost"]
        assert reported > 0
        assert call_info(response).cost_usd == reported
        costs.append(reported)
    assert round(spent_usd(engine, "spender") * 1e6) == round(sum(costs) * 1e6)


async def test_litellms_cost_uses_the_policy_price(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    response = await router.acompletion(HELLO, context=CONTEXT)
    usage = response.usage
    # fast-a: 0.2 / 0.6 USD per million tokens in the policy (not LiteLLM's map price)
    expected = usage.prompt_tokens * 0.2e-6 + usage.completion_tokens * 0.6e-6
    assert call_info(response).cost_usd == pytest.approx(expected)


async def test_second_identical_cacheable_call_is_a_hit_and_costs_nothing(
    engine: Any, sent: Any
) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    tenant = f"faq-{uuid.uuid4().hex[:8]}"
    context = {**CONTEXT, "tenant": {"id": tenant, "tier": "pro"}, "feature": "faq"}
    first = await router.acompletion(HELLO, context=context)
    info = call_info(first)
    assert info.decision.cache is not None and not info.cache_hit
    await cached(f"{info.decision.cache.namespace}:{info.decision.cache.key}")

    second = await router.acompletion(HELLO, context=context)
    hit = call_info(second)
    assert hit.cache_hit and hit.cost_usd == 0.0 and hit.output_tokens == 0
    assert second.choices[0].message.content == first.choices[0].message.content
    assert len(sent.calls) == 1  # the hit never reached a provider
    assert round(spent_usd(engine, tenant) * 1e6) == round(info.cost_usd * 1e6)


async def test_cache_entries_are_scoped_per_tenant(engine: Any, sent: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    tag = uuid.uuid4().hex[:8]
    first = await router.acompletion(
        HELLO, context={**CONTEXT, "tenant": {"id": f"a-{tag}", "tier": "pro"}, "feature": "faq"}
    )
    directive = call_info(first).decision.cache
    await cached(f"{directive.namespace}:{directive.key}")
    other = await router.acompletion(
        HELLO, context={**CONTEXT, "tenant": {"id": f"b-{tag}", "tier": "pro"}, "feature": "faq"}
    )
    assert not call_info(other).cache_hit
    assert len(sent.calls) == 2


async def test_requests_no_rule_matches_are_not_cached_even_by_a_default_on_cache(
    engine: Any, sent: Any
) -> None:
    from litellm.caching.caching import Cache

    litellm.cache = Cache(type="local")  # the app's own cache, caching everything by default
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    for _ in range(2):
        response = await router.acompletion(HELLO, context=CONTEXT)  # feature chat: no rule
        assert not call_info(response).cache_hit
        await asyncio.sleep(0.05)
    assert len(sent.calls) == 2


async def test_cache_none_turns_caching_off(engine: Any, sent: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK, cache=None)
    context = {**CONTEXT, "feature": "faq", "tenant": {"id": uuid.uuid4().hex, "tier": "pro"}}
    for _ in range(2):
        await router.acompletion(HELLO, context=context)
        await asyncio.sleep(0.05)
    assert litellm.cache is None and len(sent.calls) == 2


@pytest.mark.redis
async def test_the_cache_can_live_in_redis(engine: Any, redis_url: str, sent: Any) -> None:
    import redis

    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK, cache=redis_url)
    tenant = f"redis-{uuid.uuid4().hex[:8]}"
    context = {**CONTEXT, "tenant": {"id": tenant, "tier": "pro"}, "feature": "faq"}
    first = await router.acompletion(HELLO, context=context)
    directive = call_info(first).decision.cache
    key = f"{directive.namespace}:{directive.key}"
    client = redis.Redis.from_url(redis_url)
    try:
        for _ in range(200):
            if client.exists(key):
                break
            await asyncio.sleep(0.01)
        assert client.exists(key), "LiteLLM's Redis cache should hold the answer"
        assert 0 < client.ttl(key) <= 3600  # the rule's ttl: 1h
        second = await router.acompletion(HELLO, context=context)
        assert call_info(second).cache_hit
        assert len(sent.calls) == 1
    finally:
        client.delete(key)
        client.close()


def test_install_cache_refuses_what_it_cannot_use() -> None:
    with pytest.raises(TypeError, match="use 'memory', a redis:// URL"):
        install_cache("memcached://x")
