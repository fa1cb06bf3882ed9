"""``policyd budgets``: list live budget counters (spent, reserved, limit, reset, alerts).

Read-only. With ``--store redis://...`` it reads the counters every instance
shares; with the memory store it can only show this process's (empty) counters,
so it says so.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # imported by the command, so that `policyd check` does not load them
    from policyd.budgets.usage import BudgetUsage


@click.command("budgets")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--store",
    "store_url",
    default="memory",
    show_default=True,
    help="The budget store: a redis:// URL (memory only holds this process).",
)
@click.option("--key-prefix", default=None, help="Redis key prefix (default policyd:).")
@click.option("--policy", help="Only this policy.")
@click.option("--budget", help="Only this budget.")
@click.option("--key", help="Only this budget key (default: every key with a counter).")
@click.option("--now", help="Read the windows of this instant, ISO-8601 with zone (default: now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per counter; json: a list of counters with remaining_* figures.",
)
def budgets_command(
    path: str,
    store_url: str,
    key_prefix: str | None,
    policy: str | None,
    budget: str | None,
    key: str | None,
    now: str | None,
    fmt: str,
) -> None:
    """List live budget counters of the bundle at PATH: spent, reserved, limit, window,
    resets at, alerts fired."""
    from policyd.budgets.usage import UnknownBudget, budgets_of, list_usage
    from policyd.diagnostics import PolicyError
    from policyd.engine import Engine
    from policyd.errors import RequestError
    from policyd.fields import parse_timestamp
    from policyd.stores import StoreError

    options: dict[str, Any] = {} if key_prefix is None else {"key_prefix": key_prefix}
    try:
        at = parse_timestamp(now) if now else datetime.now(UTC)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--now") from None
    try:
        engine = Engine.from_path(path, store=store_url, **options)
    except PolicyError as exc:
        from policyd.bundle import load_bundle
        from policyd.render import render

        errors = [d for d in exc.diagnostics if d.is_error]
        click.echo(render(errors, "text", load_bundle(path).files), err=True)
        sys.exit(1)
    except StoreError as exc:
        click.echo(f"policyd budgets: {exc}", err=True)
        sys.exit(2)
    try:
        if policy is not None:
            engine.compiled.policy(policy)  # an unknown name is an error, not an empty list
        policies = _selected(dict(engine.compiled.policies), policy, budget)
        rows = list(
            list_usage(
                policies,
                engine._runtime.store,
                at,
                policy=policy,
                budget=budget,
                key=key,
            )
        )
    except (RequestError, UnknownBudget, StoreError) as exc:
        click.echo(f"policyd budgets: {exc}", err=True)
        sys.exit(2)
    finally:
        engine.close()
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    if not rows:
        if not any(budgets_of(c) for c in policies.values()):
            which = f"policy {policy!r} has no" if policy else "no policy of this bundle has a"
            click.echo(f"no budgets: {which} budgets: section, so there is nothing to count")
            return
        where = "the memory store of this process" if store_url == "memory" else "the store"
        click.echo(f"no live budget counters in {where}")
        return
    for row in rows:
        click.echo(_line(row))


def _selected(policies: dict[str, Any], policy: str | None, budget: str | None) -> dict[str, Any]:
    """The policies to read: ``--budget`` without ``--policy`` means the policies that
    have that budget (an error only when none has it)."""
    from policyd.budgets.usage import UnknownBudget, budgets_of

    if policy is not None:
        return {policy: policies[policy]}
    if budget is None:
        return policies
    having = {n: c for n, c in policies.items() if any(b.name == budget for b in budgets_of(c))}
    if not having:
        names = sorted({b.name for c in policies.values() for b in budgets_of(c)})
        raise UnknownBudget(
            f"no policy has a budget {budget!r} (budgets: {', '.join(names) or 'none'})"
        )
    return having


def _line(row: BudgetUsage) -> str:
    parts = []
    for label, spent, reserved, limit in (
        ("usd", row.spent_usd, row.reserved_usd, row.limit_usd),
        ("tokens", row.spent_tokens, row.reserved_tokens, row.limit_tokens),
        ("requests", row.spent_requests, row.reserved_requests, row.limit_requests),
    ):
        if limit is not None or spent or reserved:
            cap = "no limit" if limit is None else f"limit {limit:g}"
            parts.append(f"{label} {spent:g} spent + {reserved:g} reserved, {cap}")
    resets = row.resets_at.isoformat() if row.resets_at else "rolling"
    alerts = ", ".join(f"{a:g}" for a in row.alerts_fired) or "none"
    return (
        f"{row.policy}/{row.budget} key {row.key} window {row.window} (resets {resets}): "
        + "; ".join(parts)
        + f"; alerts fired: {alerts}"
    )
