"""Reading budgets outside a decision: ``engine.usage()`` and ``policyd budgets``.

Read-only: a read never reserves, settles or fires an alert (it does forget
reservations whose ttl is over, as any store step does). A
:class:`BudgetUsage` is one counter's current window: settled spend, live
reservations, the limit, when the window resets, and the alert thresholds
fired in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policyd.budgets.ledger import Amount, CounterUsage
from policyd.budgets.windows import current_window
from policyd.errors import PolicydError
from policyd.money import micros_to_usd


class UnknownBudget(PolicydError, ValueError):
    """``usage()`` named a budget the policy does not have."""


@dataclass(frozen=True)
class BudgetUsage:
    """One budget × key in its current window, as the store holds it now.

    ``spent_*`` is settled spend, ``reserved_*`` the reservations still live; a new
    reservation fits when spent + reserved + its amount is within the limit.
    ``resets_at`` is None for a rolling window (it slides).
    """

    policy: str
    budget: str
    key: str
    window: str
    spent_usd: float
    spent_tokens: int
    spent_requests: int
    reserved_usd: float
    reserved_tokens: int
    reserved_requests: int
    limit_usd: float | None
    limit_tokens: int | None
    limit_requests: int | None
    resets_at: datetime | None
    alerts_fired: tuple[float, ...]

    @property
    def remaining_usd(self) -> float | None:
        if self.limit_usd is None:
            return None
        return max(0.0, round(self.limit_usd - self.spent_usd - self.reserved_usd, 6))

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "budget": self.budget,
            "key": self.key,
            "window": self.window,
            "spent_usd": self.spent_usd,
            "spent_tokens": self.spent_tokens,
            "spent_requests": self.spent_requests,
            "reserved_usd": self.reserved_usd,
            "reserved_tokens": self.reserved_tokens,
            "reserved_requests": self.reserved_requests,
            "limit_usd": self.limit_usd,
            "limit_tokens": self.limit_tokens,
            "limit_requests": self.limit_requests,
            "remaining_usd": self.remaining_usd,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
            "alerts_fired": list(self.alerts_fired),
        }


def budgets_of(compiled: Any) -> tuple[Any, ...]:
    """The compiled budgets of a compiled policy (empty when it has none)."""
    return tuple(compiled.budgets)


def find_budget(compiled: Any, name: str) -> Any:
    for budget in budgets_of(compiled):
        if budget.name == name:
            return budget
    names = ", ".join(b.name for b in budgets_of(compiled)) or "none"
    raise UnknownBudget(f"policy {compiled.ref.name!r} has no budget {name!r} (budgets: {names})")


def _alert_names(budget: Any) -> tuple[str, ...]:
    return tuple(repr(float(a)) for a in budget.alerts)


def _usage(policy: str, budget: Any, key: str, now: datetime, counter: CounterUsage) -> BudgetUsage:
    slot = current_window(budget.window, now)
    limit = budget.limit
    settled, reserved = counter.settled, counter.reserved
    return BudgetUsage(
        policy=policy,
        budget=budget.name,
        key=key,
        window=slot.id,
        spent_usd=micros_to_usd(settled.usd_micros),
        spent_tokens=settled.tokens,
        spent_requests=settled.requests,
        reserved_usd=micros_to_usd(reserved.usd_micros),
        reserved_tokens=reserved.tokens,
        reserved_requests=reserved.requests,
        limit_usd=None if limit.usd_micros is None else micros_to_usd(limit.usd_micros),
        limit_tokens=limit.tokens,
        limit_requests=limit.requests,
        resets_at=slot.reset_at,
        alerts_fired=tuple(sorted(float(a) for a in counter.alerts)),
    )


def read_counter(store: Any, budget: Any, key: str, now: datetime) -> CounterUsage:
    read = getattr(store, "read", None)
    if read is None:  # a store without read(): spent and reserved together
        return CounterUsage(store.usage(budget.counter, key, budget.window, now), Amount())
    result: CounterUsage = read(budget.counter, key, budget.window, now, _alert_names(budget))
    return result


async def aread_counter(store: Any, budget: Any, key: str, now: datetime) -> CounterUsage:
    read = getattr(store, "aread", None)
    if read is None:
        spent = await store.ausage(budget.counter, key, budget.window, now)
        return CounterUsage(spent, Amount())
    result: CounterUsage = await read(budget.counter, key, budget.window, now, _alert_names(budget))
    return result


def budget_usage(compiled: Any, store: Any, budget: str, key: str, now: datetime) -> BudgetUsage:
    """``engine.usage()``: one budget × key of a compiled policy."""
    found = find_budget(compiled, budget)
    return _usage(compiled.ref.name, found, key, now, read_counter(store, found, key, now))


async def abudget_usage(
    compiled: Any, store: Any, budget: str, key: str, now: datetime
) -> BudgetUsage:
    found = find_budget(compiled, budget)
    counter = await aread_counter(store, found, key, now)
    return _usage(compiled.ref.name, found, key, now, counter)


def list_usage(
    policies: dict[str, Any],
    store: Any,
    now: datetime,
    *,
    policy: str | None = None,
    budget: str | None = None,
    key: str | None = None,
) -> Iterator[BudgetUsage]:
    """Every live counter of the selected policies and budgets (one key, or all the store
    holds in the current window), in policy, budget, key order."""
    for name in sorted(policies):
        if policy is not None and name != policy:
            continue
        compiled = policies[name]
        chosen = budgets_of(compiled)
        if budget is not None:
            chosen = (find_budget(compiled, budget),)
        for found in chosen:
            keys = [key] if key is not None else _keys(store, found, now)
            for k in keys:
                yield _usage(name, found, k, now, read_counter(store, found, k, now))


def _keys(store: Any, budget: Any, now: datetime) -> list[str]:
    keys = getattr(store, "keys", None)
    return [] if keys is None else list(keys(budget.counter, budget.window, now))
