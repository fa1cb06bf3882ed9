"""How messages talk about values and names: value kinds and "did you mean" hints.

Shared by the checks (file diagnostics) and the engine (request errors), so a user
reads the same words for the same mistake everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from difflib import SequenceMatcher
from typing import Any

#: candidates compared for hints in one :func:`hint_budget` (a check run): an unknown name
#: is compared with every known one, so a bundle of thousands of each would spend minutes
#: on hints; past this many comparisons hints are left out (typical bundles compare a few
#: hundred)
HINT_COMPARISONS = 200_000
_CUTOFF = 0.6

_left: ContextVar[list[int] | None] = ContextVar("policyd_hint_budget", default=None)


@contextmanager
def hint_budget(comparisons: int | None = None) -> Iterator[None]:
    """Bound the comparisons :func:`suggest` makes inside this block (per thread/task;
    default :data:`HINT_COMPARISONS`)."""
    token = _left.set([HINT_COMPARISONS if comparisons is None else comparisons])
    try:
        yield
    finally:
        _left.reset(token)


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint, or None when nothing is close (or the hint budget is spent)."""
    match = close_match(word, candidates)
    return f"did you mean {match!r}?" if match is not None else None


def close_match(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate (:func:`closest`), within the current :func:`hint_budget`."""
    left = _left.get()
    if left is not None and left[0] <= 0:
        return None  # spent: not even the candidates are looked at
    pool = sorted(set(candidates))
    if left is not None:
        if left[0] < len(pool):
            left[0] = 0
            return None
        left[0] -= len(pool)
    return closest(str(word), pool)


def closest(word: str, pool: Iterable[str]) -> str | None:
    """``difflib.get_close_matches(word, pool, n=1, cutoff=0.6)``'s answer, found faster:
    a candidate's full ``ratio`` (the costly part) is computed only while its upper bound
    (``quick_ratio``) can still beat or tie the best ratio found, best bounds first."""
    matcher = SequenceMatcher()
    matcher.set_seq2(word)  # the side difflib caches, as get_close_matches does
    bounded: list[tuple[float, str]] = []
    for x in pool:
        matcher.set_seq1(x)
        if matcher.real_quick_ratio() >= _CUTOFF:
            bound = matcher.quick_ratio()
            if bound >= _CUTOFF:
                bounded.append((bound, x))
    bounded.sort(reverse=True)
    best: tuple[float, str] | None = None
    for bound, x in bounded:
        if best is not None and bound < best[0]:
            break  # no later candidate can reach the best ratio (a tie needs bound == it)
        matcher.set_seq1(x)
        score = matcher.ratio()
        if score >= _CUTOFF and (best is None or (score, x) > best):
            best = (score, x)  # ties go to the larger string, as in get_close_matches
    return best[1] if best is not None else None


#: names a hint lists before "... and N more": a bundle's own names (tiers, prompts,
#: fields) can run to thousands, and each diagnostic listing them all makes the output
#: grow with the square of the bundle
LISTED = 20


def listing(names: Iterable[str], empty: str = "") -> str:
    """``a, b, c``: at most :data:`LISTED` names, then how many more; ``empty`` if none."""
    if isinstance(names, Sequence):  # a list or tuple: no need to walk past the shown
        shown, more = list(names[:LISTED]), max(0, len(names) - LISTED)
    else:
        shown, more = [], 0
        for name in names:
            if len(shown) < LISTED:
                shown.append(name)
            else:
                more += 1
    text = ", ".join(shown) or empty
    return f"{text} and {more:,} more" if more else text


def describe(value: Any) -> str:
    """The kind of a value as a user would say it: "a string", "a list", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
