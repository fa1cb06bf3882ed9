"""The proxy makes exactly the attempts the decision names, counted at the upstream.

The config is what ``policyd export litellm`` writes (router-level ``num_retries``,
fallbacks, cooldowns); the policy allows 3 attempts on ``rate_limit``. The fake
upstream answers 429 for every model named ``*limited``.
"""

from __future__ import annotations

from typing import Any

import pytest
from proxy_setup import ProxyProcess, Upstream
from routes_setup import _marker, _seen

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def _chat(proxy: ProxyProcess, marker: str, feature: str) -> Any:
    context = {"tenant": {"id": f"r-{marker}", "tier": "pro"}, "feature": feature}
    body = {"model": "any", "messages": [{"role": "user", "content": marker}],
            "policyd_context": context}  # fmt: skip
    return proxy.post("/v1/chat/completions", body)


def test_a_rate_limited_model_gets_the_decided_attempts_and_no_more(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, upstream = stack
    marker = _marker()
    # decided: flaky, fallback fast, 3 attempts: the try the chain leaves over is a retry
    # of the decided model -> flaky, flaky, fast
    response = _chat(proxy, marker, "shaky")
    assert response.status_code == 200, response.text
    models = [r["body"]["model"] for r in _seen(upstream, marker)]
    assert models == ["gpt-4.1-limited", "gpt-4.1-limited", "gpt-4o-mini"]
    assert response.headers["x-litellm-model-group"] == "fast"
    # one retry of flaky, one fallback (LiteLLM alone reports the answering group's 0)
    assert response.headers["x-litellm-attempted-retries"] == "1"
    assert response.headers["x-litellm-attempted-fallbacks"] == "1"


def test_when_every_attempt_fails_there_are_exactly_three(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, upstream = stack
    marker = _marker()
    response = _chat(proxy, marker, "broken")
    assert response.status_code == 429, response.text
    models = [r["body"]["model"] for r in _seen(upstream, marker)]
    assert len(models) == 3, models
    assert models[:2] == ["gpt-4.1-limited", "gpt-4.1-limited"]
    assert models[2] == "o3-limited"
