"""RE2 plumbing shared by every text check: compiling with clear errors, pattern sets, offsets.

All matching runs on the UTF-8 bytes of the text (encoded once per scan), so RE2 reports
byte offsets; :class:`ScanText` turns them back into ``str`` offsets in one linear pass.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any

import re2

from policyd.guardrails._core import GuardrailConfigError

# RE2's per-regex memory budget. The default (8 MiB) is too small for sets of many patterns
# or thousands of terms; memory is only used as the DFA cache fills, so a high cap is cheap.
_MAX_MEM = 256 << 20
_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))

RE2_SYNTAX_URL = "https://github.com/google/re2/wiki/Syntax"


def options(*, longest_match: bool = False) -> Any:
    """RE2 options for policyd: UTF-8, Perl syntax, quiet (errors become exceptions)."""
    opts = re2.Options()
    opts.max_mem = _MAX_MEM
    opts.log_errors = False
    opts.longest_match = longest_match
    return opts


_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\(\?<?[=!]"),
        "lookahead/lookbehind ((?=, (?!, (?<=, (?<!) is not supported by RE2, which "
        "guarantees linear-time matching; match the surrounding text instead, or use two "
        "patterns",
    ),
    (
        re.compile(r"\\[1-9]|\(\?P="),
        "backreferences (\\1, (?P=name)) are not supported by RE2, which guarantees "
        "linear-time matching; spell out the repeated text or list the variants",
    ),
    (
        re.compile(r"\(\?>|[*+?}][+]"),
        "atomic groups and possessive quantifiers are not needed (and not supported) in "
        "RE2: it never backtracks; drop the '>' or the extra '+'",
    ),
    (re.compile(r"\\Z"), "RE2 spells end-of-text \\z, not \\Z"),
)


def _hint_for(pattern: str) -> str:
    for detector, hint in _HINTS:
        if detector.search(pattern):
            return hint
    return f"write the pattern in RE2 syntax ({RE2_SYNTAX_URL})"


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str, longest: bool) -> tuple[Any, str | None, bool]:
    """(compiled, None, matches empty) or (None, RE2's reason, False). Cached: compiled RE2
    objects are immutable and safe to share between threads, and a reload compiles the
    same built-in detectors again for every revision (most of what a reload cost)."""
    try:
        compiled = re2.compile(pattern, options(longest_match=longest))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        return None, str(reason), False
    return compiled, None, _matches_empty(compiled)


def compile_pattern(pattern: str, *, what: str, index: int | None, longest: bool = False) -> Any:
    """Compile one RE2 pattern; a bad one raises :class:`GuardrailConfigError` saying why."""
    where = what if index is None else f"{what}[{index}]"
    if not isinstance(pattern, str):
        raise GuardrailConfigError(
            f"{where} must be a string, got {type(pattern).__name__}",
            index=index,
            hint="quote the pattern in YAML: '...'",
        )
    compiled, reason, matches_empty = _compile(pattern, longest)
    if reason is not None:
        raise GuardrailConfigError(
            f"{where} is not a valid RE2 pattern: {reason}",
            index=index,
            hint=_hint_for(pattern),
        )
    if matches_empty:
        raise GuardrailConfigError(
            f"{where} can match the empty string, so it would flag every text",
            index=index,
            hint="make at least one part of the pattern required (e.g. '+' instead of '*')",
        )
    return compiled


_EMPTY_PROBES = (b"", b"a", b" ", b"0", b"a b", b"\n", b"_-")


def _matches_empty(compiled: Any) -> bool:
    """A cheap probe: does the pattern produce a zero-length match on simple texts?"""
    for probe in _EMPTY_PROBES:
        for m in compiled.finditer(probe):
            if m.start() == m.end():
                return True
    return False


@functools.lru_cache(maxsize=64)
def _compile_set(patterns: tuple[str, ...]) -> Any:
    """A compiled RE2 ``Set`` of ``patterns`` (None when too large); cached like
    :func:`_compile` (matching a compiled set does not change it)."""
    rset = re2.Set.SearchSet(options())
    for pattern in patterns:
        rset.Add(pattern)
    try:
        rset.Compile()
    except re2.error:
        return None
    return rset


class PatternSet:
    """Many RE2 patterns scanned together: one RE2 ``Set`` pass says which ones hit.

    Only the patterns that hit are then run again (``finditer``) to find their spans, so a
    clean text costs one linear pass however many patterns there are.
    """

    __slots__ = ("_match", "_set", "regexes")

    def __init__(self, regexes: Sequence[Any]):
        self.regexes = tuple(regexes)
        self._set: Any = None
        self._match: Any = None
        if len(self.regexes) > 1:
            self._set = _compile_set(tuple(regex.pattern for regex in self.regexes))
            if self._set is None:
                raise GuardrailConfigError(
                    f"the {len(self.regexes)} patterns are too large to compile together",
                    hint="split them across several guardrails",
                )
            # RE2::Set::Match itself: the wrapper's Match only adds a call and a str check
            self._match = self._set._set.Match

    def hits(self, data: bytes) -> Sequence[int]:
        """Indices of the patterns that match somewhere in ``data`` (ascending)."""
        if self._match is not None:
            found = self._match(data)
            return sorted(found) if found else ()
        if self.regexes and self.regexes[0].search(data) is not None:
            return (0,)
        return ()

    def spans(self, index: int, data: bytes) -> Iterator[Any]:
        """Every non-overlapping match of pattern ``index`` in ``data`` (byte offsets)."""
        return self.regexes[index].finditer(data)


class ScanText:
    """A text with its UTF-8 bytes, converting RE2 byte offsets back to ``str`` offsets."""

    __slots__ = ("ascii", "data", "text")

    def __init__(self, text: str):
        self.text = text
        # surrogatepass: a lone surrogate (possible in JSON-decoded input) must not crash a
        # scan; RE2 treats its bytes as invalid UTF-8 and matches around them.
        self.data = text.encode("utf-8", "surrogatepass")
        self.ascii = len(self.data) == len(text)

    def byte_offset(self, char_offset: int) -> int:
        """The UTF-8 byte offset of a character offset (``-1`` stays ``-1``)."""
        if self.ascii or char_offset < 0:
            return char_offset
        return len(self.text[:char_offset].encode("utf-8", "surrogatepass"))

    def char_spans(self, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """Byte spans -> character spans, in the order given; linear in the text."""
        if self.ascii or not spans:
            return list(spans)
        offsets = sorted({o for span in spans for o in span})
        table: dict[int, int] = {}
        prev_byte = prev_char = 0
        data = self.data
        for off in offsets:
            segment = data[prev_byte:off]
            # characters = bytes that are not UTF-8 continuation bytes (0x80-0xBF)
            prev_char += len(segment.translate(None, _CONTINUATION_BYTES))
            prev_byte = off
            table[off] = prev_char
        return [(table[s], table[e]) for s, e in spans]
