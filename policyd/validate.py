"""Semantic checks of a typed bundle: references, cycles, values, and CEL types.

Structure is already valid when these run (see :mod:`policyd.structure`). Each
check appends :class:`Diagnostic` values located through the document's source
map; nothing here raises for a user's mistake. CEL expressions are compiled
here once and handed on to the compiler, so a bundle that passes ``check``
never parses an expression again.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, get_args

from pydantic import BaseModel

from policyd import cel, model
from policyd.diagnostics import Diagnostic, Severity
from policyd.loader import Document
from policyd.structure import suggest

Path = tuple[str | int, ...]

UNKNOWN_MODEL = "PD201"
UNKNOWN_TIER = "PD202"
UNKNOWN_TARGET = "PD203"
UNKNOWN_PROMPT = "PD204"
FALLBACK_CYCLE = "PD205"
DUPLICATE_NAME = "PD206"
DUPLICATE_MODEL = "PD207"
UNKNOWN_POLICY = "PD208"
UNKNOWN_VERSION = "PD209"
PROMPT_FILE = "PD210"
NAME_CLASH = "PD211"
BAD_CONTEXT = "PD212"
BAD_CACHE_KEY = "PD213"
CEL_NOT_BOOL = "PD305"
CEL_SLOW_PATH = "PD310"
ROLLOUT_SUM = "PD401"
SCHEDULE_ORDER = "PD402"
ALERTS = "PD403"
TIMEZONE = "PD404"
REGEX = "PD405"
WEIGHTS = "PD406"
GUARDRAIL_SHAPE = "PD407"
GUARDRAIL_ACTION = "PD408"
UNREACHABLE_RULE = "PD501"
MISSING_PRICE = "PD502"

# Request attributes every policy can read without declaring them.
BUILTIN_REQUEST: dict[str, Any] = {
    "id": "string",
    "model": "string",
    "messages": "list<map<string, dyn>>",
    "max_tokens": "int",
    "temperature": "double",
    "metadata": "map<string, dyn>",
    "input_tokens": "int",
    "input_chars": "int",
}
_SCALAR_TYPES = {"string", "int", "double", "bool", "bytes", "timestamp", "duration", "dyn"}
_TYPE_WORD = re.compile(r"[A-Za-z_]+")


@dataclass
class PolicyContext:
    """What the engine needs besides the typed policy: resolved parts, located."""

    policy: model.Policy
    document: Document
    models: dict[str, model.ModelSpec]
    declarations: dict[str, Any]
    expressions: dict[Path, cel.Expression] = field(default_factory=dict)
    prompt_texts: dict[tuple[str, str], str] = field(default_factory=dict)


class Checker:
    """Collects diagnostics for one bundle."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def add(
        self,
        doc: Document,
        path: Path,
        code: str,
        message: str,
        hint: str | None = None,
        *,
        severity: Severity = Severity.ERROR,
        key: bool = False,
        offset: int | None = None,
    ) -> None:
        if offset is not None:
            pos = doc.source_map.scalar_offset(path, offset)
        elif key:
            pos = doc.source_map.key(path)
        else:
            pos = doc.source_map.value(path)
        self.diagnostics.append(
            Diagnostic(doc.file, pos.line, pos.column, severity, code, message, hint)
        )


# --------------------------------------------------------------------------- bundle level


def _where(doc: Document, path: Path) -> str:
    """``file:line`` of the key at ``path``, for hints that point at a first definition."""
    return f"{doc.file}:{doc.source_map.key(path).line}"


