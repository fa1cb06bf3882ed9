"""Budgets stage, pricing: what one budget's line of a reservation assumes a call costs.

A budget's ``reserve`` (its own, else the policy's ``budget_defaults.reserve``)
compiles to a :class:`ReservePlan`:

* ``worst_case``: input tokens + the request's ``max_tokens`` (else the model's output
  limit, else 4,096) of output;
* ``{output_tokens: N}``: the same, with at most N output tokens;
* ``{estimate: p95}``: the p95 of the output tokens recorded for this policy and model
  (:mod:`policyd.budgets.learned`), never more than ``max_tokens`` or the cap; with
  fewer than ``min_samples`` outcomes, the cap if one is given, else the worst case.

Whatever was reserved, the settle corrects the spend to the actual cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from policyd import document
from policyd.budgets import Amount
from policyd.budgets.histogram import Quantile, parse_quantile
from policyd.budgets.learned import LearnedOutputs
from policyd.prices import DEFAULT_MAX_OUTPUT, ModelInfo
from policyd.stages.base import DecisionState


@dataclass(frozen=True, slots=True)
class ReservePlan:
    """How a line is priced: an output cap, a learned quantile, or neither (worst case)."""

    cap: int | None = None
    quantile: Quantile | None = None
    min_samples: int = document.DEFAULT_MIN_SAMPLES

    def describe(self) -> str:
        if self.quantile is not None:
            fallback = f"{self.cap} output tokens" if self.cap is not None else "the worst case"
            return f"{self.quantile.text} estimate (fallback {fallback})"
        return f"at most {self.cap} output tokens" if self.cap is not None else "worst case"


WORST_CASE = ReservePlan()


def plan_of(reserve: document.ReserveMode) -> ReservePlan:
    if not isinstance(reserve, document.Reserve):
        return WORST_CASE
    return ReservePlan(
        cap=reserve.output_tokens,
        quantile=parse_quantile(reserve.estimate) if reserve.estimate is not None else None,
        min_samples=reserve.min_samples or document.DEFAULT_MIN_SAMPLES,
    )


def price(
    state: DecisionState,
    models: Mapping[str, ModelInfo],
    plan: ReservePlan,
    learned: LearnedOutputs | None,
    policy: str,
    budget: str,
) -> Amount:
    """What one call may cost under ``plan``: input tokens plus the output tokens the
    plan assumes, at the chosen model's price (rounded up to the micro-dollar)."""
    info: ModelInfo | None = models.get(state.model) if state.model else None
    request = state.request
    input_tokens = int(request.get("input_tokens") or 0)
    out = request.get("max_tokens")
    if not isinstance(out, int) or isinstance(out, bool) or out <= 0:
        out = (info.max_output_tokens if info else None) or DEFAULT_MAX_OUTPUT
    if plan.cap is not None:
        out = min(out, plan.cap)
    if plan.quantile is not None and learned is not None and state.model:
        found = learned.estimate(policy, state.model, plan.quantile, plan.min_samples)
        if found.tokens is not None:
            out = min(out, found.tokens)
            state.note(
                "budgets",
                budget,
                "estimate",
                f"{plan.quantile.text} of {found.samples} recorded outputs of "
                f"{state.model}: {found.tokens} tokens; reserving {out}",
            )
        else:
            fallback = "the cap" if plan.cap is not None else "the worst case"
            state.note(
                "budgets",
                budget,
                "estimate",
                f"{found.samples} of {plan.min_samples} outputs of {state.model} recorded: "
                f"reserving {fallback}, {out} output tokens",
            )
    usd = info.cost_micros(input_tokens, out) if info is not None else 0
    # saturate: a request too large to count reserves the most a store can hold
    return Amount(usd, input_tokens + out, 1).clamped()
