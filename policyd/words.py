"""How messages talk about values and names: value kinds and "did you mean" hints.

Shared by the checks (file diagnostics) and the engine (request errors), so a user
reads the same words for the same mistake everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint, or None when nothing is close."""
    matches = difflib.get_close_matches(str(word), sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else None


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
