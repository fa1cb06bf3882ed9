"""policyd in LiteLLM's observability: a real ``CustomLogger`` registered on the proxy
sees policyd's ``guardrail_information`` records (as LiteLLM's own guardrails write
them) and the decision summary in the request's logging metadata — never a matched
value. Runs on the proxy of routes_setup (its recorder callback)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from proxy_setup import ProxyProcess, Upstream, wait_for
from routes_setup import _marker

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def _events(proxy: ProxyProcess) -> list[dict[str, Any]]:
    path = proxy.folder / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _for(proxy: ProxyProcess, decision_field: str, value: Any) -> list[dict[str, Any]]:
    return [e for e in _events(proxy) if (e["policyd"] or {}).get(decision_field) == value]


def _chat(proxy: ProxyProcess, text: str, context: dict[str, Any]) -> Any:
    body = {"model": "any", "messages": [{"role": "user", "content": text}],
            "policyd_context": context}  # fmt: skip
    return proxy.post("/v1/chat/completions", body)


def test_a_redacted_request_is_visible_in_litellms_logging(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, _ = stack
    context = {"tenant": {"id": f"log-{_marker()}", "tier": "enterprise"}, "feature": "chat"}
    response = _chat(proxy, "mail jane.doe@example.com or j.d@example.org", context)
    assert response.status_code == 200, response.text

    def mine() -> list[dict[str, Any]]:  # the only enterprise request with two emails
        return [e for e in _for(proxy, "rule", "enterprise") if e["event"] == "success"
                and e["policyd"].get("redactions") == {"EMAIL": 2}]  # fmt: skip

    events = wait_for(mine, bool)
    assert events, _events(proxy)[-3:]
    event = events[-1]
    summary = event["policyd"]
    assert summary["policy"] == "gateway" and summary["version"] == "7"
    assert summary["digest"].startswith("sha256:")
    assert (summary["tier"], summary["model"], summary["rule"]) == ("premium", "smart",
                                                                     "enterprise")  # fmt: skip
    assert summary["redactions"] == {"EMAIL": 2}
    assert summary["blocked_by"] is None and summary["allowed"] is True
    assert summary["route"] == "/v1/chat/completions"
    info = [g for g in event["guardrail_information"] or [] if g["guardrail_name"] == "policyd"]
    modes = sorted(str(g["guardrail_mode"]) for g in info)
    assert len(info) == 2, info  # pre_call and post_call
    assert any("pre_call" in m for m in modes) and any("post_call" in m for m in modes)
    pre = next(g for g in info if "pre_call" in str(g["guardrail_mode"]))
    assert pre["guardrail_status"] == "guardrail_intervened"  # it redacted
    assert pre["masked_entity_count"] == {"EMAIL": 2}
    assert pre["guardrail_provider"] == "policyd"
    assert pre["duration"] is not None and pre["duration"] >= 0
    text = json.dumps(event)
    assert "jane.doe@example.com" not in text and "j.d@example.org" not in text


def test_a_blocked_request_is_visible_in_litellms_logging(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, _ = stack
    marker = _marker()
    context = {"tenant": {"id": f"free-{marker}", "tier": "free"}, "feature": "code"}
    response = _chat(proxy, f"{marker} code please", context)
    assert response.status_code == 400, response.text
    events = wait_for(
        lambda: [e for e in _for(proxy, "blocked_by", "free-no-code") if e["event"] == "failure"],
        bool,
    )
    assert events, _events(proxy)[-3:]
    summary = events[-1]["policyd"]
    assert summary["allowed"] is False and summary["kind"] == "guardrail"
    info = [g for g in events[-1]["guardrail_information"] or []
            if g["guardrail_name"] == "policyd"]  # fmt: skip
    assert info and info[0]["guardrail_status"] == "guardrail_intervened"
    assert marker not in json.dumps(events[-1])
