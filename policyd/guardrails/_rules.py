"""Rule sets: PII detectors, deny patterns and injection rules scanned as one RE2 set.

Every regex-driven check is a :class:`RuleSetCheck` over :class:`Rule` values, so
:func:`combine_checks` can merge a guardrail's ``pii``, ``injection`` and ``deny_patterns``
into a single set: one pass over a clean text, whatever the number of rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from policyd.guardrails._core import Check, Finding, sort_findings
from policyd.guardrails._cursors import CursorPlan
from policyd.guardrails._regex import PatternSet
from policyd.guardrails._scan import Gates, RuleCursor, scan_rules
from policyd.guardrails._shape import Shape, shape_of
from policyd.guardrails._validators import Validator

POLICY_WINDOW = 256  # bytes: the longest match of a policy's own pattern


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled RE2 rule and what a match of it means.

    ``validate`` confirms a candidate (Luhn, mod-97, ...) and may trim or split it;
    ``group`` picks the capture group holding the value. Among ``exclusive`` rules (the
    PII detectors) a finding wholly inside another is dropped, the lower ``priority``
    number winning ties, so one value is counted once. ``window`` is the longest match in
    UTF-8 bytes (see :mod:`policyd.guardrails._scan`); ``pem`` makes the match a
    private-key header that extends over its block; ``name_of`` names the rule from the
    matched bytes (which term matched); ``trigger`` is a short pattern every match starts
    with, so a stream holds back only from where it occurs.
    """

    kind: str
    label: str
    rule_id: str | None
    regex: Any
    validate: Validator | None = None
    group: int = 0
    exclusive: bool = False
    priority: int = 0
    window: int = POLICY_WINDOW
    pem: bool = False
    name_of: Callable[[bytes, int, int], str | None] | None = None
    trigger: str | None = None  # a short regex every match starts with (scan skips to it)
    lookahead: int = 4  # bytes past a candidate its validator (or RE2) may read


class RuleSetCheck:
    """Scans for many rules: one RE2 set pass says which rules hit, then each of those runs
    the linear scan of :mod:`policyd.guardrails._scan`.

    Among ``exclusive`` rules a finding wholly inside another is dropped (``+1 415 555
    2671`` is one phone, not also a shorter number; a card number inside a JWT is part of
    the secret); partial overlaps are kept: redaction merges them.
    """

    __slots__ = ("_gates", "_plans", "_set", "rules", "shapes")

    def __init__(self, rules: Sequence[Rule]):
        self._gates: Gates | None = None
        self._plans: tuple[CursorPlan, ...] | None = None
        self.rules = tuple(rules)
        self.shapes: tuple[Shape, ...] = tuple(shape_of(r.regex.pattern) for r in self.rules)
        self._set = PatternSet([r.regex for r in self.rules])

    def scan(self, text: str) -> list[Finding]:
        # surrogatepass: as ScanText (a lone surrogate must not crash a scan)
        data = text.encode("utf-8", "surrogatepass")
        hits = self._set.hits(data)
        if not hits:
            return []
        plans = self._plans
        if plans is None:  # made on the first text with a candidate, kept for the check's life
            plans = self._plans = tuple(
                CursorPlan(r, s) for r, s in zip(self.rules, self.shapes, strict=True)
            )
        return scan_rules(self.rules, self.shapes, hits, text, data, plans)

    def scan_after(self, text: str, min_end: int) -> list[Finding]:
        """Findings ending after character ``min_end``."""
        return [f for f in self.scan(text) if f.end > min_end]

    def open_cursor(self) -> RuleCursor:
        """A scan of a text that arrives in pieces; finds what :meth:`scan` finds."""
        if self._gates is None:
            self._gates = Gates(self.rules, self.shapes)
        plans = self._plans
        if plans is None:
            plans = self._plans = tuple(
                CursorPlan(r, s) for r, s in zip(self.rules, self.shapes, strict=True)
            )
        return RuleCursor(self.rules, self.shapes, range(len(self.rules)), self._gates, plans)


@dataclass(frozen=True, slots=True)
class CombinedCheck:
    """Several checks run as one (a guardrail with ``pii`` and ``max_chars``, ...)."""

    checks: tuple[Check, ...]

    def scan(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for check in self.checks:
            found.extend(check.scan(text))
        return sort_findings(found)


def combine_checks(checks: Sequence[Check]) -> Check:
    """One check running all of ``checks``, findings sorted by position.

    Rule-set checks (``pii``, ``deny_patterns``, ``injection``) are merged into a single RE2
    set, so a guardrail costs one pass over a clean text however many of them it uses.
    """
    rule_sets = [c for c in checks if isinstance(c, RuleSetCheck)]
    rest = [c for c in checks if not isinstance(c, RuleSetCheck)]
    merged: list[Check] = []
    if len(rule_sets) == 1:
        merged.append(rule_sets[0])
    elif rule_sets:
        merged.append(RuleSetCheck([rule for c in rule_sets for rule in c.rules]))
    merged.extend(rest)
    return merged[0] if len(merged) == 1 else CombinedCheck(tuple(merged))
