"""What a caller may set through ``policyd_context`` in the proxy, and what it may not.

Computed attributes (``input_tokens``, ``input_chars``, ``messages``, ``model``) are
never taken from the caller; identity attributes the guardrail maps come from LiteLLM
(the body's ``user`` as LiteLLM's end user, LiteLLM's tags incl. ``x-litellm-tags``);
``refuse_context`` attributes get the request refused. Runs on the proxy of
routes_setup (the session's stack), plus unit tests of the rules.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from proxy_setup import ProxyProcess, Upstream
from routes_setup import _marker, _seen

from policyd.integrations._proxy_context import ContextRefused, ContextRules

pytestmark = [pytest.mark.slow, pytest.mark.redis]

PRO = {"tenant": {"id": "ctx", "tier": "pro"}, "feature": "chat"}


def _chat(
    proxy: ProxyProcess,
    text: str,
    context: dict[str, Any],
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    body = {"model": "any", "messages": [{"role": "user", "content": text}],
            "policyd_context": context, **extra}  # fmt: skip
    return proxy.post("/v1/chat/completions", body, headers)


def test_a_caller_cannot_shrink_what_the_policy_measures(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, upstream = stack
    marker = _marker()
    long_text = marker + " word" * 4000  # ~20,000 characters: over long-input's 2000 tokens
    lying = {**PRO, "input_tokens": 0, "input_chars": 0, "model": "fast",
             "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    response = _chat(proxy, long_text, lying)
    assert response.status_code == 400, response.text
    assert "long-input" in response.text
    assert _seen(upstream, marker) == []
    # nor can a context "messages" hide the real text from the redaction
    marker = _marker()
    ok = _chat(proxy, f"{marker} mail jane.doe@example.com", lying)
    assert ok.status_code == 200, ok.text
    [seen] = _seen(upstream, marker)
    assert "jane.doe@example.com" not in str(seen["body"])


def test_identity_comes_from_litellm_not_from_the_caller(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, upstream = stack
    # user.id is mapped to LiteLLM's end user: the caller's context value is ignored
    marker = _marker()
    claimed = _chat(proxy, marker, {**PRO, "user": {"id": "vip"}})
    assert claimed.status_code == 200, claimed.text
    assert _seen(upstream, marker)[0]["body"]["model"] == "gpt-4o-mini"
    marker = _marker()
    end_user = _chat(proxy, marker, PRO, user="vip")
    assert end_user.status_code == 200, end_user.text
    assert _seen(upstream, marker)[0]["body"]["model"] == "gpt-4o"  # vip-user rule: premium
    # tags are LiteLLM's: the x-litellm-tags header counts, a context "tags" does not
    marker = _marker()
    tagged = _chat(proxy, marker, PRO, headers={"x-litellm-tags": "banned,other"})
    assert tagged.status_code == 400, tagged.text
    assert "no-banned" in tagged.text
    body_tags = _chat(proxy, marker, PRO, tags=["banned"])
    assert body_tags.status_code == 400, body_tags.text
    context_tags = _chat(proxy, marker, {**PRO, "tags": ["banned"]})
    assert context_tags.status_code == 200, context_tags.text


def test_refused_context_attributes_are_refused_by_name(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, upstream = stack
    marker = _marker()
    response = _chat(proxy, marker, {**PRO, "plan": "enterprise-secret-plan"})
    assert response.status_code == 400, response.text
    assert "policyd_context.plan" in response.text
    assert "enterprise-secret-plan" not in response.text
    assert _seen(upstream, marker) == []


class _Auth:
    team_id = "team-1"
    user_id = None
    team_metadata: ClassVar[dict[str, str]] = {"tier": "enterprise"}


def test_context_rules_without_a_proxy() -> None:
    rules = ContextRules.parse(
        {"tenant.id": "team_id", "tenant.tier": "team_metadata.tier", "user.id": "user_id"},
        ["feature"],
    )
    caller = {"tenant": {"id": "forged", "tier": "free"}, "user": {"id": "forged"},
              "input_tokens": 0, "max_tokens": 1, "metadata": {"team_id": "forged"},
              "other": 1}  # fmt: skip
    built = rules.build(caller, _Auth(), {})
    assert built["tenant"] == {"id": "team-1", "tier": "enterprise"}
    assert built["user"] == {}  # mapped, and LiteLLM has no user: not the caller's
    assert "input_tokens" not in built and "max_tokens" not in built
    assert built["metadata"]["team_id"] == "team-1"
    assert built["other"] == 1
    assert caller["tenant"]["id"] == "forged"  # the caller's mapping is not modified
    with pytest.raises(ContextRefused, match=r"policyd_context\.feature"):
        rules.build({"feature": "x"}, _Auth(), {})
    with pytest.raises(ValueError, match="unknown source 'team'"):
        ContextRules.parse({"tenant.id": "team"})
    with pytest.raises(ValueError, match="computed by policyd"):
        ContextRules.parse(None, ["input_tokens"])


def test_policy_router_ignores_computed_attributes_in_context() -> None:
    from policyd.integrations._litellm_support import build_request

    messages = [{"role": "user", "content": "x" * 100}]
    request = build_request(messages, {"input_tokens": 0, "model": "m", "messages": [],
                                       "input_chars": 1, "feature": "f"}, {}, None)  # fmt: skip
    assert request == {"messages": messages, "feature": "f"}
