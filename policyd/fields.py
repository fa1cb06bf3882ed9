"""Field types of policy documents: names, durations, timestamps, CEL expressions.

The scalar vocabulary every document part is built from, with the parsing helpers
the compiler uses (``parse_duration``, ``parse_timestamp``) and the strict base
model. :mod:`policyd.document` builds the document classes from these.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

_DURATION_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")  # ASCII digits, as in JSON Schema
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = _DURATION_RE.pattern
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

# Upper bounds of numbers in policies: the engine must be able to use every value
# ``check`` accepts (#11). Money is integer micro-dollars up to 2**53 in every store
# (policyd.money.MAX_MICROS), so a limit stays below nine billion dollars, and the
# worst reservation (2 x MAX_TOKENS at MAX_PRICE_PER_MTOK) stays far below that.
MAX_USD = 9_000_000_000
MAX_PRICE_PER_MTOK = 1_000_000
MAX_TOKENS = 1_000_000_000  # context windows, output limits, a request's token counts
MAX_COUNT = 2**53 - 1  # token and request limits of a budget (exact in every store)
MAX_DURATION_S = 36600 * 86400.0  # 36600d, about a hundred years


def parse_duration(text: str) -> float:
    """``"250ms"`` -> 0.25 seconds. Raises ValueError with a fix hint."""
    match = _DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: write a number followed by a unit, "
            "one of ms, s, m, h, d (for example 250ms, 30s, 5m, 1h, 7d)"
        )
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _as_text(value: Any) -> Any:
    """YAML numbers written where text is expected keep their exact spelling (``1.10``)."""
    raw = getattr(value, "raw", None)
    if isinstance(raw, str) and isinstance(value, int | float) and not isinstance(value, bool):
        return raw
    return value


def problem(kind: str, message: str, hint: str | None = None) -> PydanticCustomError:
    """A validation error whose fix travels separately (``ctx["hint"]``) to the diagnostic.

    pydantic fills ``{name}`` placeholders in ``message`` from the context, so a message
    must not contain the text ``{hint}``; other braces are kept as written.
    """
    return PydanticCustomError(kind, message, {"hint": hint})


_DURATION_HINT = "write a number and a unit: ms, s, m, h or d (for example 250ms, 30s, 5m, 1h, 7d)"


def _duration_number(value: Any) -> Any:
    """A bare number is not a duration: seconds or milliseconds would be a guess."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raw = getattr(value, "raw", None) or f"{value:g}"
        raise problem(
            "duration_unit",
            f"duration {raw} has no unit",
            f"write {raw}s for seconds, or use ms, m, h or d",
        )
    return value


def _check_duration(value: str) -> str:
    if not _DURATION_RE.match(value):  # exactly what the JSON Schema pattern accepts
        raise problem("duration", f"invalid duration {value!r}", _DURATION_HINT)
    if len(value) > 24 or parse_duration(value) > MAX_DURATION_S:
        raise problem(
            "duration",
            f"duration {value[:24]!r} is longer than 36600d",
            "durations are at most 36600d (about a hundred years)",
        )
    return value


def _check_timestamp(value: str) -> str:
    try:
        parse_timestamp(value)
    except ValueError as exc:
        message, _, hint = str(exc).partition(": ")
        raise problem("timestamp", message, hint) from None
    return value


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp with a zone (``2026-12-01T00:00:00Z``) -> aware datetime."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError):
        raise ValueError(
            f"invalid timestamp {text!r}: use RFC 3339, for example 2026-12-01T00:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone: add Z or an offset such as +01:00")
    return parsed.astimezone(UTC)


class CelMarker:
    """Annotated metadata marking a field whose string is a CEL expression."""

    def __init__(self, kind: Literal["condition", "key"]):
        self.kind = kind

    def __repr__(self) -> str:
        return f"CelMarker({self.kind!r})"


Text = Annotated[str, BeforeValidator(_as_text)]
# Field before BeforeValidator: the other way round, pydantic leaves the pattern out of
# the JSON Schema (validation is the same either way).
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128), BeforeValidator(_as_text)]
Duration = Annotated[
    str,
    BeforeValidator(_duration_number),
    AfterValidator(_check_duration),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: number and unit ms|s|m|h|d, e.g. 250ms, 30s, 5m, 1h, 7d",
        }
    ),
]
Timestamp = Annotated[
    str,
    AfterValidator(_check_timestamp),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 timestamp with zone, e.g. 2026-12-01T00:00:00Z",
        }
    ),
]
Condition = Annotated[
    str,
    CelMarker("condition"),
    Field(min_length=1, description="CEL expression that must evaluate to bool"),
]
CelKey = Annotated[
    str,
    CelMarker("key"),
    Field(min_length=1, description="CEL expression whose value identifies a counter or bucket"),
]


def at_most(limit: float, what: str) -> BeforeValidator:
    """Refuse NaN, infinities and numbers above ``limit`` (before the type check, so
    that the message says why and how to fix it); the JSON Schema gets ``maximum``."""

    def check(value: Any) -> Any:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and not value <= limit:  # also NaN
            raw = getattr(value, "raw", None) or f"{value:g}"
            raise problem(
                "number_bound",
                f"{raw} is not a number policyd can use here",
                f"{what} is a finite number of at most {limit:,}",
            )
        return value

    return BeforeValidator(check)


Usd = Annotated[
    float,
    Field(ge=0, description="US dollars", json_schema_extra={"maximum": MAX_USD}),
    at_most(MAX_USD, "a USD amount"),
]
PricePerMtok = Annotated[
    float,
    Field(
        ge=0,
        description="USD per million tokens",
        json_schema_extra={"maximum": MAX_PRICE_PER_MTOK},
    ),
    at_most(MAX_PRICE_PER_MTOK, "a price in USD per million tokens"),
]
Percent = Annotated[float, Field(ge=0, le=100), at_most(100, "a percentage")]
TokenCount = Annotated[
    int,
    Field(gt=0, json_schema_extra={"maximum": MAX_TOKENS}),
    at_most(MAX_TOKENS, "a token count"),
]
LimitCount = Annotated[
    int,
    Field(ge=0, json_schema_extra={"maximum": MAX_COUNT}),
    at_most(MAX_COUNT, "a token or request limit"),
]

# mypy cannot follow this recursive alias (pydantic can)
TypeDecl = TypeAliasType("TypeDecl", str | dict[str, "TypeDecl"])  # type: ignore[misc]


def new_list() -> list[Any]:
    """``default_factory`` for an empty list. pydantic inspects the signature of a default
    factory, and inspecting a builtin such as ``list`` compiles the tokenize module's
    regular expressions (a noticeable part of ``policyd check``'s start-up)."""
    return []


def new_dict() -> dict[Any, Any]:
    """``default_factory`` for an empty dict (see :func:`new_list`)."""
    return {}


class Strict(BaseModel):
    """Base of every document part: strict types, unknown keys rejected, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)
