"""Guardrails: each guardrail's shape for its side and its action (PD407, PD408), with every
RE2 pattern (PD405), term list, injection ruleset, JSON Schema and plugin checked by the very
code the engine builds them with, so ``check`` and load agree.

The guardrails library (RE2, jsonschema, plugins) is imported only when a guardrail needs it.
"""

from __future__ import annotations

from typing import Any

from policyd import document
from policyd.checks.base import (
    GUARDRAIL_ACTION,
    GUARDRAIL_SHAPE,
    REGEX,
    UNKNOWN_ROLE,
    Checker,
    Path,
)
from policyd.loader import Document
from policyd.words import suggest

# The OpenAI chat roles ("function" is OpenAI's deprecated name for "tool"); an
# application's own roles are written with an "x-" prefix (x-retrieved, ...).
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
EXTENSION_ROLE_PREFIX = "x-"

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


def check_guardrails(policy: document.Policy, doc: Document, checker: Checker) -> None:
    """Every input and output guardrail of ``policy``."""
    for side in ("input", "output"):
        for i, guard in enumerate(getattr(policy.guardrails, side)):
            _check_guardrail(guard, side, ("guardrails", side, i), doc, checker)


def _check_guardrail(
    guard: document.Guardrail, side: str, base: Path, doc: Document, checker: Checker
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
    if side == "input" and guard.roles is not None:
        _check_roles(guard, base, doc, checker)
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
    if isinstance(guard.injection, document.InjectionOptions):
        _check_injection(guard.injection, (*base, "injection"), doc, checker)
    if guard.json_schema is not None and side == "output":
        invalid = _schema_problem(guard.json_schema)
        if invalid:
            hint = "write a JSON Schema (draft 2020-12), e.g. {type: object, required: [name]}"
            shape(("json_schema",), invalid, hint)
        else:
            from policyd.guardrails.structured import schema_pattern_problems

            for where, message, fix in schema_pattern_problems(guard.json_schema):
                checker.add(doc, (*base, "json_schema", *where), REGEX, message, fix)
    if guard.plugin is not None:
        from policyd.guardrails import GuardrailConfigError, load_plugin

        try:
            load_plugin(guard.plugin)
        except GuardrailConfigError as exc:
            shape(("plugin",), exc.message, exc.hint)


def _check_redact(
    guard: document.Guardrail, side: str, base: Path, doc: Document, checker: Checker
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
    options: document.InjectionOptions, path: Path, doc: Document, checker: Checker
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


def _check_roles(guard: document.Guardrail, base: Path, doc: Document, checker: Checker) -> None:
    """PD409: ``roles`` names OpenAI chat roles or ``x-`` extension roles; a typo would
    silently turn the guardrail off for the messages it meant to check."""
    roles = guard.roles or []
    if not roles:
        checker.add(
            doc,
            (*base, "roles"),
            UNKNOWN_ROLE,
            f"guardrail {guard.name!r} has roles: [] and so checks no message",
            "remove roles to check every message, or list the roles to check",
        )
    for j, role in enumerate(roles):
        if role in CHAT_ROLES or (
            role.startswith(EXTENSION_ROLE_PREFIX) and len(role) > len(EXTENSION_ROLE_PREFIX)
        ):
            continue
        checker.add(
            doc,
            (*base, "roles", j),
            UNKNOWN_ROLE,
            f"unknown message role {role!r}",
            (suggest(role, CHAT_ROLES) or "")
            + (" " if suggest(role, CHAT_ROLES) else "")
            + f"roles are {', '.join(CHAT_ROLES)}; an application's own roles start with "
            f"{EXTENSION_ROLE_PREFIX!r} (x-retrieved)",
        )
