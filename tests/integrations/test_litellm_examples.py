"""The LiteLLM examples run offline and stay in step with the policy they are built on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyd.integrations.litellm_export import export_config

REPO = Path(__file__).resolve().parents[2]
PROXY_EXAMPLE = REPO / "examples" / "litellm-proxy" / "config.yaml"


@pytest.mark.slow
def test_the_router_app_runs_offline() -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "litellm_router_app.py")],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "gpt-4o-mini (rate_limit) -> claude-haiku" in out  # the fallback walk
    assert "cache hit" in out
    assert "refused (guardrail free-tier-no-code): Code assistance needs a paid plan" in out
    assert "tier premium: claude-sonnet" in out


def _without_mocks(model_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry in model_list:
        params = {k: v for k, v in entry["litellm_params"].items() if k != "mock_response"}
        out.append({**entry, "litellm_params": params})
    return out


def test_the_proxy_example_is_what_the_export_writes() -> None:
    example = yaml.safe_load(PROXY_EXAMPLE.read_text(encoding="utf-8"))
    exported = export_config(REPO / "policies", "support-bot")
    assert _without_mocks(example["model_list"]) == exported["model_list"], (
        "regenerate with `policyd export litellm policies --policy support-bot`"
    )
    assert example["router_settings"] == exported["router_settings"]


def test_the_proxy_example_points_the_hook_at_the_policy() -> None:
    example = yaml.safe_load(PROXY_EXAMPLE.read_text(encoding="utf-8"))
    (hook,) = example["guardrails"]
    params = hook["litellm_params"]
    assert params["guardrail"] == "policyd.integrations.litellm_proxy.PolicydGuardrail"
    assert (PROXY_EXAMPLE.parent / params["policy_path"] / "support-bot.yaml").is_file()
    assert set(params["mode"]) == {"pre_call", "post_call"}
