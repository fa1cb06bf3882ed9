"""Rule sets: PII detectors, deny patterns and injection rules scanned as one RE2 set.

Every regex-driven check is a :class:`RuleSetCheck` over :class:`Rule` values, so
:func:`combine_checks` can merge a guardrail's ``pii``, ``injection`` and ``deny_patterns``
into a single set: one pass over a clean text, whatever the number of rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policyd.guardrails._core import Check, Finding, sort_findings
from policyd.guardrails._regex import PatternSet, ScanText
from policyd.guardrails._validators import Validator


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled RE2 rule and what a match of it means.

    ``validate`` confirms a candidate (Luhn, mod-97, ...) and may trim or split it;
    ``group`` picks the capture group holding the value. Among ``exclusive`` rules (the
    PII detectors) a finding wholly inside another is dropped, the lower ``priority``
    number winning ties, so one value is counted once.
    """

    kind: str
    label: str
    rule_id: str | None
    regex: Any
    validate: Validator | None = None
    group: int = 0
    exclusive: bool = False
    priority: int = 0


class RuleSetCheck:
    """Scans for many rules with one RE2 set pass, then spans only the rules that hit."""

    __slots__ = ("_set", "rules")

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self._set = PatternSet([r.regex for r in self.rules])

    def scan(self, text: str) -> list[Finding]:
        return self.scan_after(text, -1)

    def scan_after(self, text: str, min_end: int) -> list[Finding]:
        """Findings ending after character ``min_end``; earlier candidates are not even
        validated (the stream scanner settled them already)."""
        st = ScanText(text)
        data = st.data
        min_byte = st.byte_offset(min_end)
        raw: list[tuple[int, int, Rule]] = []
        for i in self._set.hits(data):
            rule = self.rules[i]
            for m in self._set.spans(i, data):
                start, end = m.span(rule.group)
                if end <= min_byte:
                    continue
                if rule.validate is None:
                    raw.append((start, end, rule))
                else:
                    raw.extend((s, e, rule) for s, e in rule.validate(data, start, end))
        if not raw:
            return []
        raw = _drop_contained(raw)
        spans = st.char_spans([(s, e) for s, e, _ in raw])
        return [
            Finding(rule.kind, s, e, rule.label, rule.rule_id)
            for (s, e), (_, _, rule) in zip(spans, raw, strict=True)
            if e > min_end
        ]


def _drop_contained(raw: list[tuple[int, int, Rule]]) -> list[tuple[int, int, Rule]]:
    """Sort by position; drop an exclusive finding lying wholly inside a kept exclusive one.

    ``+1 415 555 2671`` is one phone, not also a shorter number; a card number inside a JWT
    is part of the secret. Partial overlaps are kept: redaction merges them, so nothing is
    left half-visible.
    """
    raw.sort(key=lambda r: (r[0], -r[1], r[2].priority))
    kept: list[tuple[int, int, Rule]] = []
    reach = -1
    for item in raw:
        if item[2].exclusive:
            if item[1] <= reach:
                continue
            reach = item[1]
        kept.append(item)
    return kept


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