def check_bundle(
    policies: list[tuple[model.Policy, Document]],
    catalogs: list[tuple[model.ModelCatalog, Document]],
    tests: list[tuple[model.PolicyTest, Document]],
) -> tuple[dict[str, PolicyContext], list[Diagnostic]]:
    """All semantic checks; returns the per-policy context of every policy without errors."""
    checker = Checker()
    shared_models = _catalog_models(catalogs, checker)
    contexts: dict[str, PolicyContext] = {}
    seen_policies: dict[str, Document] = {}
    for policy, doc in policies:
        name = policy.metadata.name
        if name in seen_policies:
            first = seen_policies[name]
            checker.add(
                doc,
                ("metadata", "name"),
                DUPLICATE_NAME,
                f"policy {name!r} is defined twice",
                f"first defined at {_where(first, ('metadata', 'name'))}; "
                "policy names are unique in a bundle",
            )
            continue
        seen_policies[name] = doc
        before = len(checker.diagnostics)
        ctx = _check_policy(policy, doc, shared_models, checker)
        if not any(d.is_error for d in checker.diagnostics[before:]):
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
        if test.policy not in seen_policies:
            checker.add(
                doc,
                ("policy",),
                UNKNOWN_POLICY,
                f"PolicyTest refers to unknown policy {test.policy!r}",
                suggest(test.policy, seen_policies)
                or f"policies in this bundle: {', '.join(sorted(seen_policies)) or 'none'}",
            )
    return contexts, checker.diagnostics


def _catalog_models(
    catalogs: list[tuple[model.ModelCatalog, Document]], checker: Checker
) -> dict[str, tuple[model.ModelSpec, Document]]:
    models: dict[str, tuple[model.ModelSpec, Document]] = {}
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
    policy: model.Policy,
    doc: Document,
    shared: dict[str, tuple[model.ModelSpec, Document]],
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
    declarations = _declarations(policy, doc, checker)
    ctx = PolicyContext(policy, doc, models, declarations)
    _check_names(policy, doc, checker)
    _check_tiers(policy, doc, models, checker)
    _check_routing(policy, doc, models, checker)
    _check_budgets(policy, doc, models, checker)
    _check_guardrails(policy, doc, checker)
    _check_cache(policy, doc, declarations, checker)
    _check_prompts(ctx, checker)
    _check_expressions(ctx, checker)
    return ctx


def _declarations(policy: model.Policy, doc: Document, checker: Checker) -> dict[str, Any]:
    request: dict[str, Any] = dict(BUILTIN_REQUEST)
    for name, decl in policy.context.items():
        path: Path = ("context", name)
        if name in BUILTIN_REQUEST:
            checker.add(
                doc,
                path,
                NAME_CLASH,
                f"context attribute {name!r} is built in",
                f"request.{name} is always available as {BUILTIN_REQUEST[name]}; remove it",
                key=True,
            )
            continue
        for bad_path, bad in _bad_types(decl, path):
            checker.add(
                doc,
                bad_path,
                BAD_CONTEXT,
                f"unknown CEL type {bad!r}",
                _type_suggestion(bad)
                or "use string, int, double, bool, timestamp, duration, dyn, list<T>, "
                "map<string, T>, or a nested mapping of attributes",
            )
        request[name] = decl
    return {"request": request, "now": "timestamp"}


def _bad_types(decl: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(decl, dict):
        for key, sub in decl.items():
            yield from _bad_types(sub, (*path, key))
    elif not _valid_type(decl):
        yield path, decl


def _valid_type(text: str) -> bool:
    """A type the CEL compiler accepts (so check and compile agree: no 'uint', no 'float')."""
    try:
        cel.parse_type(text)
    except cel.CelError:
        return False
    return True


def _type_suggestion(text: str) -> str | None:
    """``list<strng>`` -> "did you mean 'list<string>'?"."""
    words = [w for w in _TYPE_WORD.findall(text) if w not in _SCALAR_TYPES | {"list", "map"}]
    close = difflib.get_close_matches(words[0], sorted(_SCALAR_TYPES), n=1) if words else []
    return f"did you mean {text.strip().replace(words[0], close[0], 1)!r}?" if close else None


def _check_names(policy: model.Policy, doc: Document, checker: Checker) -> None:
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


def _check_tiers(
    policy: model.Policy, doc: Document, models: dict[str, model.ModelSpec], checker: Checker
) -> None:
    tiers = policy.tiers
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
                    suggest(target.model, models) or "define it under models: or in a ModelCatalog",
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
                        f"model {target.model!r} has no price in the policy; strategy cheapest "
                        "uses LiteLLM's price map, or treats it as most expensive",
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
                    or "a fallback names a model (under models: or in a ModelCatalog) or a tier",
                )
    _check_cycles(policy, doc, checker)


