"""Model facts a policy relies on: prices where a USD limit applies (PD410, an error) and
context windows where ``skip_small`` filters (PD502, a warning).

policyd reads a model's price and context window only from the policy files (see
:mod:`policyd.prices`), so what ``check`` says never depends on which optional
packages are installed. Where a price matters and is missing, the mistake is silent
at run time (the model costs $0 against the limit), so it is an error; a missing
window only means the target is never skipped, so it is a warning.
"""

from __future__ import annotations

from policyd import document
from policyd.checks.base import MISSING_PRICE, UNPRICED_USD_LIMIT, Checker, Path
from policyd.diagnostics import Severity
from policyd.loader import Document

PRICE_FIX = "price: {input_per_mtok: ..., output_per_mtok: ...}"


def routed_models(
    policy: document.Policy, models: dict[str, document.ModelSpec]
) -> dict[str, Path]:
    """Every defined model the policy's tiers can send a request to (targets, then
    model fallbacks), with the path of its first mention."""
    found: dict[str, Path] = {}
    for tier_name, tier in policy.tiers.items():
        for i, target in enumerate(tier.targets):
            if target.model in models:
                found.setdefault(target.model, ("tiers", tier_name, "targets", i, "model"))
        for i, entry in enumerate(tier.fallback):
            if entry in models:
                found.setdefault(entry, ("tiers", tier_name, "fallback", i))
    return found


def check_prices(
    policy: document.Policy,
    doc: Document,
    models: dict[str, document.ModelSpec],
    where: dict[str, str],
    checker: Checker,
) -> None:
    """PD410: a budget with a ``usd`` limit while a model it can apply to has no price.

    ``where`` gives ``file:line`` of each model's definition, for the hint."""
    unpriced = [m for m in routed_models(policy, models) if models[m].price is None]
    if not unpriced:
        return
    for i, budget in enumerate(policy.budgets):
        if budget.limit.usd is None:
            continue
        names = ", ".join(repr(m) for m in unpriced)
        places = "; ".join(f"{m} at {where[m]}" for m in unpriced if m in where)
        checker.add(
            doc,
            ("budgets", i, "limit", "usd"),
            UNPRICED_USD_LIMIT,
            f"budget {budget.name!r} limits USD but model{'s' if len(unpriced) > 1 else ''} "
            f"{names} {'have' if len(unpriced) > 1 else 'has'} no price: "
            "its calls would count $0",
            f"add {PRICE_FIX} to {'each' if len(unpriced) > 1 else 'the'} model"
            + (f" ({places})" if places else "")
            + "; policyd reads prices only from the policy",
        )


def check_windows(
    policy: document.Policy, doc: Document, models: dict[str, document.ModelSpec], checker: Checker
) -> None:
    """PD502: under ``context_window: skip_small``, a target model without a context window
    is never skipped (one warning per model, at its first use). Said when the policy
    writes skip_small or gives some of its models a window; a policy whose models have no
    window and that keeps the default has nothing to filter, and gets no warning."""
    routing = policy.routing
    if routing is None or routing.context_window != "skip_small":
        return
    raw = doc.data.get("routing")
    written = isinstance(raw, dict) and "context_window" in raw
    windowed = any(models[m].context_window is not None for m in routed_models(policy, models))
    if not written and not windowed:
        return  # no model has a window and skip_small is only the default: nothing to filter
    seen: set[str] = set()
    for tier_name, tier in policy.tiers.items():
        for i, target in enumerate(tier.targets):
            spec = models.get(target.model)
            if spec is None or spec.context_window is not None or target.model in seen:
                continue
            seen.add(target.model)
            checker.add(
                doc,
                ("tiers", tier_name, "targets", i, "model"),
                MISSING_PRICE,
                f"model {target.model!r} has no context_window: "
                "routing.context_window: skip_small never skips it",
                "set context_window: on the model, or routing.context_window: ignore",
                severity=Severity.WARNING,
            )
