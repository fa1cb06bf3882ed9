"""Prompt-injection detection: a curated, versioned set of RE2 rules, extensible per policy.

A ruleset version never changes once released: a policy that says ``version: v1`` keeps
the exact behaviour it was tested with. Improvements ship as a new version. Rule ids
(``v1:ignore-previous``) are stable and are what findings and traces report.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence

from policyd.guardrails._core import GuardrailConfigError
from policyd.guardrails._regex import compile_pattern
from policyd.guardrails._rules import Rule, RuleSetCheck
from policyd.guardrails._shape import shape_of

INJECTION_RULESET_VERSION = "v1"

_IGNORE = r"(?:ignore|disregard|forget|skip|override|bypass|abandon|drop)"
_QUANT = r"(?:(?:all|any|every|each|the|your|my|these|those|of)\s+)*"
_PRIOR = r"(?:previous|prior|above|earlier|preceding|foregoing|initial|original|old|existing)"
_RULES = r"(?:instructions?|prompts?|rules?|directions?|context|guidelines?|commands?|orders?)"

RULESETS: dict[str, tuple[tuple[str, str], ...]] = {
    "v1": (
        (
            "ignore-previous",
            rf"(?i)\b{_IGNORE}\s+{_QUANT}{_PRIOR}\s+(?:system\s+)?{_RULES}",
        ),
        (
            "ignore-your-rules",
            rf"(?i)\b{_IGNORE}\s+(?:all\s+)?(?:of\s+)?your\s+(?:system\s+)?"
            r"(?:instructions|rules|guidelines|programming|restrictions|safety\s+guidelines)\b",
        ),
        (
            "reveal-system-prompt",
            r"(?i)\b(?:reveal|show|print|display|repeat|output|leak|dump|expose|tell\s+me|"
            r"give\s+me|what\s+(?:is|are|was|were))\s+(?:me\s+)?(?:your|the)\s+"
            r"(?:(?:full|entire|exact|original|hidden|secret|initial|complete)\s+)*"
            r"(?:system\s+(?:prompt|message|instructions)|hidden\s+instructions|"
            r"initial\s+(?:prompt|instructions)|developer\s+(?:prompt|message))",
        ),
        (
            "repeat-text-above",
            r"(?i)\b(?:repeat|print|output|copy)\s+(?:all\s+)?(?:the\s+)?"
            r"(?:words|text|everything|instructions)\s+(?:written\s+)?above\b",
        ),
        (
            "new-instructions",
            r"(?i)\b(?:new|updated|real|actual|true|override)\s+(?:system\s+)?instructions?\s*:",
        ),
        (
            "mode-switch",
            r"(?i)\b(?:enable|activate|enter|switch\s+to|turn\s+on|you\s+are\s+(?:now\s+)?in)"
            r"\s+(?:developer|dev|god|jailbreak|jailbroken|debug|sudo|unrestricted|DAN)\s+mode\b",
        ),
        (
            "do-anything-now",
            r"(?i)\bdo\s+anything\s+now\b|\bDAN\s+(?:mode|prompt|jailbreak)\b",
        ),
        (
            "unrestricted-persona",
            r"(?i)\b(?:you\s+are\s+(?:now\s+)?|act\s+as\s+|pretend\s+(?:to\s+be|you\s+are)\s+|"
            r"from\s+now\s+on,?\s+you\s+are\s+)(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|"
            r"jailbroken|amoral|evil)\b",
        ),
        (
            "no-restrictions",
            r"(?i)\b(?:respond|answer|reply|act|behave|continue)\s+(?:as\s+if\s+you\s+(?:have|had)"
            r"\s+no|without\s+(?:any\s+)?(?:your\s+)?)\s*(?:restrictions|filters|limitations|"
            r"rules|guidelines|censorship|safety\s+(?:rules|guidelines|filters))\b",
        ),
        (
            "chat-template-token",
            r"<\|(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id)\|>"
            r"|\[/?INST\]|<</?SYS>>",
        ),
        (
            "ignore-previous-i18n",
            r"(?i)\b(?:ignora|ignorar|olvida)\s+(?:todas\s+)?(?:las\s+)?instrucciones\s+"
            r"(?:anteriores|previas)"
            r"|\bignore[rz]?\s+(?:toutes\s+)?(?:les\s+)?instructions\s+(?:précédentes|antérieures)"
            r"|\bignorier(?:e|en)?\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen)\s+"
            r"(?:Anweisungen|Instruktionen|Befehle)"
            r"|\bignora\s+(?:tutte\s+)?(?:le\s+)?istruzioni\s+precedenti",
        ),
    ),
}


# what every match of a rule starts with, where the pattern's own first group does not say
_TRIGGERS = {
    "do-anything-now": r"(?i)(?:do\s|dan\s)",
    "chat-template-token": r"<\||\[/?INST\]|<</?SYS>>",
    "ignore-previous-i18n": r"(?i)(?:ignor|olvida)",
}


def _split_top(body: str) -> list[str] | None:
    """``body`` split at its top-level ``|`` (None when a bracket or escape makes it hard)."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            cur.append(body[i : i + 2])
            i += 2
            continue
        if ch == "[":
            return None
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


