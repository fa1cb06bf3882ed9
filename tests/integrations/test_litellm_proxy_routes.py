"""Every route the LiteLLM proxy serves is enforced by the policyd guardrail, or refused.

A real ``litellm`` proxy on loopback runs the policyd guardrail in front of a fake
upstream (``fake_upstream.py``, also on loopback) that records every request body: a
blocked request never reaches it, a redacted one reaches it redacted, a budget block
is a 429 with ``Retry-After`` — on chat completions, Responses, Anthropic messages,
text completions and embeddings. Any other route is refused, naming the route. The
proxy stack is ``routes_setup``'s, shared by the session (fixture ``stack``).
"""

from __future__ import annotations

import pytest
from proxy_setup import ProxyProcess, Upstream
from routes_setup import EMAIL_TEXT, ROUTES, _body, _marker, _seen

pytestmark = [pytest.mark.slow, pytest.mark.redis]


@pytest.mark.parametrize("route", ROUTES)
def test_a_blocked_request_never_reaches_the_upstream(
    stack: tuple[ProxyProcess, Upstream], route: str
) -> None:
    proxy, upstream = stack
    marker = _marker()
    free_code = {"tenant": {"id": "f1", "tier": "free"}, "feature": "code"}
    response = proxy.post(route, _body(route, f"{marker} write me code", free_code))
    assert response.status_code == 400, response.text
    assert "Code assistance needs a paid plan" in response.text
    assert "free-no-code" in response.text
    assert _seen(upstream, marker) == []


@pytest.mark.parametrize("route", ROUTES)
def test_a_redacted_request_reaches_the_upstream_redacted(
    stack: tuple[ProxyProcess, Upstream], route: str
) -> None:
    proxy, upstream = stack
    marker = _marker()
    pro = {"tenant": {"id": f"p-{marker}", "tier": "pro"}, "feature": "chat"}
    response = proxy.post(route, _body(route, f"{marker} {EMAIL_TEXT}", pro))
    assert response.status_code == 200, response.text
    [seen] = _seen(upstream, marker)
    assert "jane.doe@example.com" not in str(seen["body"])
    assert "[EMAIL]" in str(seen["body"])
    assert "policyd_context" not in str(seen["body"])
    if route != "/v1/embeddings":  # routed: the decided model, not the caller's "any"
        assert seen["body"]["model"] == "gpt-4o-mini"
    if route != "/v1/embeddings":  # the answer names the model that served, not "any"
        assert response.json()["model"] == "gpt-4o-mini"
        assert response.headers["x-litellm-model-group"] == "fast"


@pytest.mark.parametrize("route", ROUTES)
def test_a_budget_block_is_a_429_with_retry_after(
    stack: tuple[ProxyProcess, Upstream], route: str
) -> None:
    proxy, upstream = stack
    marker = _marker()
    tiny = {"tenant": {"id": f"tiny-{marker}", "tier": "pro"}, "feature": "chat"}
    first = proxy.post(route, _body(route, f"{marker} first", tiny))
    assert first.status_code == 200, first.text
    second = proxy.post(route, _body(route, f"{marker} second", tiny))
    assert second.status_code == 429, second.text
    assert "One request a day" in second.text
    assert 1 <= int(second.headers["retry-after"]) <= 86400
    assert len(_seen(upstream, marker)) == 1


def test_other_routes_are_refused_naming_the_route(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, upstream = stack
    marker = _marker()
    response = proxy.post("/v1/images/generations", {"model": "fast", "prompt": marker})
    assert response.status_code == 403, response.text
    assert "/v1/images/generations" in response.text
    assert "unsupported_call_types" in response.text
    moderation = proxy.post("/v1/moderations", {"model": "fast", "input": "hello"})
    assert moderation.status_code == 403, moderation.text
    assert "/v1/moderations" in moderation.text
    assert _seen(upstream, marker) == []


def test_token_id_prompts_are_refused(stack: tuple[ProxyProcess, Upstream]) -> None:
    proxy, _ = stack
    pro = {"tenant": {"id": "p2", "tier": "pro"}, "feature": "chat"}
    response = proxy.post("/v1/completions", {"model": "any", "prompt": [[1, 2, 3]],
                                              "policyd_context": pro})  # fmt: skip
    assert response.status_code == 400, response.text
    assert "prompt" in response.text and "token ids" in response.text


@pytest.mark.parametrize("route", ROUTES[:4])
def test_output_guardrails_redact_the_answer_on_every_route(
    stack: tuple[ProxyProcess, Upstream], route: str
) -> None:
    proxy, _ = stack
    pro = {"tenant": {"id": "out", "tier": "pro"}, "feature": "chat"}
    response = proxy.post(route, _body(route, "say-email", pro))  # answers with an email
    assert response.status_code == 200, response.text
    assert "bob@example.com" not in response.text
    assert "write to [EMAIL]" in response.text


@pytest.mark.parametrize("route", ["/v1/responses", "/v1/messages", "/v1/completions"])
def test_streams_policyd_cannot_check_are_refused(
    stack: tuple[ProxyProcess, Upstream], route: str
) -> None:
    proxy, upstream = stack
    marker = _marker()
    pro = {"tenant": {"id": "out", "tier": "pro"}, "feature": "chat"}
    response = proxy.post(route, _body(route, marker, pro, stream=True))
    assert response.status_code == 400, response.text
    assert "without stream" in response.text
    assert _seen(upstream, marker) == []
