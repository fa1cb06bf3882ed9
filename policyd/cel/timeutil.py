"""CEL timestamps and durations over Python's aware ``datetime`` and ``timedelta``.

Timestamps are RFC 3339 instants between years 1 and 9999 (Python's own range);
durations are Go-style strings (``1h30m``, ``-1.5s``, ``250ms``) whose value fits
in 64-bit nanoseconds, as in cel-go. Python stores microseconds: digits below a
microsecond are truncated (the one documented precision difference from CEL).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from policyd.cel.errors import EvaluationError

UTC = UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_EPOCH_SECONDS = -62135596800  # 0001-01-01T00:00:00Z
MAX_EPOCH_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
_MAX_DURATION_NS = 2**63 - 1
MAX_DURATION = timedelta(microseconds=_MAX_DURATION_NS // 1000)

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_DURATION = re.compile(r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+|0)")
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def parse_timestamp(text: str) -> datetime:
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise EvaluationError("invalid timestamp string: use RFC 3339, like 2024-01-31T12:00:00Z")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or "").ljust(6, "0")[:6])
    if m.group(8):
        tz = UTC
    else:
        sign = -1 if m.group(9) == "-" else 1
        tz = timezone(sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11))))
    if year == 0:
        raise EvaluationError("timestamp out of range")
    try:
        value = datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
        return value.astimezone(UTC)
    except OverflowError:
        raise EvaluationError("timestamp out of range") from None
    except ValueError:  # its text quotes the value
        raise EvaluationError("invalid timestamp string: a date or time field is invalid") from None


def timestamp_from_seconds(seconds: int) -> datetime:
    if not MIN_EPOCH_SECONDS <= seconds <= MAX_EPOCH_SECONDS:
        raise EvaluationError("timestamp out of range")
    return EPOCH + timedelta(seconds=seconds)


def epoch_seconds(value: datetime) -> int:
    return (value - EPOCH) // timedelta(seconds=1)


def format_timestamp(value: datetime) -> str:
    utc = value.astimezone(UTC) if value.tzinfo is not None else value
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def check_duration(value: timedelta) -> timedelta:
    if -MAX_DURATION <= value <= MAX_DURATION:
        return value
    raise EvaluationError("duration out of range")


def parse_duration(text: str) -> timedelta:
    m = _DURATION.fullmatch(text)
    if m is None:
        raise EvaluationError("invalid duration string: use forms like 30s, 1h30m, 250ms")
    total = 0
    for whole, frac, unit in _DURATION_PART.findall(m.group(2)):
        scale = _UNIT_NS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
    if m.group(1) == "-":
        total = -total
    if abs(total) > _MAX_DURATION_NS:
        raise EvaluationError("duration out of range")
    micros = abs(total) // 1000
    return timedelta(microseconds=-micros if total < 0 else micros)


def format_duration(value: timedelta) -> str:
    micros = value // timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, frac = divmod(abs(micros), 1_000_000)
    text = f"{sign}{seconds}"
    if frac:
        text += "." + f"{frac:06d}".rstrip("0")
    return text + "s"


def add_timestamp(ts: datetime, delta: timedelta) -> datetime:
    try:
        result = ts + delta
    except OverflowError:
        raise EvaluationError("timestamp out of range") from None
    return result


def sub_timestamps(a: datetime, b: datetime) -> timedelta:
    return check_duration(a - b)
