"""Hot reload is on by default in the proxy, and the proxy's log shows every reload:
accepted ones (which revision is live) as well as rejected ones. Runs on the proxy of
routes_setup, whose guardrail does not set ``watch``."""

from __future__ import annotations

from typing import Any

import pytest
from proxy_setup import ProxyProcess, Upstream, wait_for
from routes_setup import POLICY, _marker

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def _blocked_message(proxy: ProxyProcess) -> Any:
    """A request free-no-code blocks: its error carries the policy's current message."""
    context = {"tenant": {"id": f"rl-{_marker()}", "tier": "free"}, "feature": "code"}
    body = {"model": "any", "messages": [{"role": "user", "content": "hi"}],
            "policyd_context": context}  # fmt: skip
    return proxy.post("/v1/chat/completions", body)


def test_a_changed_policy_goes_live_and_the_log_says_so(
    stack: tuple[ProxyProcess, Upstream],
) -> None:
    proxy, _ = stack
    path = proxy.folder / "bundle" / "policies.yaml"
    assert "hot reload on" in proxy.log()
    try:
        changed = POLICY.replace("Code assistance needs a paid plan", "Upgrade to write code")
        path.write_text(changed, encoding="utf-8")
        live = wait_for(
            lambda: _blocked_message(proxy).text, lambda t: "Upgrade to write code" in t
        )
        assert "Upgrade to write code" in live
        assert "is live" in wait_for(proxy.log, lambda t: "is live" in t)
        path.write_text(POLICY.replace("tiers:", "tiers: [", 1), encoding="utf-8")
        log = wait_for(proxy.log, lambda t: "rejected a new revision" in t)
        assert "rejected a new revision" in log
        assert "Upgrade to write code" in _blocked_message(proxy).text  # the last good one serves
    finally:
        path.write_text(POLICY, encoding="utf-8")
    restored = wait_for(lambda: _blocked_message(proxy).text, lambda t: "Code assistance" in t)
    assert "Code assistance needs a paid plan" in restored