def _check_cycles(policy: model.Policy, doc: Document, checker: Checker) -> None:
    tiers = policy.tiers
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    reported: set[tuple[str, int]] = set()

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for i, entry in enumerate(tiers[name].fallback):
            if entry not in tiers:
                continue
            if state.get(entry) == 1 and (name, i) not in reported:
                reported.add((name, i))
                path = [*trail, name]  # entry is on it: it may be this very tier
                cycle = [*path[path.index(entry) :], entry]
                checker.add(
                    doc,
                    ("tiers", name, "fallback", i),
                    FALLBACK_CYCLE,
                    "fallback cycle between tiers: " + " -> ".join(cycle),
                    "a tier's fallback may not lead back to itself; remove one link",
                )
            elif state.get(entry) is None:
                visit(entry, [*trail, name])
        state[name] = 2

    for name in tiers:
        if name not in state:
            visit(name, [])


def _unknown_tier(name: str, tiers: Iterable[str], models: Iterable[str]) -> tuple[str, str]:
    """Message and hint for a tier reference that names no tier (perhaps a model)."""
    if name in models:
        return (
            f"{name!r} is a model, not a tier",
            f"routing and downgrades choose tiers: add a tier with targets: [{{model: {name}}}]",
        )
    return f"unknown tier {name!r}", suggest(name, tiers) or (
        f"tiers: {', '.join(sorted(tiers)) or 'none defined'}"
    )


def _check_routing(
    policy: model.Policy, doc: Document, models: dict[str, model.ModelSpec], checker: Checker
) -> None:
    routing = policy.routing
    tiers = policy.tiers
    if routing is None:
        return
    refs: list[tuple[Path, str]] = [(("routing", "default"), routing.default)]
    refs += [(("routing", "rules", i, "tier"), r.tier) for i, r in enumerate(routing.rules)]
    for path, tier in refs:
        if tier not in tiers:
            checker.add(doc, path, UNKNOWN_TIER, *_unknown_tier(tier, tiers, models))
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


def _check_budgets(
    policy: model.Policy, doc: Document, models: dict[str, model.ModelSpec], checker: Checker
) -> None:
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
            message, hint = _unknown_tier(tier, policy.tiers, models)
            checker.add(doc, (*base, "on_exceed", "tier"), UNKNOWN_TIER, message, hint)


# Checks any guardrail can fail, and the checks only one side can run.
_TEXT_CHECKS = frozenset({"pii", "injection", "deny_patterns", "allow_patterns", "deny_terms"})
_REDACTABLE = {
    "input": frozenset({"pii", "injection", "deny_patterns", "deny_terms", "plugin"}),
    "output": frozenset({"pii", "injection", "deny_patterns", "deny_terms", "plugin", "max_chars"}),
}
_WRONG_SIDE: dict[str, dict[str, tuple[str, str]]] = {
    "input": {
        "json_schema": (
            "json_schema checks a model's output; it cannot run on input",
            "move this guardrail under guardrails.output",
        ),
        "strip_code_fences": (
            "strip_code_fences belongs to json_schema, which checks a model's output",
            "move this guardrail under guardrails.output",
        ),
    },
    "output": {
        "max_tokens": (
            "max_tokens counts the request's input tokens; it cannot run on output",
            "limit the answer's length with max_chars, or move this guardrail under "
            "guardrails.input",
        ),
        "max_messages": (
            "max_messages counts the request's messages; it cannot run on output",
            "move this guardrail under guardrails.input",
        ),
        "roles": (
            "roles chooses which input messages are checked; output guardrails check the answer",
            "remove roles",
        ),
    },
}


def _check_guardrails(policy: model.Policy, doc: Document, checker: Checker) -> None:
    for side in ("input", "output"):
        for i, guard in enumerate(getattr(policy.guardrails, side)):
            _check_guardrail(guard, side, ("guardrails", side, i), doc, checker)


