"""Budget windows: calendar boundaries in UTC and DST zones, rolling buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policyd.budgets.windows import Window, current_window, epoch_ms


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("kind", "now", "slot_id", "start", "reset"),
    [
        (
            "calendar_day",
            "2026-11-24T12:00:00+00:00",
            "d20261124",
            "2026-11-24T00:00:00+00:00",
            "2026-11-25T00:00:00+00:00",
        ),
        (
            "calendar_day",
            "2026-11-24T23:59:59.999+00:00",
            "d20261124",
            "2026-11-24T00:00:00+00:00",
            "2026-11-25T00:00:00+00:00",
        ),
        (
            "calendar_day",
            "2026-11-25T00:00:00+00:00",
            "d20261125",
            "2026-11-25T00:00:00+00:00",
            "2026-11-26T00:00:00+00:00",
        ),
        (
            "calendar_week",
            "2026-11-24T12:00:00+00:00",
            "w20261123",
            "2026-11-23T00:00:00+00:00",
            "2026-11-30T00:00:00+00:00",
        ),
        (
            "calendar_week",
            "2026-11-29T23:59:59+00:00",
            "w20261123",
            "2026-11-23T00:00:00+00:00",
            "2026-11-30T00:00:00+00:00",
        ),
        (
            "calendar_month",
            "2026-12-31T23:00:00+00:00",
            "m202612",
            "2026-12-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
        ),
        (
            "calendar_month",
            "2028-02-29T10:00:00+00:00",
            "m202802",
            "2028-02-01T00:00:00+00:00",
            "2028-03-01T00:00:00+00:00",
        ),
        # a timestamp given in another offset is placed by its UTC instant
        (
            "calendar_day",
            "2026-11-24T20:00:00-05:00",
            "d20261125",
            "2026-11-25T00:00:00+00:00",
            "2026-11-26T00:00:00+00:00",
        ),
    ],
)
def test_calendar_windows_in_utc(kind: str, now: str, slot_id: str, start: str, reset: str) -> None:
    slot = current_window(Window(kind), at(now))  # type: ignore[arg-type]
    assert (slot.id, slot.start, slot.reset_at) == (slot_id, at(start), at(reset))
    assert slot.seconds_to_reset(at(now)) == (at(reset) - at(now)).total_seconds()


@pytest.mark.parametrize(
    ("zone", "now_utc", "slot_id", "local_start", "local_reset", "hours"),
    [
        # Berlin springs forward on 2026-03-29: that day has 23 hours
        (
            "Europe/Berlin",
            "2026-03-29T12:00:00+00:00",
            "d20260329",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
            23,
        ),
        # ... and falls back on 2026-10-25: 25 hours
        (
            "Europe/Berlin",
            "2026-10-25T12:00:00+00:00",
            "d20261025",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
            25,
        ),
        # 23:30 UTC on the 24th is already the 25th in Berlin
        (
            "Europe/Berlin",
            "2026-11-24T23:30:00+00:00",
            "d20261125",
            "2026-11-25T00:00:00+01:00",
            "2026-11-26T00:00:00+01:00",
            24,
        ),
        (
            "America/New_York",
            "2026-03-08T12:00:00+00:00",
            "d20260308",
            "2026-03-08T00:00:00-05:00",
            "2026-03-09T00:00:00-04:00",
            23,
        ),
        # Santiago skips midnight on 2026-09-06: the day starts at 01:00
        (
            "America/Santiago",
            "2026-09-06T12:00:00+00:00",
            "d20260906",
            "2026-09-06T01:00:00-03:00",
            "2026-09-07T00:00:00-03:00",
            23,
        ),
        # ... and repeats 23:00-24:00 of 2026-04-04: a 25-hour day
        (
            "America/Santiago",
            "2026-04-05T03:30:00+00:00",
            "d20260404",
            "2026-04-04T00:00:00-03:00",
            "2026-04-05T00:00:00-04:00",
            25,
        ),
    ],
)
def test_calendar_day_across_dst(
    zone: str, now_utc: str, slot_id: str, local_start: str, local_reset: str, hours: int
) -> None:
    slot = current_window(Window("calendar_day", zone), at(now_utc))
    assert slot.id == slot_id
    assert slot.start == at(local_start)
    assert slot.reset_at == at(local_reset)
    assert slot.reset_at - slot.start == timedelta(hours=hours)


def test_week_containing_dst_change_is_one_hour_short() -> None:
    slot = current_window(Window("calendar_week", "Europe/Berlin"), at("2026-03-27T10:00:00+00:00"))
    assert slot.id == "w20260323"
    assert slot.reset_at is not None
    assert slot.reset_at - slot.start == timedelta(days=7, hours=-1)


def test_month_in_a_zone() -> None:
    tokyo = Window("calendar_month", "Asia/Tokyo")
    assert current_window(tokyo, at("2026-11-30T14:59:59+00:00")).id == "m202611"
    assert current_window(tokyo, at("2026-11-30T15:00:00+00:00")).id == "m202612"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["calendar_day", "calendar_week", "calendar_month"]),
    st.sampled_from(
        [
            "UTC",
            "Europe/Berlin",
            "America/Santiago",
            "Australia/Lord_Howe",
            "America/St_Johns",
            "Asia/Kathmandu",
        ]
    ),
)
def test_slot_contains_now_and_is_contiguous(now: datetime, kind: str, zone: str) -> None:
    window = Window(kind, zone)  # type: ignore[arg-type]
    slot = current_window(window, now)
    assert slot.reset_at is not None
    assert slot.start <= now < slot.reset_at
    following = current_window(window, slot.reset_at)
    assert following.start == slot.reset_at and following.id > slot.id
    local = now.astimezone(ZoneInfo(zone)).date()
    assert slot.start.astimezone(ZoneInfo(zone)).date() <= local


def test_rolling_buckets() -> None:
    minute = Window("rolling", rolling_s=60)
    assert (minute.bucket_ms, minute.n_buckets) == (1000, 60)
    week = Window("rolling", rolling_s=7 * 86400)
    assert week.bucket_ms * week.n_buckets >= 7 * 86400 * 1000
    assert week.n_buckets <= 60
    odd = Window("rolling", rolling_s=7)
    assert odd.bucket_ms * odd.n_buckets >= 7000 > odd.bucket_ms * (odd.n_buckets - 1)
    now = at("2026-11-24T12:00:00.500+00:00")
    slot = current_window(minute, now)
    assert slot.id == f"r{epoch_ms(now) // 1000}"
    assert slot.reset_at is None and slot.seconds_to_reset(now) is None
    assert slot.start == now - timedelta(minutes=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "calendar_year"}, "unknown budget window"),
        ({"kind": "rolling"}, "whole number of seconds"),
        ({"kind": "rolling", "rolling_s": 0}, "at least 1s"),
        ({"kind": "calendar_day", "rolling_s": 60}, "only applies to rolling"),
        ({"kind": "calendar_day", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"kind": "calendar_day", "timezone": "../etc/passwd"}, "unknown timezone"),
    ],
)
def test_bad_windows_explain_the_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Window(**kwargs)  # type: ignore[arg-type]


def test_naive_clock_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        current_window(Window("calendar_day"), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        current_window(Window("rolling", rolling_s=60), datetime(2026, 1, 1))
