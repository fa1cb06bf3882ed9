"""The proxy's answer to a budget refusal: 429 when waiting helps, 400 when it cannot (#14)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from policyd import Engine
from policyd.integrations._litellm_support import PolicyBlockedError
from policyd.integrations._proxy_errors import blocked

BUNDLE = """
apiVersion: policyd/v1
kind: Policy
metadata: {name: p}
context:
  tenant: {id: string}
models:
  large: {litellm: anthropic/claude-sonnet-4-5, price: {input_per_mtok: 3, output_per_mtok: 15}}
tiers:
  t: {targets: [{model: large}]}
routing: {default: t}
budgets:
  - name: tenant-daily
    key: request.tenant.id
    window: calendar_day
    limit: {usd: 0.05}
    on_exceed: {action: block, message: Tenant daily budget used up}
"""


def test_never_fits_is_a_400_and_used_up_a_429(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(textwrap.dedent(BUNDLE))
    with Engine.from_path(tmp_path) as engine:
        request = {"tenant": {"id": "acme"}, "messages": [{"role": "user", "content": "hi"}]}
        never = blocked(PolicyBlockedError(engine.decide(request)))  # 4,096 x $15/M > $0.05
        assert never.status_code == 400
        assert never.detail["error"]["reason"] == "too_large"
        assert "Retry-After" not in (never.headers or {})
        for _ in range(3):
            ok = engine.decide({**request, "max_tokens": 1000})
            engine.record(ok, input_tokens=5, output_tokens=1000, cost_usd=0.015)
        used = blocked(PolicyBlockedError(engine.decide({**request, "max_tokens": 1000})))
        assert used.status_code == 429 and used.detail["error"]["reason"] == "used_up"
        assert int(used.headers["Retry-After"]) >= 1