def _check_guardrail(
    guard: model.Guardrail, side: str, base: Path, doc: Document, checker: Checker
) -> None:
    """One guardrail: its shape for its side, its action, and every pattern, schema and
    plugin compiled as the engine will compile them, so ``check`` and load agree.
    The guardrails library (RE2) is imported only for guardrails that check text."""

    def shape(key: Path, message: str, hint: str | None) -> None:
        checker.add(doc, (*base, *key), GUARDRAIL_SHAPE, message, hint)

    checks = guard.checks()
    if not checks and guard.when is None:
        shape(
            ("name",),
            f"guardrail {guard.name!r} checks nothing",
            "add a check (pii, deny_patterns, max_tokens, ...) or a when condition",
        )
    for key, (message, hint) in _WRONG_SIDE[side].items():
        if getattr(guard, key) is not None:
            shape((key,), message, hint)
    if guard.strip_code_fences is not None and guard.json_schema is None:
        shape(
            ("strip_code_fences",),
            "strip_code_fences only applies to json_schema",
            "remove it, or add json_schema",
        )
    if guard.timeout is not None and guard.plugin is None:
        shape(
            ("timeout",),
            "timeout limits a plugin call, and this guardrail has no plugin",
            "remove timeout, or add plugin: package.module:function",
        )
    if side == "input" and guard.roles is not None and not set(checks) & {*_TEXT_CHECKS, "plugin"}:
        shape(
            ("roles",),
            f"roles chooses which messages' text is checked, but "
            f"{', '.join(checks) or 'a when condition'} does not read message text",
            "remove roles, or add a text check (pii, injection, deny_patterns, ...)",
        )
    _check_redact(guard, side, base, doc, checker)
    for key in ("pii", "deny_patterns", "allow_patterns", "deny_terms"):
        if getattr(guard, key) == []:
            shape((key,), f"{key} is empty", f"list at least one item, or remove {key}")
    for key in ("deny_patterns", "allow_patterns"):
        for j, pattern in enumerate(getattr(guard, key) or []):
            _re2_problem(doc, (*base, key, j), pattern, key, j, checker)
    if guard.deny_terms:
        from policyd.guardrails import GuardrailConfigError, terms_check

        try:
            terms_check(guard.deny_terms)
        except GuardrailConfigError as exc:
            index = () if exc.index is None else (exc.index,)
            shape(("deny_terms", *index), exc.message, exc.hint)
    if isinstance(guard.injection, model.InjectionOptions):
        _check_injection(guard.injection, (*base, "injection"), doc, checker)
    if guard.json_schema is not None and side == "output":
        invalid = _schema_problem(guard.json_schema)
        if invalid:
            hint = "write a JSON Schema (draft 2020-12), e.g. {type: object, required: [name]}"
            shape(("json_schema",), invalid, hint)
    if guard.plugin is not None:
        from policyd.guardrails import GuardrailConfigError, load_plugin

        try:
            load_plugin(guard.plugin)
        except GuardrailConfigError as exc:
            shape(("plugin",), exc.message, exc.hint)


def _check_redact(
    guard: model.Guardrail, side: str, base: Path, doc: Document, checker: Checker
) -> None:
    """``action: redact`` needs checks that find text to replace, and only such checks."""
    if guard.action != "redact":
        return
    checks = guard.checks()
    redactable = _REDACTABLE[side]
    if not set(checks) & redactable:
        checker.add(
            doc,
            (*base, "action"),
            GUARDRAIL_ACTION,
            f"action redact needs a check that finds text to replace, "
            f"not {', '.join(checks) or 'a when condition'}",
            "use block or warn, or add pii / deny_patterns / deny_terms",
        )
        return
    other = [c for c in checks if c not in redactable]
    if other:
        checker.add(
            doc,
            (*base, "action"),
            GUARDRAIL_ACTION,
            f"action redact cannot apply to {', '.join(other)}: it finds no text to replace",
            f"move {', '.join(other)} to a guardrail of its own with action block or warn",
        )


