"""Semantic checks of a typed bundle: references, cycles, values, and CEL types.

Structure is already valid when these run (see :mod:`policyd.structure`). Each
check appends :class:`Diagnostic` values located through the document's source
map; nothing here raises for a user's mistake. CEL expressions are compiled
here once and handed on to the compiler, so a bundle that passes ``check``
never parses an expression again.

This module owns the bundle: :func:`check_bundle`, duplicate policies, tests and
catalog models, and names that must be unique within a policy. Each section of a
policy is checked by a module of :mod:`policyd.checks` (``context``, ``routing``,
``budgets``, ``guardrails``, ``prompts``, ``expressions``); the diagnostic codes and
:class:`Checker` live in :mod:`policyd.checks.base` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from policyd import cel
from policyd.checks.base import (
    ALERTS,
    BAD_CACHE_KEY,
    BAD_CONTEXT,
    CEL_NOT_BOOL,
    CEL_SLOW_PATH,
    DUPLICATE_MODEL,
    DUPLICATE_NAME,
    FALLBACK_CYCLE,
    GUARDRAIL_ACTION,
    GUARDRAIL_SHAPE,
    MISSING_PRICE,
    NAME_CLASH,
    PROMPT_FILE,
    REGEX,
    ROLLOUT_SUM,
    SCHEDULE_ORDER,
    TIMEZONE,
    UNKNOWN_MODEL,
    UNKNOWN_POLICY,
    UNKNOWN_PROMPT,
    UNKNOWN_TARGET,
    UNKNOWN_TIER,
    UNKNOWN_VERSION,
    UNREACHABLE_RULE,
    WEIGHTS,
    Checker,
    Path,
)
from policyd.checks.budgets import check_budgets
from policyd.checks.context import BUILTIN_REQUEST, check_cache, check_context
from policyd.checks.expressions import cel_fields, check_expressions
from policyd.checks.guardrails import check_guardrails
from policyd.checks.log import check_log
from policyd.checks.meaning import check_meaning, check_require_tests
from policyd.checks.models import check_prices, check_windows
from policyd.checks.policytests import check_policy_test
from policyd.checks.prompts import check_prompts
from policyd.checks.routing import check_routing, check_tiers
from policyd.checks.templates import check_templates
from policyd.diagnostics import Diagnostic
from policyd.document import ModelCatalog, ModelSpec, Policy, PolicyTest
from policyd.loader import Document
from policyd.words import listing, suggest

__all__ = [
    "ALERTS",
    "BAD_CACHE_KEY",
    "BAD_CONTEXT",
    "BUILTIN_REQUEST",
    "CEL_NOT_BOOL",
    "CEL_SLOW_PATH",
    "DUPLICATE_MODEL",
    "DUPLICATE_NAME",
    "FALLBACK_CYCLE",
    "GUARDRAIL_ACTION",
    "GUARDRAIL_SHAPE",
    "MISSING_PRICE",
    "NAME_CLASH",
    "PROMPT_FILE",
    "REGEX",
    "ROLLOUT_SUM",
    "SCHEDULE_ORDER",
    "TIMEZONE",
    "UNKNOWN_MODEL",
    "UNKNOWN_POLICY",
    "UNKNOWN_PROMPT",
    "UNKNOWN_TARGET",
    "UNKNOWN_TIER",
    "UNKNOWN_VERSION",
    "UNREACHABLE_RULE",
    "WEIGHTS",
    "Broken",
    "Checker",
    "Path",
    "PolicyContext",
    "cel_fields",
    "check_bundle",
]


@dataclass
class PolicyContext:
    """What the engine needs besides the typed policy: resolved parts, located."""

    policy: Policy
    document: Document
    models: dict[str, ModelSpec]
    declarations: dict[str, Any]
    expressions: dict[Path, cel.Expression] = field(default_factory=dict)
    prompt_texts: dict[tuple[str, str], str] = field(default_factory=dict)


# --------------------------------------------------------------------------- bundle level

# What checking a repaired document (its failing parts removed) could report only because
# of the removal, by the top-level key something was removed under: references to removed
# items, and facts the removal lost (one root cause, one error).
_REPAIR_ECHOES = {
    "models": frozenset({"PD201", "PD203", "PD410", "PD502"}),
    "tiers": frozenset({"PD202", "PD203", "PD502"}),
    "context": frozenset({"PD213", "PD214", "PD215", "PD302", "PD303", "PD503"}),
    "prompts": frozenset({"PD204", "PD209", "PD216"}),
    "routing": frozenset({"PD501", "PD502"}),
}


# A name a repaired document refers to may be in what was removed (a tier's model, a
# rollout's prompt): unknown-name reports from it are never trusted.
# A no-effect warning (PD504) may only reflect a removed setting (attempts removed: 1).
_REFERENCE_CODES = frozenset({"PD201", "PD202", "PD203", "PD204", "PD208", "PD209", "PD504"})


def _echoes(removed: set[str]) -> frozenset[str]:
    found = (_REPAIR_ECHOES.get(key, frozenset()) for key in removed)
    return _REFERENCE_CODES.union(*found)


@dataclass
class Broken:
    """Documents that failed structure: which were repaired for checking, and what names
    the broken ones would have defined."""

    # id() of each document checked repaired -> top-level keys something was removed under
    repaired: dict[int, set[str]] = field(default_factory=dict)
    catalogs: bool = False  # a ModelCatalog failed: its models are broken, not missing
    policies: set[str] = field(default_factory=set)  # names of Policy documents that failed
    unnamed_policy: bool = False  # a Policy failed without a readable name

    def note(self, doc: Document, repaired: object, removed: set[str]) -> None:
        kind = doc.data.get("kind")
        if repaired is not None:
            self.repaired[id(doc)] = removed
        if kind == "ModelCatalog":
            self.catalogs = True
        elif kind == "Policy":
            metadata = doc.data.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            if isinstance(name, str):
                self.policies.add(name)
            else:
                self.unnamed_policy = True


def _where(doc: Document, path: Path) -> str:
    """``file:line`` of the key at ``path``, for hints that point at a first definition."""
    return f"{doc.file}:{doc.source_map.key(path).line}"


def check_bundle(
    policies: list[tuple[Policy, Document]],
    catalogs: list[tuple[ModelCatalog, Document]],
    tests: list[tuple[PolicyTest, Document]],
    broken: Broken | None = None,
) -> tuple[dict[str, PolicyContext], list[Diagnostic]]:
    """All semantic checks; returns the per-policy context of every policy without errors.

    Documents in ``broken.repaired`` are checked (so their other problems are reported)
    but never returned for compiling; reports they or a broken document could cause
    elsewhere are muted."""
    broken = broken or Broken()
    checker = Checker()
    shared_models = _catalog_models(catalogs, checker)
    contexts: dict[str, PolicyContext] = {}
    checked: dict[str, PolicyContext] = {}
    seen_policies: dict[str, Document] = {}
    for policy, doc in policies:
        name = policy.metadata.name
        repaired = id(doc) in broken.repaired
        duplicate = name in seen_policies
        if duplicate:
            first = seen_policies[name]
            checker.add(
                doc,
                ("metadata", "name"),
                DUPLICATE_NAME,
                f"policy {name!r} is defined twice",
                f"first defined at {_where(first, ('metadata', 'name'))}; "
                "policy names are unique in a bundle",
            )
        else:
            seen_policies[name] = doc
        before = len(checker.diagnostics)
        ctx = _check_policy(policy, doc, shared_models, checker)
        if repaired:
            checker.mute(before, _echoes(broken.repaired[id(doc)]))
        if broken.catalogs:
            checker.mute(before, {"PD201", "PD203"})
        errors = any(d.is_error for d in checker.diagnostics[before:])
        if not duplicate:
            checked[name] = ctx
            if not errors and not repaired:
                contexts[name] = ctx
    seen_tests: dict[str, Document] = {}
    for test, doc in tests:
        if test.metadata.name in seen_tests:
            checker.add(
                doc,
                ("metadata", "name"),
                DUPLICATE_NAME,
                f"PolicyTest {test.metadata.name!r} is defined twice",
                f"first defined at {_where(seen_tests[test.metadata.name], ('metadata', 'name'))};"
                " PolicyTest names are unique in a bundle",
            )
        seen_tests.setdefault(test.metadata.name, doc)
        known = test.policy in seen_policies
        if (
            not known
            and test.policy not in broken.policies
            and not broken.unnamed_policy
            and id(doc) not in broken.repaired
        ):
            checker.add(
                doc,
                ("policy",),
                UNKNOWN_POLICY,
                f"PolicyTest refers to unknown policy {test.policy!r}",
                suggest(test.policy, seen_policies)
                or f"policies in this bundle: {listing(sorted(seen_policies), 'none')}",
            )
        before = len(checker.diagnostics)
        tested = checked.get(test.policy)
        check_policy_test(
            test,
            doc,
            tested.policy if tested else None,
            tested.declarations if tested else None,
            tested.models if tested else None,
            checker,
        )
        policy_doc = seen_policies.get(test.policy)
        if policy_doc is not None and id(policy_doc) in broken.repaired:
            checker.mute(before, _echoes(broken.repaired[id(policy_doc)]))
        if id(doc) in broken.repaired:
            checker.mute(before, _echoes(broken.repaired[id(doc)]))
        if broken.catalogs:
            checker.mute(before, {"PD201"})
    if not any(id(doc) in broken.repaired for _, doc in tests):
        check_require_tests(
            [(p, d) for p, d in policies if id(d) not in broken.repaired],
            {t.policy for t, _ in tests},
            checker,
        )
    return contexts, checker.diagnostics


def _catalog_models(
    catalogs: list[tuple[ModelCatalog, Document]], checker: Checker
) -> dict[str, tuple[ModelSpec, Document]]:
    models: dict[str, tuple[ModelSpec, Document]] = {}
    for catalog, doc in catalogs:
        for model_id, spec in catalog.models.items():
            if model_id in models:
                checker.add(
                    doc,
                    ("models", model_id),
                    DUPLICATE_MODEL,
                    f"model {model_id!r} is defined twice",
                    f"first defined at {_where(models[model_id][1], ('models', model_id))}; "
                    "model ids are unique across catalogs and policies",
                    key=True,
                )
                continue
            models[model_id] = (spec, doc)
    return models


# --------------------------------------------------------------------------- policy level


def _check_policy(
    policy: Policy,
    doc: Document,
    shared: dict[str, tuple[ModelSpec, Document]],
    checker: Checker,
) -> PolicyContext:
    models = {k: v for k, (v, _) in shared.items()}
    for model_id, spec in policy.models.items():
        if model_id in shared:
            checker.add(
                doc,
                ("models", model_id),
                DUPLICATE_MODEL,
                f"model {model_id!r} is also defined at "
                f"{_where(shared[model_id][1], ('models', model_id))}",
                "model ids are unique across catalogs and policies; rename one",
                key=True,
            )
        models[model_id] = spec
    where = {m: _where(d, ("models", m)) for m, (_, d) in shared.items()}
    where.update({m: _where(doc, ("models", m)) for m in policy.models})
    check_windows(policy, doc, models, checker)
    check_prices(policy, doc, models, where, checker)
    declarations = check_context(policy, doc, checker)
    _check_names(policy, doc, checker)
    check_tiers(policy, doc, models, checker)
    check_routing(policy, doc, models, checker)
    check_budgets(policy, doc, models, checker)
    check_guardrails(policy, doc, checker)
    check_cache(policy, doc, declarations, checker)
    check_log(policy, doc, declarations, checker)
    check_meaning(policy, doc, declarations, checker)
    prompt_texts = check_prompts(policy, doc, checker)
    check_templates(policy, doc, declarations, prompt_texts, checker)
    expressions = check_expressions(policy, doc, declarations, checker)
    return PolicyContext(policy, doc, models, declarations, expressions, prompt_texts)


def _check_names(policy: Policy, doc: Document, checker: Checker) -> None:
    groups: list[tuple[str, Iterable[tuple[Path, str]]]] = [
        (
            "routing rule",
            (
                ((("routing", "rules", i, "name")), r.name)
                for i, r in enumerate(policy.routing.rules if policy.routing else [])
            ),
        ),
        ("budget", ((("budgets", i, "name"), b.name) for i, b in enumerate(policy.budgets))),
        (
            "guardrail",
            [
                (("guardrails", side, i, "name"), g.name)
                for side in ("input", "output")
                for i, g in enumerate(getattr(policy.guardrails, side))
            ],
        ),
        (
            "cache rule",
            ((("cache", "rules", i, "name"), r.name) for i, r in enumerate(policy.cache.rules)),
        ),
        ("rollout", ((("rollouts", i, "name"), r.name) for i, r in enumerate(policy.rollouts))),
    ]
    for what, items in groups:
        seen: dict[str, Path] = {}
        for path, name in items:
            if name in seen:
                line = doc.source_map.value(seen[name]).line
                checker.add(
                    doc,
                    path,
                    DUPLICATE_NAME,
                    f"duplicate {what} name {name!r}",
                    f"first used on line {line}; names must be unique so traces are unambiguous",
                )
            else:
                seen[name] = path
