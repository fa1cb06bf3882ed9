"""The test bundle and helpers shared by the LiteLLM integration tests."""

from __future__ import annotations

from typing import Any

# Prices chosen so that LiteLLM's mock usage (10 prompt + 20 completion tokens)
# costs whole micro-dollars on every model: budgets count integer micro-dollars.
POLICY = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: llm-app, version: "1"}
context:
  tenant: {id: string, tier: string}
  user: {id: string}
  feature: string
models:
  fast-a: {litellm: openai/gpt-4o-mini, price: {input_per_mtok: 0.2, output_per_mtok: 0.6}}
  fast-b: {litellm: anthropic/claude-haiku-4-5, price: {input_per_mtok: 1.0, output_per_mtok: 5.0}}
  smart-a:
    litellm: anthropic/claude-sonnet-4-5
    price: {input_per_mtok: 3.0, output_per_mtok: 15.0}
  smart-b: {litellm: openai/gpt-4o, price: {input_per_mtok: 2.5, output_per_mtok: 10.0}}
tiers:
  economy:
    strategy: ordered
    targets: [{model: fast-a}, {model: fast-b}]
    fallback: [smart-b]
  premium:
    strategy: ordered
    targets: [{model: smart-a}]
    fallback: [smart-b, economy]
  solo:
    targets: [{model: smart-b}]
routing:
  default: economy
  rules:
    - name: enterprise
      when: request.tenant.tier == "enterprise"
      tier: premium
    - name: solo-feature
      when: request.feature == "solo"
      tier: solo
  retry: {attempts: 3, backoff: constant, base: 1ms, max: 1ms, jitter: none,
          on: [rate_limit, timeout, server_error]}
  timeout: 20s
  cooldown: {after_failures: 2, for: 60s}
guardrails:
  input:
    - name: pii
      pii: [email]
      action: redact
    - name: free-no-code
      when: request.tenant.tier == "free" && request.feature == "code"
      action: block
      message: Code assistance needs a paid plan
  output:
    - name: extract-json
      when: request.feature == "extract"
      json_schema: {type: object, required: [name]}
      action: block
      message: The answer was not the JSON we asked for
    - name: pii-out
      pii: [email]
      action: redact
cache:
  rules:
    - name: faq
      when: request.feature == "faq"
      ttl: 1h
      key: [model, messages]
      scope: tenant
prompts:
  system:
    versions:
      v1: {template: "You help {{ tenant.id }}."}
      v2: {template: "You are brief."}
rollouts:
  - name: system-v2
    prompt: system
    sticky_by: request.user.id
    default: v1
    variants: {v1: 50, v2: 50}
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 5.0}
    on_exceed: {action: block, message: Daily budget reached}
  - name: tiny-tenant
    key: request.tenant.id
    when: request.tenant.id == "tiny"
    window: calendar_day
    limit: {requests: 1}
    on_exceed: {action: block, message: One request a day}
---
apiVersion: policyd/v1
kind: Policy
metadata: {name: lean, version: "1"}
models:
  lean-a: {litellm: openai/gpt-4o-mini, price: {input_per_mtok: 0.2, output_per_mtok: 0.6}}
  lean-b: {litellm: openai/gpt-4o, price: {input_per_mtok: 2.5, output_per_mtok: 10.0}}
tiers:
  main: {targets: [{model: lean-a}], fallback: [lean-b]}
routing:
  default: main
  retry: {attempts: 2, backoff: constant, base: 50ms, max: 50ms, jitter: none,
          on: [rate_limit, timeout, server_error]}
  timeout: 2s  # generous: a mock answer on a loaded machine can take a few hundred ms
"""

CONTEXT = {"tenant": {"id": "acme", "tier": "pro"}, "user": {"id": "u1"}, "feature": "chat"}
HELLO = [{"role": "user", "content": "hello"}]


class Sent:
    """A LiteLLM callback that notes every call LiteLLM is about to make (mocks included)."""

    def __init__(self) -> None:
        from litellm.integrations.custom_logger import CustomLogger

        calls: list[dict[str, Any]] = []

        class _Spy(CustomLogger):  # type: ignore[misc]
            def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
                calls.append({"model": model, "messages": messages})

        self.calls = calls
        self.callback = _Spy()

    @property
    def models(self) -> list[str]:
        return [c["model"] for c in self.calls]


def answers(**by_model: str) -> dict[str, dict[str, Any]]:
    """model_params giving each model id a LiteLLM ``mock_response``."""
    return {model: {"mock_response": text} for model, text in by_model.items()}


ALL_OK = answers(
    **{
        "fast-a": "from fast-a",
        "fast-b": "from fast-b",
        "smart-a": "from smart-a",
        "smart-b": "from smart-b",
    }
)