def _check_injection(
    options: model.InjectionOptions, path: Path, doc: Document, checker: Checker
) -> None:
    from policyd.guardrails import RULESETS

    rules = RULESETS.get(options.version)
    if rules is None:
        checker.add(
            doc,
            (*path, "version"),
            GUARDRAIL_SHAPE,
            f"unknown injection ruleset version {options.version!r}",
            suggest(options.version, RULESETS) or f"use one of {', '.join(sorted(RULESETS))}",
        )
    else:
        names = [name for name, _ in rules]
        for j, name in enumerate(options.disable):
            if name not in names:
                checker.add(
                    doc,
                    (*path, "disable", j),
                    GUARDRAIL_SHAPE,
                    f"injection ruleset {options.version} has no rule {name!r}",
                    suggest(name, names) or f"rules: {', '.join(names)}",
                )
        if set(names) <= set(options.disable) and not options.patterns:
            checker.add(
                doc,
                (*path, "disable"),
                GUARDRAIL_SHAPE,
                "every injection rule is disabled, so this check finds nothing",
                "remove the injection check instead",
            )
    for j, pattern in enumerate(options.patterns):
        _re2_problem(doc, (*path, "patterns", j), pattern, "injection patterns", j, checker)


def _re2_problem(
    doc: Document, path: Path, pattern: str, what: str, index: int, checker: Checker
) -> None:
    """Report (PD405) why the guardrails library would refuse ``pattern``, at the construct
    RE2 names: the very compile the engine does when it builds the check (RE2 syntax, no
    pattern that matches the empty string), so check and load agree."""
    from policyd.guardrails import GuardrailConfigError
    from policyd.guardrails._regex import compile_pattern

    try:
        compile_pattern(pattern, what=what, index=index)
    except GuardrailConfigError as exc:
        fragment = exc.message.rpartition(": ")[2] if ": " in exc.message else ""
        offset = pattern.find(fragment) if fragment else -1
        checker.add(doc, path, REGEX, exc.message, exc.hint, offset=max(offset, 0))


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not a JSON Schema, checked by the draft the engine will use."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/" + "/".join(map(str, exc.path)) if exc.path else ""
        return f"invalid JSON Schema: {exc.message}" + (f" (at {where})" if where else "")
    return None


def _check_cache(
    policy: model.Policy, doc: Document, declarations: dict[str, Any], checker: Checker
) -> None:
    request = declarations["request"]
    for i, rule in enumerate(policy.cache.rules):
        for j, attr in enumerate(rule.key):
            if attr not in request:
                checker.add(
                    doc,
                    ("cache", "rules", i, "key", j),
                    BAD_CACHE_KEY,
                    f"cache key field {attr!r} is not a request attribute",
                    suggest(attr, request)
                    or "use model, messages, max_tokens, temperature, "
                    "metadata or a declared context attribute",
                )


def _check_prompts(ctx: PolicyContext, checker: Checker) -> None:
    policy, doc = ctx.policy, ctx.document
    base_dir = FsPath(doc.file).parent
    for prompt_name, prompt in policy.prompts.items():
        for version, spec in prompt.versions.items():
            path: Path = ("prompts", prompt_name, "versions", version)
            if spec.template is not None:
                ctx.prompt_texts[(prompt_name, version)] = spec.template
                continue
            assert spec.file is not None
            file = base_dir / spec.file
            try:
                ctx.prompt_texts[(prompt_name, version)] = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = "does not exist" if isinstance(exc, FileNotFoundError) else str(exc)
                checker.add(
                    doc,
                    (*path, "file"),
                    PROMPT_FILE,
                    f"prompt file {str(file)!r} {reason}",
                    "paths are relative to the policy file's directory",
                )
    for i, rollout in enumerate(policy.rollouts):
        base: Path = ("rollouts", i)
        rolled = policy.prompts.get(rollout.prompt)
        if rolled is None:
            checker.add(
                doc,
                (*base, "prompt"),
                UNKNOWN_PROMPT,
                f"unknown prompt {rollout.prompt!r}",
                suggest(rollout.prompt, policy.prompts) or "define it under prompts:",
            )
            continue
        versions = rolled.versions
        refs: list[tuple[Path, str]] = [((*base, "default"), rollout.default)]
        refs += [((*base, "variants", v), v) for v in rollout.variants]
        for j, entry in enumerate(rollout.schedule):
            refs += [((*base, "schedule", j, "variants", v), v) for v in entry.variants]
        for path, version in refs:
            if version not in versions:
                checker.add(
                    doc,
                    path,
                    UNKNOWN_VERSION,
                    f"prompt {rollout.prompt!r} has no version {version!r}",
                    suggest(version, versions)
                    or f"defined versions: {', '.join(versions)}; add {version} under "
                    f"prompts.{rollout.prompt}.versions, or use one of those",
                    key=path[-2] == "variants",
                )
        shares = [((*base, "variants"), rollout.variants)]
        shares += [
            ((*base, "schedule", j, "variants"), e.variants) for j, e in enumerate(rollout.schedule)
        ]
        for path, variants in shares:
            _check_shares(doc, path, variants, checker)
        previous = None
        for j, entry in enumerate(rollout.schedule):
            at = model.parse_timestamp(entry.at)
            if previous is not None and at <= previous:
                checker.add(
                    doc,
                    (*base, "schedule", j, "at"),
                    SCHEDULE_ORDER,
                    f"schedule entry {entry.at} is not after the one before it",
                    "list schedule entries in increasing time order",
                )
            previous = at


