"""policyd's price map reader agrees with LiteLLM's; ``import policyd`` never imports litellm."""

from __future__ import annotations

import subprocess
import sys

import litellm
import pytest

from policyd import document
from policyd.prices import litellm_entry, litellm_price_map, resolve

FIELDS = ("input_cost_per_token", "output_cost_per_token", "max_input_tokens", "max_output_tokens")


def test_the_price_map_read_without_litellm_is_litellms_model_cost() -> None:
    ours = litellm_price_map()
    assert ours is not None
    theirs = litellm.model_cost  # Routers add entries for their deployments' own prices
    models = {n for n, e in ours.items() if isinstance(e, dict) and "litellm_provider" in e}
    assert len(models) > 1000 and models - {"sample_spec"} <= set(theirs)
    disagreements = [
        (name, field)
        for name, entry in ours.items()
        if isinstance(entry, dict) and name in theirs
        for field in FIELDS
        if entry.get(field) != theirs[name].get(field)
    ]
    assert disagreements == []


@pytest.mark.parametrize(
    "litellm_model", ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "gpt-4o"]
)
def test_decisions_never_take_facts_from_litellms_map(litellm_model: str) -> None:
    # check and decide give the same with and without the [litellm] extra (#12): a model's
    # price and window come from the policy only; the map serves the integration.
    info = resolve("m", document.ModelSpec(litellm=litellm_model))
    assert (info.source, info.context_window, info.input_micros_per_mtok) == ("unknown", None, None)
    entry = litellm.model_cost[litellm_model.split("/", 1)[-1]]
    ours = litellm_entry(litellm_model)
    assert ours is not None
    assert {f: ours.get(f) for f in FIELDS} == {f: entry.get(f) for f in FIELDS}


def test_the_policy_price_is_the_price() -> None:
    spec = document.ModelSpec(
        litellm="openai/gpt-4o", price=document.Price(input_per_mtok=1, output_per_mtok=2)
    )
    info = resolve("m", spec)
    assert (info.input_micros_per_mtok, info.output_micros_per_mtok) == (1_000_000, 2_000_000)
    assert info.source == "policy"


def test_importing_policyd_and_the_export_does_not_import_litellm() -> None:
    code = (
        "import sys, policyd, policyd.integrations, policyd.integrations.litellm_export\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'openai'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
