"""Budgets: time zones (PD404), alert thresholds (PD403), rolling window lengths (PD104),
the tier a budget downgrades to (PD202), a default request that never fits (PD505), and
budget_defaults with no budget to apply to (PD504)."""

from __future__ import annotations

import functools
import zoneinfo

from policyd import document, fields, prices
from policyd.checks.base import (
    ALERTS,
    NEVER_FITS,
    NO_EFFECT,
    TIMEZONE,
    UNKNOWN_TIER,
    Checker,
    Path,
)
from policyd.checks.routing import unknown_tier
from policyd.diagnostics import Severity
from policyd.loader import Document
from policyd.money import micros_to_usd, usd_to_micros
from policyd.words import suggest


@functools.cache
def _zones() -> frozenset[str]:
    """The IANA names this system knows, listed once: the list walks the tz database
    (~6 ms), and a bundle of many budgets with a wrong zone asked it once per budget."""
    return frozenset(zoneinfo.available_timezones())


def check_budgets(
    policy: document.Policy, doc: Document, models: dict[str, document.ModelSpec], checker: Checker
) -> None:
    """Each budget's time zone, alert thresholds and downgrade tier."""
    if policy.budget_defaults is not None and not policy.budgets:
        checker.add(
            doc,
            ("budget_defaults",),
            NO_EFFECT,
            "budget_defaults has no effect: the policy has no budgets",
            "add budgets, or remove budget_defaults",
            severity=Severity.WARNING,
            key=True,
        )
    for i, budget in enumerate(policy.budgets):
        base: Path = ("budgets", i)
        try:
            zoneinfo.ZoneInfo(budget.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            checker.add(
                doc,
                (*base, "timezone"),
                TIMEZONE,
                f"unknown time zone {budget.timezone!r}",
                suggest(budget.timezone, _zones())
                or "use an IANA name such as UTC, Europe/Berlin, America/New_York",
            )
        if isinstance(budget.window, document.RollingWindow):
            _check_rolling(budget.window.rolling, doc, (*base, "window", "rolling"), checker)
        alerts = budget.alerts
        for j, alert in enumerate(alerts):
            if not 0 < alert <= 1:
                hint = "thresholds are fractions of the limit, e.g. 0.8 for 80%"
                if 1 < alert <= 100:
                    hint = f"thresholds are fractions of the limit: write {alert / 100:g} "
                    hint += f"for {alert:g}%"
                checker.add(
                    doc,
                    (*base, "alerts", j),
                    ALERTS,
                    f"alert threshold {alert:g} is outside (0, 1]",
                    hint,
                )
        if alerts != sorted(set(alerts)):
            checker.add(
                doc,
                (*base, "alerts"),
                ALERTS,
                "alert thresholds must be unique and in increasing order",
                f"write [{', '.join(f'{a:g}' for a in sorted(set(alerts)))}]",
            )
        if budget.on_exceed.action == "block":
            _check_default_fits(policy, budget, models, doc, (*base, "limit"), checker)
        tier = budget.on_exceed.tier
        if tier is not None and tier not in policy.tiers:
            message, hint = unknown_tier(tier, policy.tiers, models)
            checker.add(doc, (*base, "on_exceed", "tier"), UNKNOWN_TIER, message, hint)


def _check_rolling(text: str, doc: Document, path: Path, checker: Checker) -> None:
    """A rolling window is counted in whole seconds: below 1 s, or a fraction, is an error
    (it used to be rounded silently, so a 500ms window limited per second)."""
    try:
        seconds = fields.parse_duration(text)
    except ValueError:
        return  # reported by the schema check
    if seconds < 1:
        checker.add(
            doc,
            path,
            "PD104",
            f"a rolling window must last at least 1s, not {text}",
            "budgets count whole seconds; for a burst limit add a second budget with "
            "window {rolling: 1s} (see docs/budgets.md, rates and bursts)",
        )
    elif seconds != int(seconds):
        checker.add(
            doc,
            path,
            "PD104",
            f"a rolling window must be a whole number of seconds, not {text}",
            f"write {int(seconds)}s or {int(seconds) + 1}s",
        )


def _check_default_fits(
    policy: document.Policy,
    budget: document.Budget,
    models: dict[str, document.ModelSpec],
    doc: Document,
    path: Path,
    checker: Checker,
) -> None:
    """Warn when a request without max_tokens, routed to the default tier, reserves more
    than a block budget's USD limit on its own: it would be refused as too_large every time.
    (Token limits are left alone: a small token budget is often meant for callers that
    always send max_tokens.)"""
    tier = policy.tiers.get(policy.routing.default) if policy.routing is not None else None
    if tier is None:
        return
    limit = budget.limit
    reserve = document.reserve_of(policy, budget)
    # an estimate starts from its fallback: the cap if given, else the worst case (and a
    # budget that refuses every request never records the outcomes it would learn from)
    cap = reserve.output_tokens if isinstance(reserve, document.Reserve) else None
    learned = isinstance(reserve, document.Reserve) and reserve.estimate is not None
    for target in tier.targets:
        spec = models.get(target.model)
        if spec is None:
            continue
        info = prices.resolve(target.model, spec)
        out = info.max_output_tokens or prices.DEFAULT_MAX_OUTPUT
        out = min(out, cap) if cap is not None else out
        usd = info.cost_micros(0, out)
        over = []
        if limit.usd is not None and usd > usd_to_micros(limit.usd):
            over.append(f"${micros_to_usd(usd):g} against ${limit.usd:g}")
        if over:
            checker.add(
                doc,
                path,
                NEVER_FITS,
                f"budget {budget.name!r} can never admit a request without max_tokens to "
                f"model {target.model!r} of the default tier: its reservation of {out} "
                f"output tokens alone is over the limit ({', '.join(over)})",
                (
                    "give the estimate a fallback cap: reserve: {estimate: "
                    f"{reserve.estimate}, output_tokens: N}} (it applies until enough "
                    "outcomes are recorded, and none are while every request is refused)"
                    if learned and isinstance(reserve, document.Reserve)
                    else "add reserve: {output_tokens: N} to the budget (or to "
                    "budget_defaults, for every budget), set the model's "
                    "max_output_tokens, or have callers send max_tokens"
                ),
                severity=Severity.WARNING,
            )
            return
