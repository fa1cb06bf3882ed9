"""Budget windows: which accounting period an instant falls into, and when it resets.

Calendar windows (day, ISO week starting Monday, month) follow the wall clock of
an IANA timezone, so they reset at local midnight even across DST changes.
Rolling windows slide: they are cut into at most 60 equal buckets and spend
counts from the moment it is reserved for at least the window's length and at
most one bucket longer (conservative: a limit is never exceeded by early
forgetting). Everything here is pure and takes the clock as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policyd.errors import ConfigError

WindowKind = Literal["calendar_day", "calendar_week", "calendar_month", "rolling", "in_flight"]
WINDOW_KINDS: tuple[str, ...] = (
    "calendar_day",
    "calendar_week",
    "calendar_month",
    "rolling",
    "in_flight",
)
#: The window of a concurrency limit: one period that never ends. Its counter holds
#: only live reservations (a settle releases instead of recording spend), so its
#: reserved requests are the calls in flight.
IN_FLIGHT_ID = "f"
ROLLING_BUCKETS = 60
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(now: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime, exactly (no float)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError(f"the clock must give timezone-aware datetimes, got naive {now!r}")
    return (now - EPOCH) // _MS


@dataclass(frozen=True)
class Window:
    """How a budget's spend is grouped in time."""

    kind: WindowKind
    timezone: str = "UTC"
    rolling_s: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in WINDOW_KINDS:
            raise ConfigError(
                f"unknown budget window {self.kind!r}; use one of "
                "calendar_day, calendar_week, calendar_month or {rolling: <duration>}"
            )
        if self.kind == "rolling":
            if not isinstance(self.rolling_s, int) or isinstance(self.rolling_s, bool):
                raise ConfigError("a rolling window needs a whole number of seconds (e.g. 60)")
            if self.rolling_s < 1:
                raise ConfigError(f"a rolling window must last at least 1s, got {self.rolling_s}s")
        elif self.rolling_s is not None:
            raise ConfigError(f"rolling_s only applies to rolling windows, not {self.kind}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"unknown timezone {self.timezone!r}; use an IANA name such as "
                "'UTC', 'Europe/Berlin' or 'America/New_York'"
            ) from None

    @property
    def is_rolling(self) -> bool:
        return self.kind == "rolling"

    @property
    def is_in_flight(self) -> bool:
        return self.kind == "in_flight"

    @cached_property
    def bucket_ms(self) -> int:
        """Width of one rolling bucket in ms (a calendar window is one bucket: 0)."""
        if self.rolling_s is None:
            return 0
        return -(-self.rolling_s * 1000 // ROLLING_BUCKETS)

    @cached_property
    def n_buckets(self) -> int:
        """How many whole buckets cover the rolling length (calendar: 0)."""
        if self.rolling_s is None:
            return 0
        return -(-self.rolling_s * 1000 // self.bucket_ms)

    @cached_property
    def counter_name(self) -> str:
        """Part of a counter's name that tells windows of one budget apart."""
        return f"r{self.rolling_s}s" if self.rolling_s is not None else self.kind[9]


@dataclass(frozen=True)
class WindowSlot:
    """The period of a window that contains a given instant.

    ``id`` is stable text: ``d20261124`` (day), ``w20261123`` (the Monday of the
    ISO week), ``m202611`` (month), ``r<bucket>`` (rolling: the current bucket).
    ``reset_at`` is ``None`` for rolling windows, whose reset depends on usage.
    """

    id: str
    start: datetime
    reset_at: datetime | None
    bucket: int = 0
    reset_ms: int | None = None  # reset_at in epoch milliseconds

    def seconds_to_reset(self, now: datetime) -> float | None:
        if self.reset_at is None:
            return None
        return max(0.0, (self.reset_at - now).total_seconds())


def _day_starts(day: date, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants at which local time in ``tz`` enters ``day``, earliest first.

    Usually one: local midnight. Two when a DST change repeats midnight. When
    clocks jump over midnight, the day starts at the jump (found by bisection).
    """
    readings = {
        datetime(day.year, day.month, day.day, fold=fold, tzinfo=tz).astimezone(UTC)
        for fold in (0, 1)
    }
    wall = datetime(day.year, day.month, day.day)
    valid = sorted(t for t in readings if t.astimezone(tz).replace(tzinfo=None) == wall)
    if valid:
        return valid
    lo, hi = min(readings), max(readings)  # midnight falls in a gap between these
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).date() >= day:
            hi = mid
        else:
            lo = mid
    return [hi.replace(microsecond=0)]


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


_cache: dict[Window, WindowSlot] = {}


def current_window(window: Window, now: datetime) -> WindowSlot:
    """The slot of ``window`` that contains ``now`` (an aware datetime)."""
    if window.rolling_s is not None:
        bucket = epoch_ms(now) // window.bucket_ms
        start = now - timedelta(seconds=window.rolling_s)
        return WindowSlot(id=f"r{bucket}", start=start, reset_at=None, bucket=bucket)
    if window.kind == "in_flight":
        return WindowSlot(id=IN_FLIGHT_ID, start=EPOCH, reset_at=None)
    if now.tzinfo is None:
        raise ConfigError(f"the clock must give timezone-aware datetimes, got naive {now!r}")
    cached = _cache.get(window)
    if cached is not None and cached.reset_at is not None and cached.start <= now < cached.reset_at:
        return cached
    tz = ZoneInfo(window.timezone)
    today = now.astimezone(tz).date()
    if window.kind == "calendar_day":
        first, after = today, today + timedelta(days=1)
        slot_id = f"d{first:%Y%m%d}"
    elif window.kind == "calendar_week":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
        slot_id = f"w{first:%Y%m%d}"
    else:
        first, after = today.replace(day=1), _next_month(today)
        slot_id = f"m{first:%Y%m}"
    start = _day_starts(first, tz)[0]
    reset_at = next((t for t in _day_starts(after, tz) if t > now), now + timedelta(seconds=1))
    slot = WindowSlot(id=slot_id, start=start, reset_at=reset_at, reset_ms=epoch_ms(reset_at))
    _cache[window] = slot
    return slot
