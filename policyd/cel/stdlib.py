"""Standard CEL functions over plain Python values: strings, RE2 matching, conversions.

``matches`` uses google-re2 (linear-time, RE2 syntax); patterns are compiled once
and cached, and constant patterns are compiled when the expression is compiled.
Conversions follow cel-go: ``int()`` truncates and range-checks, ``string()`` of a
double prints like Go's ``%g``, ``bool()`` accepts the strings Go's ParseBool does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from policyd.cel import timeutil
from policyd.cel.errors import EvaluationError
from policyd.cel.runtime import INT64_MAX, INT64_MIN, kind_of, no_overload
from policyd.cel.types import TYPE_VALUES, TypeValue

# --------------------------------------------------------------------------- strings


class RegexError(Exception):
    """An invalid RE2 pattern."""


def _re2_compiler() -> Callable[[str], Callable[[str], bool]]:
    import re2

    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    # google-re2's module-level wrapper costs ~3 us a search; its extension type ~0.6 us.
    low: Any = getattr(re2, "_re2", None)
    anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)

    def compile_fast(pattern: str) -> Callable[[str], bool]:
        regexp = low.RE2(pattern.encode("utf-8"), options)
        if not regexp.ok():
            raise RegexError(regexp.error().decode("utf-8", "replace"))
        match = regexp.Match

        def search(text: str) -> bool:
            data = text.encode("utf-8")
            return bool(match(anchor, data, 0, len(data))[0][0] >= 0)

        return search

    def compile_public(pattern: str) -> Callable[[str], bool]:  # pragma: no cover
        try:
            regexp = re2.compile(pattern, options)
        except re2.error as exc:
            raise RegexError(str(exc)) from None
        return lambda text: regexp.search(text) is not None

    return compile_fast if low is not None and anchor is not None else compile_public


_compile_re2: Callable[[str], Callable[[str], bool]] | None = None
_PATTERNS: dict[str, Callable[[str], bool]] = {}


def compile_regex(pattern: str) -> Callable[[str], bool]:
    """A search function for an RE2 pattern (cached); raises :class:`RegexError`."""
    global _compile_re2
    found = _PATTERNS.get(pattern)
    if found is not None:
        return found
    if _compile_re2 is None:
        _compile_re2 = _re2_compiler()
    search = _compile_re2(pattern)
    if len(_PATTERNS) >= 512:
        _PATTERNS.clear()
    _PATTERNS[pattern] = search
    return search


def _strings(op: str, a: Any, b: Any) -> None:
    if kind_of(a) != "string" or kind_of(b) != "string":
        raise no_overload(op, a, b)


def contains(text: Any, part: Any) -> bool:
    _strings("contains", text, part)
    return part in text


def starts_with(text: Any, prefix: Any) -> bool:
    _strings("startsWith", text, prefix)
    return bool(text.startswith(prefix))


def ends_with(text: Any, suffix: Any) -> bool:
    _strings("endsWith", text, suffix)
    return bool(text.endswith(suffix))


def matches(text: Any, pattern: Any) -> bool:
    _strings("matches", text, pattern)
    try:
        return compile_regex(pattern)(text)
    except RegexError:  # RE2's text quotes the pattern, which may come from the request
        raise EvaluationError("invalid regular expression (RE2 cannot compile it)") from None


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def lower_ascii(text: Any) -> str:
    if kind_of(text) != "string":
        raise no_overload("lowerAscii", text)
    return str(text.translate(_LOWER))


def upper_ascii(text: Any) -> str:
    if kind_of(text) != "string":
        raise no_overload("upperAscii", text)
    return str(text.translate(_UPPER))


# --------------------------------------------------------------------------- conversions

_INT_TEXT = re.compile(r"[-+]?\d+")
_DOUBLE_TEXT = re.compile(
    r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)
_TRUE = frozenset(["1", "t", "T", "TRUE", "true", "True"])
_FALSE = frozenset(["0", "f", "F", "FALSE", "false", "False"])


def to_int(value: Any) -> int:
    kind = kind_of(value)
    if kind == "int":
        return int(value)
    if kind == "double":
        if not -9.223372036854775808e18 < value < 9.223372036854775808e18:
            raise EvaluationError("int(double): value out of the int range")
        return int(value)
    if kind == "string":
        if len(value) > 40 or not _INT_TEXT.fullmatch(value):
            raise EvaluationError("cannot convert string to int: not a 64-bit decimal integer")
        number = int(value)
        if not INT64_MIN <= number <= INT64_MAX:
            raise EvaluationError("int(string): value out of the int range")
        return number
    if kind == "timestamp":
        return timeutil.epoch_seconds(value)
    raise no_overload("int", value)


def to_double(value: Any) -> float:
    kind = kind_of(value)
    if kind == "double":
        return float(value)
    if kind == "int":
        return float(value)
    if kind == "string":
        if not _DOUBLE_TEXT.fullmatch(value):
            raise EvaluationError("cannot convert string to double: not a decimal number")
        return float(value)
    raise no_overload("double", value)


def format_double(value: float) -> str:
    """Format like Go's ``%g`` (cel-go's string(double)): the shortest digits that round-trip,
    in e-notation when the decimal exponent is below -4 or at least 6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(text) + int(exponent) - 1  # decimal exponent of the first digit
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp >= len(text) - 1:
        return prefix + text + "0" * (exp - len(text) + 1)
    if exp >= 0:
        return f"{prefix}{text[: exp + 1]}.{text[exp + 1 :]}"
    return f"{prefix}0.{'0' * (-exp - 1)}{text}"


def to_string(value: Any) -> str:
    kind = kind_of(value)
    if kind == "string":
        return str(value)
    if kind == "int":
        return str(int(value))
    if kind == "double":
        return format_double(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "bytes":
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise EvaluationError("invalid UTF-8 in bytes converted to string") from None
    if kind == "timestamp":
        return timeutil.format_timestamp(value)
    if kind == "duration":
        return timeutil.format_duration(value)
    raise no_overload("string", value)


def to_bool(value: Any) -> bool:
    kind = kind_of(value)
    if kind == "bool":
        return bool(value)
    if kind == "string":
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise EvaluationError("Type conversion error: cannot convert string to bool")
    raise no_overload("bool", value)


def to_bytes(value: Any) -> bytes:
    kind = kind_of(value)
    if kind == "bytes":
        return bytes(value)
    if kind == "string":
        return str(value).encode("utf-8")
    raise no_overload("bytes", value)


def to_timestamp(value: Any) -> datetime:
    kind = kind_of(value)
    if kind == "timestamp":
        return value
    if kind == "string":
        return timeutil.parse_timestamp(value)
    if kind == "int":
        return timeutil.timestamp_from_seconds(value)
    raise no_overload("timestamp", value)


def to_duration(value: Any) -> timedelta:
    kind = kind_of(value)
    if kind == "duration":
        return value
    if kind == "string":
        return timeutil.parse_duration(value)
    raise no_overload("duration", value)


_TYPE_OF_KIND = {
    "timestamp": "google.protobuf.Timestamp",
    "duration": "google.protobuf.Duration",
}


def type_of(value: Any) -> TypeValue:
    kind = kind_of(value)
    name = _TYPE_OF_KIND.get(kind, kind)
    found = TYPE_VALUES.get(name)
    if found is None:
        raise EvaluationError(f"value of Python type {type(value).__name__} is not a CEL value")
    return found
