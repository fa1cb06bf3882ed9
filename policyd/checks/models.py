"""Model facts: warn where a model's price or context window is unknown.

A model's context window and price come from the policy or, when litellm is
installed, from the price map it ships (see :mod:`policyd.prices`). Where neither
knows them, decisions still work — an unknown window is treated as unlimited by
``context_window: skip_small``, an unknown price counts as zero dollars in budgets —
but that is rarely what the author meant, so ``check`` says so (PD502, a warning).
"""

from __future__ import annotations

from policyd import model, prices
from policyd.checks.base import MISSING_PRICE, Checker, Path
from policyd.diagnostics import Severity
from policyd.loader import Document
from policyd.words import suggest


def check_model(
    model_id: str, spec: model.ModelSpec, doc: Document, base: Path, checker: Checker
) -> None:
    """Warn when LiteLLM's price map is available but does not know a model the policy
    does not fully describe itself (a typo in the model string, or a new model)."""
    if prices.litellm_price_map() is None or prices.litellm_entry(spec.litellm) is not None:
        return
    missing = [
        name
        for name, value in (("price", spec.price), ("context window", spec.context_window))
        if value is None
    ]
    if not missing:
        return
    known = prices.litellm_price_map() or {}
    close = suggest(spec.litellm.split("/", 1)[-1], (k.split("/", 1)[-1] for k in known))
    checker.add(
        doc,
        (*base, model_id, "litellm"),
        MISSING_PRICE,
        f"model {spec.litellm!r} is not in LiteLLM's price map: its "
        f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} unknown",
        (f"{close} " if close else "")
        + "check the model string, or set "
        + " and ".join(
            {
                "price": "price: {input_per_mtok: ..., output_per_mtok: ...}",
                "context window": "context_window: ...",
            }[m]
            for m in missing
        ),
        severity=Severity.WARNING,
    )


def check_windows(
    policy: model.Policy, doc: Document, models: dict[str, model.ModelSpec], checker: Checker
) -> None:
    """Without litellm installed, a skip_small policy's targets need their own windows."""
    routing = policy.routing
    if routing is None or routing.context_window != "skip_small":
        return
    if prices.litellm_price_map() is not None:
        return
    for tier_name, tier in policy.tiers.items():
        for i, target in enumerate(tier.targets):
            spec = models.get(target.model)
            if spec is not None and spec.context_window is None:
                checker.add(
                    doc,
                    ("tiers", tier_name, "targets", i, "model"),
                    MISSING_PRICE,
                    f"context window of {target.model!r} is unknown (litellm is not "
                    "installed): context_window: skip_small treats it as unlimited",
                    "set context_window: on the model, or pip install 'policyd[litellm]'",
                    severity=Severity.WARNING,
                )
