"""Tiers and routing: targets and fallbacks, fallback cycles, and routing rules.

Checks that every model and tier a tier or routing rule names exists (PD201-PD203, PD211),
that weighted tiers can pick something (PD406), that ``cheapest`` tiers have prices (PD502),
that fallbacks never lead back to their tier (PD205), and that no routing rule sits below
one that always matches (PD501). :func:`unknown_tier` words a reference to a missing tier,
for budgets' downgrades too.
"""

from __future__ import annotations

from collections.abc import Iterable

from policyd import document
from policyd.checks.base import (
    FALLBACK_CYCLE,
    MISSING_PRICE,
    NAME_CLASH,
    UNKNOWN_MODEL,
    UNKNOWN_TARGET,
    UNKNOWN_TIER,
    UNREACHABLE_RULE,
    WEIGHTS,
    Checker,
    Path,
)
from policyd.diagnostics import Severity
from policyd.loader import Document
from policyd.words import listing, suggest


def check_tiers(
    policy: document.Policy, doc: Document, models: dict[str, document.ModelSpec], checker: Checker
) -> None:
    """Every tier's targets, strategy and fallbacks, then fallback cycles between tiers."""
    tiers = policy.tiers
    define = _define_hint(models)
    for tier_name in tiers:
        if tier_name in models:
            checker.add(
                doc,
                ("tiers", tier_name),
                NAME_CLASH,
                f"tier {tier_name!r} has the same name as a model",
                "fallback lists name models or tiers; rename the tier",
                key=True,
            )
    for tier_name, tier in tiers.items():
        for i, target in enumerate(tier.targets):
            if target.model not in models:
                checker.add(
                    doc,
                    ("tiers", tier_name, "targets", i, "model"),
                    UNKNOWN_MODEL,
                    f"unknown model {target.model!r} in tier {tier_name!r}",
                    suggest(target.model, models) or define,
                )
        if tier.strategy == "weighted" and sum(t.weight for t in tier.targets) <= 0:
            checker.add(
                doc,
                ("tiers", tier_name, "targets"),
                WEIGHTS,
                f"weighted tier {tier_name!r} has no target with a positive weight",
                "give at least one target a weight above 0",
            )
        if tier.strategy == "cheapest":
            for i, target in enumerate(tier.targets):
                spec = models.get(target.model)
                if spec is not None and spec.price is None:
                    checker.add(
                        doc,
                        ("tiers", tier_name, "targets", i, "model"),
                        MISSING_PRICE,
                        f"model {target.model!r} has no price: strategy cheapest "
                        "ranks it after every priced model",
                        "add price: {input_per_mtok: ..., output_per_mtok: ...}",
                        severity=Severity.WARNING,
                    )
        for i, entry in enumerate(tier.fallback):
            if entry not in models and entry not in tiers:
                checker.add(
                    doc,
                    ("tiers", tier_name, "fallback", i),
                    UNKNOWN_TARGET,
                    f"fallback {entry!r} is neither a model nor a tier",
                    suggest(entry, [*models, *tiers])
                    or (
                        "a fallback names a model (under models: or in a ModelCatalog) or a tier"
                        if models
                        else f"a fallback names a model or a tier; {define}"
                    ),
                )
    _check_cycles(policy, doc, checker)


def _define_hint(models: dict[str, document.ModelSpec]) -> str:
    """How to define a missing model; when the bundle defines no model at all, the likely
    cause is a policy file checked without its catalog file."""
    if not models:
        return (
            "define it under models:, or check this file together with the ModelCatalog "
            "that defines it (policyd check policies/ reads a directory as one bundle)"
        )
    return "define it under models: or in a ModelCatalog"


def _check_cycles(policy: document.Policy, doc: Document, checker: Checker) -> None:
    """Report each fallback that leads back to a tier on the way to it.

    A depth-first walk kept on explicit stacks, in the order a recursive walk takes: a
    chain of 1,000 tiers each falling back to the next was a RecursionError (a traceback,
    not a diagnostic), and copying the path at each step made a long chain quadratic.
    """
    tiers = policy.tiers
    done: set[str] = set()
    reported: set[tuple[str, int]] = set()
    for root in tiers:
        if root in done:
            continue
        path = [root]  # the tiers on the way to the current one, itself last
        place = {root: 0}  # where each of them is on the path
        todo = [iter(enumerate(tiers[root].fallback))]  # each one's fallbacks still to see
        while todo:
            name = path[-1]
            for i, entry in todo[-1]:
                if entry not in tiers or entry in done:
                    continue
                if entry in place:
                    if (name, i) not in reported:
                        reported.add((name, i))
                        cycle = [*path[place[entry] :], entry]
                        checker.add(
                            doc,
                            ("tiers", name, "fallback", i),
                            FALLBACK_CYCLE,
                            "fallback cycle between tiers: " + " -> ".join(cycle),
                            "a tier's fallback may not lead back to itself; remove one link",
                        )
                    continue
                place[entry] = len(path)
                path.append(entry)
                todo.append(iter(enumerate(tiers[entry].fallback)))
                break
            else:
                todo.pop()
                del place[path.pop()]
                done.add(name)


def unknown_tier(name: str, tiers: Iterable[str], models: Iterable[str]) -> tuple[str, str]:
    """Message and hint for a tier reference that names no tier (perhaps a model)."""
    if name in models:
        return (
            f"{name!r} is a model, not a tier",
            f"routing and downgrades choose tiers: add a tier with targets: [{{model: {name}}}]",
        )
    return f"unknown tier {name!r}", suggest(name, tiers) or (
        f"tiers: {listing(sorted(tiers), 'none defined')}"
    )


def check_routing(
    policy: document.Policy, doc: Document, models: dict[str, document.ModelSpec], checker: Checker
) -> None:
    """The tiers routing names, and rules no request can reach (first match wins)."""
    routing = policy.routing
    tiers = policy.tiers
    if routing is None:
        return
    refs: list[tuple[Path, str]] = [(("routing", "default"), routing.default)]
    refs += [(("routing", "rules", i, "tier"), r.tier) for i, r in enumerate(routing.rules)]
    for path, tier in refs:
        if tier not in tiers:
            checker.add(doc, path, UNKNOWN_TIER, *unknown_tier(tier, tiers, models))
    unconditional: str | None = None
    for i, rule in enumerate(routing.rules):
        if unconditional is not None:
            checker.add(
                doc,
                ("routing", "rules", i, "name"),
                UNREACHABLE_RULE,
                f"routing rule {rule.name!r} can never match",
                f"rule {unconditional!r} above it always matches (first match wins); "
                "move this rule up or remove it",
                severity=Severity.WARNING,
            )
        elif rule.when.strip() == "true":
            unconditional = rule.name
