"""Policy-written text rules: ``deny_patterns``, ``allow_patterns`` and ``deny_terms``.

Patterns are RE2 (linear time whatever the pattern or the input); many patterns of one
guardrail are scanned as one RE2 set. Terms become one case-insensitive RE2 alternation
with word boundaries, which stays a single fast pass for thousands of terms.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import re2

from policyd.guardrails._core import CheckStream, Finding, GuardrailConfigError
from policyd.guardrails._regex import PatternSet, ScanText, compile_pattern
from policyd.guardrails._rules import POLICY_WINDOW, Rule, RuleSetCheck


def _as_list(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, str):
        raise GuardrailConfigError(
            f"{what} must be a list, got a single string",
            hint=f"write {what}: ['...'] (a YAML list)",
        )
    return list(values)


def pattern_check(deny: Sequence[str]) -> RuleSetCheck:
    """Flags every match of any ``deny`` pattern (RE2 syntax); rule ids are ``pattern:<i>``.

    A pattern RE2 cannot compile raises :class:`GuardrailConfigError` with its ``index``.
    """
    patterns = _as_list(deny, "deny_patterns")
    if not patterns:
        raise GuardrailConfigError("deny_patterns is empty", hint="list at least one pattern")
    compiled = [compile_pattern(p, what="deny_patterns", index=i) for i, p in enumerate(patterns)]
    return RuleSetCheck(
        [Rule("pattern", "PATTERN", f"pattern:{i}", regex) for i, regex in enumerate(compiled)]
    )


@dataclass(frozen=True, slots=True)
class AllowCheck:
    """Flags a text that matches *none* of the allowed patterns (one whole-text finding)."""

    _set: PatternSet

    def allowed(self, text: str) -> bool:
        return bool(self._set.hits(ScanText(text).data))

    def scan(self, text: str) -> list[Finding]:
        if self.allowed(text):
            return []
        return [_not_allowed()]

    def open_stream(self, overlap: int) -> CheckStream:
        return _AllowStream(self, overlap)


def _not_allowed() -> Finding:
    return Finding(
        "allow_patterns", -1, -1, "NOT_ALLOWED", None, "text matches none of allow_patterns"
    )


class _AllowStream:
    """Streaming allow check: keeps the text (up to ``_KEEP`` characters) and judges it
    whole at the end, as a one-shot scan does. Past that, windows of ``overlap`` characters
    are judged as they come (an allowed match longer than that may go unseen)."""

    __slots__ = ("_check", "_ok", "_overlap", "_parts", "_size", "_tail")

    def __init__(self, check: AllowCheck, overlap: int):
        self._check = check
        self._overlap = overlap
        self._ok = False
        self._parts: list[str] | None = []
        self._size = 0
        self._tail = ""

    def feed(self, chunk: str, offset: int) -> list[Finding]:
        if self._ok:
            return []
        if self._parts is not None:
            self._parts.append(chunk)
            self._size += len(chunk)
            if self._size <= _KEEP:
                return []
            chunk, self._parts = "".join(self._parts), None
        window = self._tail + chunk
        self._ok = self._check.allowed(window)
        self._tail = window[len(window) - self._overlap :] if self._overlap else ""
        return []

    def finish(self) -> list[Finding]:
        if self._parts is not None:
            self._ok = self._check.allowed("".join(self._parts))
        return [] if self._ok else [_not_allowed()]


_KEEP = 1 << 20


def allow_check(allow: Sequence[str]) -> AllowCheck:
    """A finding (kind ``allow_patterns``) when the text matches none of ``allow``."""
    patterns = _as_list(allow, "allow_patterns")
    if not patterns:
        raise GuardrailConfigError("allow_patterns is empty", hint="list at least one pattern")
    compiled = [compile_pattern(p, what="allow_patterns", index=i) for i, p in enumerate(patterns)]
    return AllowCheck(PatternSet(compiled))


# --- deny_terms ---------------------------------------------------------------------------


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _needs_edge_check(ch: str) -> bool:
    """Non-ASCII word characters RE2's ASCII ``\\b`` cannot judge; caseless scripts (CJK,
    Thai, ...) do not separate words with spaces, so no boundary is required there."""
    return not ch.isascii() and _is_word(ch) and unicodedata.category(ch) != "Lo"


def _normalize(term: str) -> str:
    return " ".join(term.split()).casefold()


def _term_regex(term: str) -> str:
    body = r"\s+".join(re2.escape(word) for word in term.split())
    left = r"\b" if term[0].isascii() and _is_word(term[0]) else ""
    right = r"\b" if term[-1].isascii() and _is_word(term[-1]) else ""
    return f"{left}{body}{right}"


class TermsCheck(RuleSetCheck):
    """Case-insensitive, word-boundary-aware keyword/phrase matching; rule ids ``term:<i>``.

    Inner whitespace in a phrase matches any run of whitespace (``new york`` matches
    ``New\\n  York``). Boundaries: an ASCII word character at either end of a term must not
    touch another word character; non-ASCII letters get the same check in Python; caseless
    scripts (CJK, Thai) match inside running text. One RE2 alternation (leftmost-longest),
    scanned by the same linear scan as every rule set.
    """

    __slots__ = ("_edge_terms", "_ids")

    def __init__(self, terms: Sequence[str]):
        terms = _as_list(terms, "deny_terms")
        if not terms:
            raise GuardrailConfigError("deny_terms is empty", hint="list at least one term")
        ids: dict[str, int] = {}
        alternatives: list[str] = []
        edge_terms: set[int] = set()
        longest = 0
        for i, term in enumerate(terms):
            if not isinstance(term, str) or not term.strip():
                raise GuardrailConfigError(
                    f"deny_terms[{i}] is empty or not a string",
                    index=i,
                    hint="remove it, or quote the term in YAML",
                )
            term = term.strip()
            key = _normalize(term)
            if key in ids:
                continue
            ids[key] = i
            alternatives.append(_term_regex(term))
            longest = max(longest, len(term.encode("utf-8", "surrogatepass")))
            if _needs_edge_check(term[0]) or _needs_edge_check(term[-1]):
                edge_terms.add(i)
        # leftmost-longest: "new york" wins over "new" at the same place
        regex = compile_pattern(
            "(?i)(?:" + "|".join(alternatives) + ")", what="deny_terms", index=None, longest=True
        )
        self._ids = ids
        self._edge_terms = frozenset(edge_terms)
        window = max(POLICY_WINDOW, 4 * longest)
        super().__init__(
            [
                Rule(
                    "term",
                    "TERM",
                    None,
                    regex,
                    self._edges,
                    window=window,
                    name_of=self._name_of,
                )
            ]
        )

    def _index(self, data: bytes, start: int, end: int) -> int:
        return self._ids.get(_normalize(data[start:end].decode("utf-8", "surrogatepass")), -1)

    def _name_of(self, data: bytes, start: int, end: int) -> str | None:
        index = self._index(data, start, end)
        return f"term:{index}" if index >= 0 else None

    def _edges(self, data: bytes, start: int, end: int) -> list[tuple[int, int]]:
        if self._index(data, start, end) in self._edge_terms and not _edges_ok(data, start, end):
            return []
        return [(start, end)]


def _char_before(data: bytes, at: int) -> str:
    begin = at - 1
    while begin > 0 and 0x80 <= data[begin] < 0xC0 and at - begin < 4:
        begin -= 1
    return data[max(begin, 0) : at].decode("utf-8", "replace")[-1:] if at > 0 else ""


def _char_after(data: bytes, at: int) -> str:
    end = at + 1
    while end < len(data) and 0x80 <= data[end] < 0xC0 and end - at < 4:
        end += 1
    return data[at:end].decode("utf-8", "replace")[:1] if at < len(data) else ""


def _edges_ok(data: bytes, start: int, end: int) -> bool:
    first, before = _char_after(data, start), _char_before(data, start)
    if first and _needs_edge_check(first) and before and _is_word(before):
        return False
    last, after = _char_before(data, end), _char_after(data, end)
    return not (last and _needs_edge_check(last) and after and _is_word(after))


def terms_check(terms: Sequence[str]) -> TermsCheck:
    """A check for ``deny_terms``: keywords/phrases, case-insensitive, whole words only."""
    return TermsCheck(terms)
