"""A stream through the proxy reaches the client as the output checker releases it.

The fake upstream sends half of a ``gate-stream`` answer (200 characters) and then
waits until the test releases it; the guardrail holds back ``stream_overlap + 64``
characters (128 here) for its PII check. So the client must see text before the
release: a proxy that buffered the answer would show none until the gate's timeout,
when the upstream cuts the answer off, and the test fails. Runs on the proxy of
routes_setup.
"""

from __future__ import annotations

import json

import pytest
from proxy_setup import KEY, ProxyProcess, Upstream

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_released_text_reaches_the_client_before_the_answer_is_over(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    import httpx

    proxy, upstream = stack
    context = {"tenant": {"id": "streams", "tier": "pro"}, "feature": "chat"}
    body = {"model": "any", "stream": True, "policyd_context": context,
            "messages": [{"role": "user", "content": "gate-stream please"}]}  # fmt: skip
    before: list[str] = []
    after: list[str] = []
    released = False
    headers = {"Authorization": f"Bearer {KEY}"}
    with (
        httpx.Client(timeout=300, headers=headers) as client,
        client.stream("POST", f"{proxy.url}/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            text = (choices[0].get("delta") or {}).get("content") or ""
            if not text:
                continue
            (after if released else before).append(text)
            if not released:  # the first text came while the upstream was still waiting
                httpx.post(f"{upstream.url}/_release", timeout=30)
                released = True
    assert before, "no text reached the client before the answer was over"
    assert len("".join(before + after)) == 400