def _check_shares(doc: Document, path: Path, variants: dict[str, float], checker: Checker) -> None:
    total = sum(variants.values())
    if abs(total - 100) > 1e-9:
        checker.add(
            doc,
            path,
            ROLLOUT_SUM,
            f"variant percentages sum to {total:g}, not 100",
            "adjust the shares so they add up to exactly 100",
        )
    for name, share in variants.items():
        if abs(share * 100 - round(share * 100)) > 1e-9:
            checker.add(
                doc,
                (*path, name),
                ROLLOUT_SUM,
                f"share {share:g}% of {name!r} is finer than 0.01%",
                "rollouts use 10,000 buckets: round to two decimals",
            )


# --------------------------------------------------------------------------- CEL


def cel_fields(obj: BaseModel, path: Path = ()) -> Iterator[tuple[Path, str, str]]:
    """Every CEL expression in a model object: (path, source, kind)."""
    for name, info in type(obj).model_fields.items():
        value = getattr(obj, name)
        key = info.alias or name
        marker = _cel_marker(info.metadata, info.annotation)
        if marker is not None and isinstance(value, str):
            yield (*path, key), value, marker.kind
        else:
            yield from _walk(value, (*path, key))


def _cel_marker(metadata: list[Any], annotation: Any) -> model.CelMarker | None:
    """The CelMarker of a field, looking inside Optional[...] too."""
    for item in metadata:
        if isinstance(item, model.CelMarker):
            return item
    for arg in get_args(annotation):
        found = _cel_marker(list(getattr(arg, "__metadata__", ())), arg)
        if found is not None:
            return found
    return None


def _walk(value: Any, path: Path) -> Iterator[tuple[Path, str, str]]:
    if isinstance(value, BaseModel):
        yield from cel_fields(value, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i))
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _walk(item, (*path, k))


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _request_hint(exc: cel.CompileError, request: dict[str, Any]) -> str | None:
    """``tenant.tier`` for ``request.tenant.tier``: say that attributes live under request."""
    name = _IDENT.match(exc.source, exc.offset)
    if exc.code == "PD302" and name and name.group() in request:
        return f"request attributes are read through request: write request.{name.group()}"
    return None


def _one_line(source: str) -> str:
    """An expression as messages quote it: a block scalar's line breaks and indents folded."""
    return re.sub(r"\s*\n\s*", " ", source.strip())


def _check_expressions(ctx: PolicyContext, checker: Checker) -> None:
    doc = ctx.document
    for path, source, kind in cel_fields(ctx.policy):
        try:
            expr = cel.compile(source, ctx.declarations)
        except cel.CompileError as exc:
            checker.add(
                doc,
                path,
                exc.code,
                f"{exc.message} in CEL expression {_one_line(source)!r}",
                exc.hint or _request_hint(exc, ctx.declarations["request"]),
                offset=exc.offset,
            )
            continue
        if kind == "condition" and expr.result_type not in ("bool", "dyn"):
            checker.add(
                doc,
                path,
                CEL_NOT_BOOL,
                f"condition must be a bool, but {_one_line(source)!r} is {expr.result_type}",
                'compare it with something, e.g. ... == "value"',
            )
            continue
        if not expr.native:
            checker.add(
                doc,
                path,
                CEL_SLOW_PATH,
                f"expression runs on cel-python's evaluator (slow path): {expr.fallback_reason}",
                severity=Severity.INFO,
            )
        ctx.expressions[path] = expr
