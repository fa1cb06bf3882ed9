"""PD502: check warns where a model's price or context window is unknown."""

from __future__ import annotations

import textwrap

import pytest

from policyd import load_bundle, prices

POLICY = """
apiVersion: policyd/v1
kind: Policy
metadata: {name: x}
models:
  typo: {litellm: openai/gpt-4o-minni}
  priced: {litellm: openai/gpt-4o-minni, price: {input_per_mtok: 1, output_per_mtok: 2}}
  known: {litellm: openai/gpt-4o-mini}
  described: {litellm: acme/in-house, context_window: 8000,
              price: {input_per_mtok: 1, output_per_mtok: 2}}
tiers: {t: {targets: [{model: typo}, {model: priced}, {model: known}, {model: described}]}}
routing: {default: t}
"""


def warnings_of(tmp_path, text):
    (tmp_path / "p.yaml").write_text(textwrap.dedent(text))
    bundle = load_bundle(tmp_path)
    assert bundle.ok
    return [d for d in bundle.diagnostics if d.code == "PD502"]


def test_models_unknown_to_litellm_are_warned_with_a_suggestion(tmp_path):
    if prices.litellm_price_map() is None:
        pytest.skip("litellm is not installed: its price map is not available")
    found = warnings_of(tmp_path, POLICY)
    assert [(d.line, d.column) for d in found] == [(6, 19), (7, 21)]
    assert "price and context window are unknown" in found[0].message
    assert "did you mean 'gpt-4o-mini'?" in (found[0].hint or "")
    assert "its context window is unknown" in found[1].message
    assert all(d.severity == "warning" for d in found)


def test_without_litellm_skip_small_targets_need_their_own_window(tmp_path, monkeypatch):
    monkeypatch.setattr(prices, "litellm_price_map", lambda: None)
    found = warnings_of(tmp_path, POLICY)
    flagged = sorted(d.message.split("'")[1] for d in found)
    assert flagged == ["known", "priced", "typo"]  # "described" has its own window
    assert all("skip_small treats it as unlimited" in d.message for d in found)
    assert not warnings_of(
        tmp_path,
        POLICY.replace("routing: {default: t}", "routing: {default: t, context_window: ignore}"),
    )
