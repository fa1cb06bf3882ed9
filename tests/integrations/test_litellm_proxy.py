"""The LiteLLM proxy with the policyd hook, started on loopback and driven over HTTP.

The proxy runs the config ``policyd export litellm`` writes (deployments answer
with ``mock_response``) plus the hook's ``guardrails:`` entry; its budgets live
in the test Redis, so this process can read the spend the proxy recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_setup import POLICY
from proxy_setup import KEY, ProxyProcess, delete_keys, guardrail_entry

from policyd import Engine
from policyd.integrations.litellm_export import export_config

pytestmark = [pytest.mark.slow, pytest.mark.redis]

HELLO = [{"role": "user", "content": "hello"}]


class Proxy:
    def __init__(self, url: str, bundle: Path, store: str, prefix: str) -> None:
        self.url = url
        self.bundle = bundle
        self.store = store
        self.prefix = prefix

    def chat(self, context: dict[str, Any], **body: Any) -> Any:
        import httpx

        payload = {"model": "any", "messages": HELLO, "policyd_context": context, **body}
        return httpx.post(f"{self.url}/v1/chat/completions", json=payload, timeout=30,
                          headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip

    def spent_usd(self, tenant: str) -> float:
        """The tenant's settled spend, read from the shared store by a second engine."""
        with Engine.from_path(self.bundle, store=self.store, key_prefix=self.prefix) as engine:
            request = {"tenant": {"id": tenant, "tier": "pro"}, "user": {"id": "probe"},
                       "messages": []}  # fmt: skip
            decision = engine.decide(request, policy="llm-app")
            engine.record(decision, input_tokens=0, output_tokens=0, cost_usd=0.0)
            return next(b.spent_usd for b in decision.budgets if b.name == "tenant-daily")


def _config(bundle: Path, store: str, prefix: str) -> dict[str, Any]:
    config = export_config(bundle, "llm-app")
    config.pop("_policy")
    for entry in config["model_list"]:
        name = entry["model_name"]
        entry["litellm_params"]["mock_response"] = (
            "litellm.RateLimitError" if name == "fast-a" else f"from {name}"
        )
    config["router_settings"].update(retry_after=0)
    config["guardrails"] = [
        guardrail_entry(bundle, store, policy="llm-app", store_options={"key_prefix": prefix})
    ]
    config["litellm_settings"] = {
        "cache": True,
        "cache_params": {"type": "local", "mode": "default_off"},
    }
    return config


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("proxy")
    bundle = folder / "bundle"
    bundle.mkdir()
    (bundle / "policies.yaml").write_text(POLICY, encoding="utf-8")
    prefix = f"policyd-test:{uuid.uuid4().hex[:12]}:"
    try:
        process = ProxyProcess.start(folder, _config(bundle, redis_url, prefix))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield Proxy(process.url, bundle, redis_url, prefix)
    finally:
        process.stop()
        delete_keys(redis_url, prefix)


def _eventually(read: Any, expected: float) -> float:
    """Spend is recorded from LiteLLM's logging callbacks, which run after the response."""
    value = read()
    for _ in range(100):
        if round(value * 1e6) == round(expected * 1e6):
            break
        time.sleep(0.05)
        value = read()
    return float(value)


def test_the_proxy_routes_falls_back_and_records_spend(proxy: Proxy) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    pro = {"tenant": {"id": tenant, "tier": "pro"}, "user": {"id": "u1"}, "feature": "chat"}
    enterprise = {**pro, "tenant": {"id": tenant, "tier": "enterprise"}}

    economy = proxy.chat(pro)
    assert economy.status_code == 200, economy.text
    # decided fast-a, which is rate limited: the decided fallback fast-b answered
    assert economy.headers["x-litellm-model-group"] == "fast-b"
    assert economy.json()["choices"][0]["message"]["content"] == "from fast-b"

    premium = proxy.chat(enterprise)
    assert premium.status_code == 200, premium.text
    assert premium.headers["x-litellm-model-group"] == "smart-a"

    costs = [float(r.headers["x-litellm-response-cost"]) for r in (economy, premium)]
    assert all(c > 0 for c in costs)
    assert round(_eventually(lambda: proxy.spent_usd(tenant), sum(costs)) * 1e6) == round(
        sum(costs) * 1e6
    )


def test_a_blocked_request_gets_the_policys_message(proxy: Proxy) -> None:
    free = {"tenant": {"id": "f1", "tier": "free"}, "user": {"id": "u1"}, "feature": "code"}
    response = proxy.chat(free)
    assert response.status_code == 400
    assert "Code assistance needs a paid plan" in response.text
    assert "free-no-code" in response.text


def test_a_budget_block_is_a_429_with_retry_after(proxy: Proxy) -> None:
    tiny = {"tenant": {"id": "tiny", "tier": "pro"}, "user": {"id": "u1"}, "feature": "chat"}
    assert proxy.chat(tiny).status_code == 200
    blocked = proxy.chat(tiny)
    assert blocked.status_code == 429, blocked.text
    assert "One request a day" in blocked.text
    assert 1 <= int(blocked.headers["retry-after"]) <= 86400


def test_output_guardrails_run_on_the_proxys_answers(proxy: Proxy) -> None:
    extract = {"tenant": {"id": "x1", "tier": "pro"}, "user": {"id": "u1"}, "feature": "extract"}
    response = proxy.chat(extract)  # "from fast-b" is not the JSON the guardrail wants
    assert response.status_code == 400, response.text
    assert "The answer was not the JSON we asked for" in response.text
    streamed = proxy.chat(extract, stream=True)
    assert "The answer was not the JSON we asked for" in streamed.text
    assert "from fast-b" not in streamed.text


def test_a_stream_through_the_proxy(proxy: Proxy) -> None:
    pro = {"tenant": {"id": "s1", "tier": "pro"}, "user": {"id": "u1"}, "feature": "chat"}
    response = proxy.chat(pro, stream=True)
    assert response.status_code == 200
    lines = [line for line in response.text.splitlines() if line.startswith("data: {")]
    text = "".join(
        (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for line in lines
    )
    assert text == "from fast-b"
