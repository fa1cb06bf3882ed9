"""YAML 1.2 core schema: resolving scalars to values, and the numbers that keep their text.

Owns :class:`YamlInt` / :class:`YamlFloat` and the resolution of plain and explicitly tagged
scalars (see :mod:`policyd.yaml12` for the rules); composing and diagnostics stay there.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "ALLOWED_TAGS",
    "BIG_INT",
    "MAX_INT_CHARS",
    "NO_VALUE",
    "SCALAR_TAGS",
    "STD",
    "YamlFloat",
    "YamlInt",
    "resolve_plain",
    "resolve_tagged",
    "short_tag",
]


class YamlInt(int):
    """An integer read from YAML; ``raw`` is the text as written (``0x1F``, ``007``)."""

    raw: str

    def __new__(cls, value: int, raw: str) -> YamlInt:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj

    def __reduce__(self) -> tuple[type[YamlInt], tuple[int, str]]:
        return (YamlInt, (int(self), self.raw))


class YamlFloat(float):
    """A float read from YAML; ``raw`` is the text as written (``1.10`` stays ``"1.10"``)."""

    raw: str

    def __new__(cls, value: float, raw: str) -> YamlFloat:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj

    def __reduce__(self) -> tuple[type[YamlFloat], tuple[float, str]]:
        return (YamlFloat, (float(self), self.raw))


# --- YAML 1.2 core schema ------------------------------------------------------------------

STD = "tag:yaml.org,2002:"
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
NO_VALUE = object()


MAX_INT_CHARS = 4000  # int("...") refuses more than 4,300 digits; check the length first
BIG_INT = object()  # an integer written with more than MAX_INT_CHARS characters


def _number(text: str) -> Any:
    if _INT.fullmatch(text):
        if len(text) > MAX_INT_CHARS:
            return BIG_INT
        if text.startswith(("0o", "0x")):
            return YamlInt(int(text[2:], 8 if text[1] == "o" else 16), text)
        return YamlInt(int(text, 10), text)
    if _FLOAT.fullmatch(text):
        return YamlFloat(float(text), text)
    if _INF.fullmatch(text):
        return YamlFloat(-math.inf if text.startswith("-") else math.inf, text)
    if _NAN.fullmatch(text):
        return YamlFloat(math.nan, text)
    return NO_VALUE


# First characters of every plain scalar that is not a string: null, booleans, numbers.
_NOT_STR_FIRST = frozenset("~nNtTfF0123456789+-.") | {""}


def resolve_plain(text: str) -> Any:
    if text[:1] not in _NOT_STR_FIRST:
        return text
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    number = _number(text)
    return text if number is NO_VALUE else number


def resolve_tagged(tag: str, text: str) -> Any:
    """Value of an explicitly tagged scalar, or NO_VALUE if the text does not fit the tag."""
    kind = tag.removeprefix(STD)
    if kind == "str":
        return text
    if kind == "null":
        return None if text in _NULLS else NO_VALUE
    if kind == "bool":
        return _BOOLS.get(text, NO_VALUE)
    number = _number(text)
    if kind == "float" and (number is BIG_INT or isinstance(number, YamlInt)):
        return YamlFloat(_int_float(text), text)
    if kind == "int" and number is BIG_INT:
        return BIG_INT
    if kind in ("int", "float") and isinstance(number, YamlInt if kind == "int" else YamlFloat):
        return number
    return NO_VALUE


def _int_float(text: str) -> float:
    """``!!float`` of an integer's text, beyond float range as ``inf`` (like ``1e999``)."""
    if not text.startswith(("0o", "0x")):
        return float(text) or 0.0  # any number of decimal digits; an integer has no -0.0
    try:
        return float(int(text[2:], 8 if text[1] == "o" else 16))  # no digit limit in base 2**k
    except OverflowError:
        return math.inf


ALLOWED_TAGS = "!!str, !!int, !!float, !!bool, !!null, !!map, !!seq"
SCALAR_TAGS = frozenset(STD + t for t in ("int", "float", "bool", "null"))


def short_tag(tag: str) -> str:
    return "!!" + tag[len(STD) :] if tag.startswith(STD) else tag