@functools.lru_cache(maxsize=256)
def trigger_of(pattern: str) -> str | None:
    """A short pattern every match of a built-in rule starts with: its leading word group,
    each alternative cut at its first ``\\s+`` (any match has at least that one space).
    Lets a stream hold back only a few characters instead of the phrase so far."""
    head = "(?i)\\b(?:"
    whole = _split_top(pattern[4:])
    if not pattern.startswith(head) or whole is None or len(whole) != 1:
        return None  # not one leading group (a top-level alternation has several starts)
    depth, end = 1, len(head)
    while end < len(pattern) and depth:
        depth += pattern[end] == "("
        depth -= pattern[end] == ")"
        end += 1 if pattern[end] != "\\" else 2
    parts = _split_top(pattern[len(head) : end - 1])
    if parts is None:
        return None
    cut = []
    for part in parts:
        at = part.find("\\s+")
        part = part if at < 0 else part[:at] + "\\s"
        if part.count("(") != part.count(")"):
            return None
        cut.append(part)
    trigger = "(?i)(?:" + "|".join(cut) + ")"
    maxw = shape_of(trigger).maxw
    return trigger if maxw is not None and maxw <= 64 else None


def injection_check(
    extra_patterns: Sequence[str] = (),
    version: str = INJECTION_RULESET_VERSION,
    *,
    disable: Sequence[str] = (),
) -> RuleSetCheck:
    """The built-in injection rules of ``version`` plus the policy's ``extra_patterns``.

    Findings have kind ``injection``, label ``INJECTION`` and rule ``<version>:<name>`` for
    built-in rules, ``extra:<i>`` for the policy's own. ``disable`` turns off built-in rules
    by name (``ignore-previous``) when they misfire on a product's legitimate traffic.
    """
    if version not in RULESETS:
        raise GuardrailConfigError(
            f"unknown injection ruleset version {version!r}",
            hint=f"use one of {', '.join(sorted(RULESETS))}",
        )
    if isinstance(extra_patterns, str) or isinstance(disable, str):
        raise GuardrailConfigError("injection patterns and disable must be lists, not strings")
    builtin = RULESETS[version]
    names = [name for name, _ in builtin]
    for i, name in enumerate(disable):
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            raise GuardrailConfigError(
                f"injection disable[{i}]: no rule {name!r} in ruleset {version}",
                index=i,
                hint=f"did you mean {close[0]!r}?" if close else f"rules: {', '.join(names)}",
            )
    rules = [
        Rule(
            "injection",
            "INJECTION",
            f"{version}:{name}",
            compile_pattern(pattern, what=f"injection {name}", index=None),
            trigger=_TRIGGERS.get(name) or trigger_of(pattern),
        )
        for name, pattern in builtin
        if name not in disable
    ]
    rules += [
        Rule(
            "injection",
            "INJECTION",
            f"extra:{i}",
            compile_pattern(p, what="injection patterns", index=i),
        )
        for i, p in enumerate(extra_patterns)
    ]
    if not rules:
        raise GuardrailConfigError("every injection rule is disabled", hint="drop the guardrail")
    return RuleSetCheck(rules)
