"""What a rule's pattern can look like: the bytes a match may contain, its widest match, a
literal it must start with. The linear scanner uses this to know when a stream has shown
enough text to decide a match (and so how little it must hold back); it never changes
what is found, so an unknown shape (``None``) is always safe, only slower to release.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from typing import Any

_sre: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

ALL = frozenset(range(256))
_HIGH = frozenset(range(0x80, 0x100))
_DIGIT = frozenset(b"0123456789")
_WORD = _DIGIT | frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_SPACE = frozenset(b"\t\n\v\f\r ")
# RE2 syntax that Python's parser reads differently (or not at all): no shape, stay safe
_RE2_ONLY = re.compile(r"\[:\^?[a-z]+:\]|\\[pPCQz]|\(\?[a-zA-Z]*U|\\x\{")
_UNBOUNDED = 1 << 20


@dataclass(frozen=True, slots=True)
class Shape:
    """``cont``: every byte a match can contain (None: any); ``maxw``: the most bytes a
    match can span (None: unbounded); ``prefix``: literal text every match starts with."""

    cont: frozenset[int] | None = None
    maxw: int | None = None
    prefix: str | None = None
    icase: bool = False


def _cases(c: int, icase: bool) -> set[int]:
    out = {c}
    if icase and 0x41 <= c <= 0x5A:
        out.add(c + 32)
    elif icase and 0x61 <= c <= 0x7A:
        out.add(c - 32)
    return out


def _literal(c: int, icase: bool) -> set[int]:
    return _cases(c, icase) if c < 0x80 else set(_HIGH)


def _category(cat: Any) -> frozenset[int] | None:
    if cat is _c.CATEGORY_DIGIT:
        return _DIGIT
    if cat is _c.CATEGORY_WORD:
        return _WORD
    if cat is _c.CATEGORY_SPACE:
        return _SPACE
    return None  # a negated category: anything


def _in(items: Any, icase: bool) -> set[int] | None:
    out: set[int] = set()
    for op, av in items:
        if op is _c.NEGATE:
            return None
        if op is _c.LITERAL:
            out |= _literal(av, icase)
        elif op is _c.RANGE:
            lo, hi = av
            for c in range(lo, min(hi, 0x7F) + 1):
                out |= _cases(c, icase)
            if hi >= 0x80:
                out |= _HIGH
        elif op is _c.CATEGORY:
            cat = _category(av)
            if cat is None:
                return None
            out |= cat
        else:
            return None
    return out


def _bytes(tree: Any, icase: bool) -> set[int] | None:
    out: set[int] = set()
    for op, av in tree:
        if op is _c.LITERAL:
            out |= _literal(av, icase)
        elif op is _c.IN:
            got = _in(av, icase)
            if got is None:
                return None
            out |= got
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            sub = _bytes(av[2], icase)
            if sub is None:
                return None
            out |= sub
        elif op is _c.SUBPATTERN:
            sub = _bytes(av[3], icase)
            if sub is None:
                return None
            out |= sub
        elif op is _c.BRANCH:
            for branch in av[1]:
                sub = _bytes(branch, icase)
                if sub is None:
                    return None
                out |= sub
        elif op is _c.AT:
            continue
        else:  # ANY, NOT_LITERAL, anything unexpected: any byte
            return None
    return out


def _prefix(tree: Any) -> str:
    chars = []
    for op, av in tree:
        if op is _c.AT:
            continue
        if op is _c.LITERAL and av < 0x80:
            chars.append(chr(av))
            continue
        break
    return "".join(chars)


@functools.lru_cache(maxsize=4096)
def shape_of(pattern: str) -> Shape:
    """The shape of an RE2 pattern, or an empty (always safe) one when unsure.

    Cached: a reload rebuilds every guardrail, and parsing the built-in detectors' patterns
    again was most of what a reload cost; a shape depends on the pattern alone.
    """
    if _RE2_ONLY.search(pattern):
        return Shape()
    try:
        tree = _sre.parse(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return Shape()
    icase = bool(tree.state.flags & re.IGNORECASE) or "(?i" in pattern
    cont = _bytes(tree, icase)
    if cont is not None and icase:  # RE2 folds k and s to the Kelvin and long-s signs
        cont |= _HIGH
    try:
        hi = tree.getwidth()[1]
    except (OverflowError, RecursionError):
        hi = _UNBOUNDED
    if cont is None or _HIGH & cont:
        hi *= 4  # widths are in characters; bytes may be up to 4 per character
    prefix = _prefix(tree)
    return Shape(
        frozenset(cont) if cont is not None and len(cont) < 256 else None,
        hi if hi < _UNBOUNDED else None,
        prefix if len(prefix) >= 2 else None,
        icase,
    )
