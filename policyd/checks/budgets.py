"""Budgets: time zones (PD404), alert thresholds (PD403), rolling window lengths (PD104), and
the tier a budget downgrades to (PD202)."""

from __future__ import annotations

import zoneinfo

from policyd import fields, model
from policyd.checks.base import ALERTS, TIMEZONE, UNKNOWN_TIER, Checker, Path
from policyd.checks.routing import unknown_tier
from policyd.loader import Document
from policyd.words import suggest


def check_budgets(
    policy: model.Policy, doc: Document, models: dict[str, model.ModelSpec], checker: Checker
) -> None:
    """Each budget's time zone, alert thresholds and downgrade tier."""
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
                suggest(budget.timezone, zoneinfo.available_timezones())
                or "use an IANA name such as UTC, Europe/Berlin, America/New_York",
            )
        if isinstance(budget.window, model.RollingWindow):
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
