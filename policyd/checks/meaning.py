"""Settings that do nothing where they are written (PD504, warnings), and
``reload.require_tests`` with no test to run (PD602, the error a reload would give).

Found by the field audit of #12: each of these was accepted silently and then had no
effect, so the author believed something that was not true.
"""

from __future__ import annotations

from typing import Any

from policyd import document, fields
from policyd.checks.base import NO_EFFECT, Checker, Path
from policyd.diagnostics import Severity
from policyd.loader import Document

NO_TESTS = "PD602"  # as policyd.reload.revisions reports it on a reload


def check_meaning(
    policy: document.Policy, doc: Document, declarations: dict[str, Any], checker: Checker
) -> None:
    """Weights and sticky_by outside weighted tiers, retry settings with one attempt or a
    base above the max, cache scopes whose id the policy never declares."""

    def warn(path: Path, message: str, hint: str) -> None:
        checker.add(doc, path, NO_EFFECT, message, hint, severity=Severity.WARNING)

    for name, tier in policy.tiers.items():
        if tier.strategy == "weighted":
            continue
        for i, target in enumerate(tier.targets):
            if target.weight != 1:
                warn(
                    ("tiers", name, "targets", i, "weight"),
                    f"weight has no effect: tier {name!r} uses strategy {tier.strategy}",
                    "set strategy: weighted, or remove weight",
                )
        if tier.sticky_by is not None:
            warn(
                ("tiers", name, "sticky_by"),
                f"sticky_by has no effect: tier {name!r} uses strategy {tier.strategy}",
                "set strategy: weighted, or remove sticky_by",
            )
    retry = policy.routing.retry if policy.routing else None
    raw_routing = doc.data.get("routing") if isinstance(doc.data, dict) else None
    raw = raw_routing.get("retry") if isinstance(raw_routing, dict) else None
    if retry is not None and isinstance(raw, dict):
        written = [k for k in ("backoff", "base", "max", "jitter", "on") if k in raw]
        if retry.attempts == 1 and written:
            warn(
                ("routing", "retry", written[0]),
                f"{', '.join(written)} {'has' if len(written) == 1 else 'have'} no effect: "
                "attempts is 1, so nothing is retried",
                "set attempts: 2 or more (attempts counts every try, the first included)",
            )
        if fields.parse_duration(retry.base) > fields.parse_duration(retry.max):
            warn(
                ("routing", "retry", "base"),
                f"base {retry.base} is above max {retry.max}: every wait is {retry.max}",
                "make base smaller than max",
            )
    request = declarations["request"]
    for i, rule in enumerate(policy.cache.rules):
        if rule.scope == "global":
            continue
        decl = request.get(rule.scope)
        has_id = decl is not None and (
            not isinstance(decl, dict) or "id" in decl
        )  # a record must declare id; dyn and map<...> may carry it
        if not has_id:
            warn(
                ("cache", "rules", i, "scope")
                if "scope" in _raw_rule(doc, i)
                else ("cache", "rules", i, "name"),
                f"cache rule {rule.name!r} has scope {rule.scope} (the default is user), but "
                f"the context declares no {rule.scope}.id: requests without it are never cached",
                f"declare {rule.scope}: {{id: string}} under context:, or set scope: global",
            )


def _raw_rule(doc: Document, index: int) -> dict[str, Any]:
    try:
        rule = doc.data["cache"]["rules"][index]
    except (KeyError, IndexError, TypeError):
        return {}
    return rule if isinstance(rule, dict) else {}


def check_require_tests(
    policies: list[tuple[document.Policy, Document]],
    tested: set[str],
    checker: Checker,
) -> None:
    """PD602: ``reload.require_tests`` on a policy no PolicyTest tests; every reload of the
    bundle would be rejected for it."""
    for policy, doc in policies:
        name = policy.metadata.name
        if policy.reload is not None and policy.reload.require_tests and name not in tested:
            checker.add(
                doc,
                ("reload", "require_tests"),
                NO_TESTS,
                f"policy {name!r} sets reload.require_tests but no PolicyTest tests it: "
                "every hot reload would be rejected",
                f"add a PolicyTest with `policy: {name}`, or drop require_tests",
            )
