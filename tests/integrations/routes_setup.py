"""The proxy stack the proxy route tests share: a real LiteLLM proxy with the policyd
guardrail (and a recording CustomLogger) in front of a fake upstream, both on loopback.

``conftest.py`` starts it once per session (fixture ``stack``); every test tells its
requests apart by a marker in the text, the tenant id or the decision summary.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from proxy_setup import ProxyProcess, Upstream, delete_keys, guardrail_entry

from policyd.integrations.litellm_export import export_config

POLICY = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: gateway, version: "7"}
context:
  tenant: {id: string, tier: string}
  user: {id: string}
  plan: string
  feature: string
  tags: list<string>
models:
  fast: {litellm: openai/gpt-4o-mini}
  smart: {litellm: openai/gpt-4o}
  flaky: {litellm: openai/gpt-4.1-limited, price: {input_per_mtok: 0.4, output_per_mtok: 1.6}}
  flaky2: {litellm: openai/o3-limited, price: {input_per_mtok: 0.4, output_per_mtok: 1.6}}
tiers:
  economy: {targets: [{model: fast}]}
  premium: {targets: [{model: smart}], fallback: [fast]}
  shaky: {targets: [{model: flaky}], fallback: [fast]}
  broken: {targets: [{model: flaky}], fallback: [flaky2]}
routing:
  default: economy
  rules:
    - name: enterprise
      when: request.tenant.tier == "enterprise"
      tier: premium
    - name: shaky-feature
      when: request.feature == "shaky"
      tier: shaky
    - name: broken-feature
      when: request.feature == "broken"
      tier: broken
    - name: vip-user
      when: request.user.id == "vip"
      tier: premium
  retry: {attempts: 3, backoff: none, on: [rate_limit, timeout, server_error]}
guardrails:
  input:
    - name: pii
      pii: [email]
      action: redact
    - name: free-no-code
      when: request.tenant.tier == "free" && request.feature == "code"
      action: block
      message: Code assistance needs a paid plan
    - name: long-input
      max_tokens: 2000
      action: block
      message: Too long
    - name: no-banned
      when: '"banned" in request.tags'
      action: block
      message: This key may not call models
  output:
    - name: pii-out
      pii: [email]
      action: redact
budgets:
  - name: one-a-day
    key: request.tenant.id
    when: request.tenant.id.startsWith("tiny")
    window: calendar_day
    limit: {requests: 1}
    on_exceed: {action: block, message: One request a day}
"""

# request.user.id is LiteLLM's end user (the body's `user`), request.tags LiteLLM's tags
IDENTITY = {"user.id": "end_user", "tags": "tags"}
EMAIL_TEXT = "my email is jane.doe@example.com"


# A real CustomLogger on the proxy: it writes what LiteLLM's logging hands every callback
# about guardrails (never the request text) to the file POLICYD_TEST_EVENTS names.
RECORDER = """\
import json, os
from litellm.integrations.custom_logger import CustomLogger


class Recorder(CustomLogger):
    def _write(self, event, kwargs):
        slo = kwargs.get("standard_logging_object") or {}
        params = kwargs.get("litellm_params") or {}
        found = {}
        for bucket in (params.get("metadata"), params.get("litellm_metadata"),
                       kwargs.get("metadata"), kwargs.get("litellm_metadata")):
            if isinstance(bucket, dict) and "policyd" in bucket:
                found = bucket["policyd"]
                break
        record = {"event": event, "guardrail_information": slo.get("guardrail_information"),
                  "policyd": found}
        with open(os.environ["POLICYD_TEST_EVENTS"], "a") as fh:
            fh.write(json.dumps(record, default=str) + "\\n")

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._write("success", kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._write("failure", kwargs)


recorder = Recorder()
"""


def _config(bundle: Path, upstream: str, store: str, prefix: str) -> dict[str, Any]:
    config = export_config(bundle, "gateway")
    config.pop("_policy")
    for entry in config["model_list"]:
        entry["litellm_params"].update(api_base=f"{upstream}/v1", api_key="sk-fake")
    config["model_list"].append({
        "model_name": "embed",
        "litellm_params": {"model": "openai/text-embedding-3-small",
                           "api_base": f"{upstream}/v1", "api_key": "sk-fake"},
    })  # fmt: skip
    config["guardrails"] = [
        guardrail_entry(bundle, store, policy="gateway", store_options={"key_prefix": prefix},
                        identity=IDENTITY, refuse_context=["plan"], stream_overlap=64)
    ]  # fmt: skip
    config["litellm_settings"] = {"callbacks": ["policyd_recorder.recorder"]}
    return config


def start_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[ProxyProcess, Upstream]]:
    folder = tmp_path_factory.mktemp("routes")
    bundle = folder / "bundle"
    bundle.mkdir()
    (bundle / "policies.yaml").write_text(POLICY, encoding="utf-8")
    prefix = f"policyd-test:{uuid.uuid4().hex[:12]}:"
    (folder / "policyd_recorder.py").write_text(RECORDER, encoding="utf-8")
    events = {"POLICYD_TEST_EVENTS": str(folder / "events.jsonl")}
    upstream = Upstream.start()
    try:
        config = _config(bundle, upstream.url, redis_url, prefix)
        proxy = ProxyProcess.start(folder, config, env=events)
        try:
            yield proxy, upstream
        finally:
            proxy.stop()
    finally:
        upstream.stop()
        delete_keys(redis_url, prefix)


def _body(route: str, text: str, context: dict[str, Any], **extra: Any) -> dict[str, Any]:
    if route == "/v1/chat/completions":
        body: dict[str, Any] = {"model": "any", "messages": [{"role": "user", "content": text}]}
    elif route == "/v1/responses":
        body = {"model": "any", "input": [{"role": "user", "content": text}]}
    elif route == "/v1/messages":
        blocks = [{"type": "text", "text": text}]
        body = {
            "model": "any",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": blocks}],
        }
    elif route == "/v1/completions":
        body = {"model": "any", "prompt": text, "max_tokens": 50}
    else:
        body = {"model": "embed", "input": [text]}
    return {**body, "policyd_context": context, **extra}


ROUTES = ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/completions",
          "/v1/embeddings"]  # fmt: skip


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:10]}"


def _seen(upstream: Upstream, marker: str) -> list[dict[str, Any]]:
    return [r for r in upstream.requests() if marker in str(r["body"])]
