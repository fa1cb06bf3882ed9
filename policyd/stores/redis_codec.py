"""Key names and script arguments for the Redis store, and decoding its replies.

Pure functions, no I/O, so the layout is easy to read and test. Every counter
(budget × key × window) is two keys that share one hash tag, ``{budget:key}``,
so they live in one Redis Cluster slot (``lua/ledger.lua`` describes their contents)::

    <prefix>{<budget>:<key>}:<window>:h    hash: figures (packed), an entry per decision,
                                           alert marks
    <prefix>{<budget>:<key>}:<window>:z    zset: decision id -> deadline / forget time (ms)

``<window>`` is the calendar window id (``d20261124``, ``w20261123``, ``m202611``)
or ``r<seconds>s`` for a rolling window. Budget names and keys are
percent-encoded (and hashed when longer than 120 characters), so user-supplied
keys cannot break the layout or the hash tag.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

from policyd.budgets.ledger import (
    Amount,
    Limit,
    Line,
    LineResult,
    ReserveResult,
    alert_levels,
    counter_suffix,
)
from policyd.budgets.windows import Window, WindowSlot, epoch_ms

LATE_MARGIN_MS = 60_000  # settle/usage keep a counter this long past its grace
_MAX_NAME = 120


@lru_cache(maxsize=65536)
def encode_name(text: str) -> str:
    """A budget name or key made safe for a Redis key and its hash tag."""
    if len(text) > _MAX_NAME:
        return "#" + hashlib.sha256(text.encode()).hexdigest()[:32]
    return quote(text, safe="")


@lru_cache(maxsize=65536)
def counter_keys(
    prefix: str, budget: str, key: str, window: Window, window_id: str
) -> tuple[str, str]:
    """The two keys of one counter: figures and entries (``:h``), deadlines (``:z``)."""
    base = (
        f"{prefix}{{{encode_name(budget)}:{encode_name(key)}}}:{counter_suffix(window, window_id)}"
    )
    return (base + ":h", base + ":z")


@dataclass(frozen=True, slots=True)
class Call:
    """One script call: the lines it covers (by index), its KEYS and ARGV."""

    lines: tuple[int, ...]
    keys: list[str]
    args: list[Any]


_OPS = {"reserve": 1, "settle": 2, "usage": 3, "cancel": 4}


def _header(
    op: str,
    now_ms: int,
    a_ms: int,
    grace_ms: int,
    force: bool,
    actual: Amount | None,
) -> bytes:
    """The packed header that starts a call's first argument (see ``lua/ledger.lua``)."""
    act = (-1, -1, -1) if actual is None else actual.clamped().as_tuple()
    forget = now_ms + grace_ms
    return _HEAD.pack(_OPS[op], now_ms, a_ms, grace_ms, 1 if force else 0, *act, forget)


_HEAD = struct.Struct("<9d")
_FIGURES = {n: struct.Struct(f"<{n}d") for n in (4, 5)}
_RESERVE = struct.Struct("<13d")
#: a limit beyond any spend a counter can hold (2 * (2**53 - 1)) compares the same,
#: and stays a finite double
_NO_WRAP = 2**62


def _groups(keys: Sequence[Sequence[str]], by_slot: bool) -> list[list[int]]:
    """Line indexes per script call: one call, or one per cluster hash slot."""
    if not by_slot or len(keys) <= 1:
        return [list(range(len(keys)))]
    from redis.crc import key_slot

    groups: dict[int, list[int]] = {}
    for i, line_keys in enumerate(keys):
        groups.setdefault(key_slot(line_keys[0].encode()), []).append(i)
    return [groups[slot] for slot in sorted(groups)]


def _life_ms(window: Window, reset_at: datetime | None, now_ms: int) -> int:
    """How long from now a counter must outlive its window (before ttl and grace)."""
    if reset_at is None:
        return (window.n_buckets + 1) * window.bucket_ms
    return max(0, epoch_ms(reset_at) - now_ms)


def reserve_calls(
    prefix: str,
    did: str,
    lines: Sequence[Line],
    slots: Sequence[WindowSlot],
    now_ms: int,
    ttl_ms: int,
    grace_ms: int,
    by_slot: bool,
) -> list[Call]:
    keys = [
        counter_keys(prefix, ln.budget, ln.key, ln.window, s.id)
        for ln, s in zip(lines, slots, strict=True)
    ]
    calls = []
    for group in _groups(keys, by_slot):
        call_keys: list[str] = []
        # reserve: A is the deadline (now + ttl), the decision's score in each zset
        deadline = now_ms + ttl_ms
        blob = [_header("reserve", now_ms, deadline, grace_ms, False, None)]
        for i in group:
            line, slot = lines[i], slots[i]
            call_keys += keys[i]
            window = line.window
            retry = -1 if slot.reset_ms is None else slot.reset_ms - now_ms
            life = (window.n_buckets + 1) * window.bucket_ms if retry < 0 else max(0, retry)
            target = now_ms + life + ttl_ms + grace_ms
            limits, n_alerts, levels, names = _reserve_static(line.limit, line.alerts)
            figures = _RESERVE.pack(
                window.n_buckets,
                window.bucket_ms,
                target,
                1 if line.enforce else 0,
                *line.amount.as_tuple(),
                *limits,
                retry,
                n_alerts,
                len(names),
            )
            blob += (figures, levels, names)
        calls.append(Call(tuple(group), call_keys, [b"".join(blob), did, deadline]))
    return calls


def settle_calls(
    prefix: str,
    reservation: ReserveResult,
    actual: Amount | None,
    now_ms: int,
    grace_ms: int,
    force: bool,
    by_slot: bool,
    op: str = "settle",
) -> list[Call]:
    lines = reservation.lines
    keys = [counter_keys(prefix, ln.budget, ln.key, ln.window, ln.window_id) for ln in lines]
    calls = []
    for group in _groups(keys, by_slot):
        call_keys: list[str] = []
        # settle: A is the reservation's deadline (the lost-reservation check)
        deadline = reservation.deadline_ms if op == "settle" else 0
        blob = [_header(op, now_ms, deadline, grace_ms, force, actual)]
        for i in group:
            line = lines[i]
            call_keys += keys[i]
            window = line.window
            target = now_ms + _life_ms(window, line.reset_at, now_ms) + grace_ms + LATE_MARGIN_MS
            if op == "settle":
                placed = int(line.window_id[1:]) if window.is_rolling else 0
                in_flight = 1 if window.is_in_flight else 0  # release, never record
                figures = _FIGURES[5].pack(
                    window.n_buckets, window.bucket_ms, target, placed, in_flight
                )
                blob.append(figures)
            else:  # cancel: un-mark the alerts this reservation fired
                names = " ".join(repr(a) for a in line.alerts_fired).encode()
                blob.append(_named(window, target, names))
        args: list[Any] = [b"".join(blob), reservation.decision_id]
        if op == "settle":  # the decision's score in each zset: -forget ms
            args.append(-(now_ms + grace_ms))
        calls.append(Call(tuple(group), call_keys, args))
    return calls


def usage_call(
    prefix: str,
    budget: str,
    key: str,
    window: Window,
    slot: WindowSlot,
    now_ms: int,
    grace_ms: int,
    alerts: Sequence[str] = (),
) -> Call:
    keys = counter_keys(prefix, budget, key, window, slot.id)
    target = now_ms + _life_ms(window, slot.reset_at, now_ms) + grace_ms + LATE_MARGIN_MS
    head = _header("usage", now_ms, 0, grace_ms, False, None)
    return Call((0,), list(keys), [head + _named(window, target, _names(alerts)), ""])


def _named(window: Window, target: int, names: bytes) -> bytes:
    """A usage or cancel line: its window, expiry target and alert names."""
    return _FIGURES[4].pack(window.n_buckets, window.bucket_ms, target, len(names)) + names


@lru_cache(maxsize=4096)
def _reserve_static(
    limit: Limit, alerts: tuple[float, ...]
) -> tuple[tuple[int, ...], int, bytes, bytes]:
    """What a line's reserve arguments take from its budget, computed once per budget:
    the limits (-1: none), the alert levels packed (x3 each, ascending, -1 where
    unlimited: the script stops at the first threshold not reached) and their names."""
    limits = tuple(-1 if x is None else min(x, _NO_WRAP) for x in limit.as_tuple())
    levels = alert_levels(limit, alerts) if alerts else ()
    flat = [min(x, _NO_WRAP) for _, dims in levels for x in dims]
    packed = struct.pack(f"<{len(flat)}d", *flat)
    return limits, len(levels), packed, " ".join(n for n, _ in levels).encode()


def _names(names: Sequence[str]) -> bytes:
    return " ".join(names).encode()


def counter_pattern(prefix: str, budget: str, window: Window, window_id: str) -> str:
    """SCAN pattern for every key's main counter of one budget and window."""
    suffix = counter_suffix(window, window_id)
    return f"{_glob(prefix)}{{{_glob(encode_name(budget))}:*}}:{_glob(suffix)}:h"


def key_of(name: bytes | str, prefix: str, budget: str, window: Window, window_id: str) -> str:
    """The budget key a counter's Redis key holds (hashed long keys stay ``#<hash>``)."""
    text = _text(name)
    head = f"{prefix}{{{encode_name(budget)}:"
    tail = f"}}:{counter_suffix(window, window_id)}:h"
    return unquote(text[len(head) : len(text) - len(tail)])


def usage_reply(reply: Any) -> tuple[Amount, Amount, tuple[str, ...]]:
    """(settled, reserved, live alert names) from a usage reply's first line."""
    _spent, settled, reserved, live = reply[0]
    return (
        Amount(*(int(x) for x in settled)),
        Amount(*(int(x) for x in reserved)),
        tuple(_text(n) for n in live),
    )


def _glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def line_results(
    lines: Sequence[Line], slots: Sequence[WindowSlot], rows: dict[int, Any]
) -> tuple[LineResult, ...]:
    """LineResults from the script's per-line rows (indexed like ``lines``)."""
    out = []
    for i, (line, slot) in enumerate(zip(lines, slots, strict=True)):
        usd, tokens, requests, fits, retry_ms, fired = rows[i]
        out.append(
            LineResult(
                budget=line.budget,
                key=line.key,
                window=line.window,
                window_id=slot.id,
                limit=line.limit,
                spent_before=Amount(int(usd), int(tokens), int(requests)),
                fits=bool(fits),
                alerts_fired=_fired(line, fired),
                retry_after_s=None if int(retry_ms) < 0 else int(retry_ms) / 1000,
                reset_at=slot.reset_at,
            )
        )
    return tuple(out)


def _fired(line: Line, mask: int) -> tuple[float, ...]:
    """The thresholds a reservation fired, from the reply's bit mask (bit i: the i-th)."""
    if not mask:
        return ()
    levels = alert_levels(line.limit, line.alerts)
    return tuple(float(name) for i, (name, _) in enumerate(levels) if int(mask) >> i & 1)


def unknown_results(lines: Sequence[Line], slots: Sequence[WindowSlot]) -> tuple[LineResult, ...]:
    """LineResults when the store could not be asked: nothing known, nothing refused."""
    return tuple(
        LineResult(
            budget=line.budget,
            key=line.key,
            window=line.window,
            window_id=slot.id,
            limit=line.limit,
            spent_before=Amount(),
            fits=True,
            reset_at=slot.reset_at,
        )
        for line, slot in zip(lines, slots, strict=True)
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def reserve_result(
    decision_id: str,
    lines: Sequence[Line],
    slots: Sequence[Any],
    calls: Sequence[Call],
    replies: Sequence[Any],
    now_ms: int,
    ttl_s: float,
) -> ReserveResult:
    rows: dict[int, Any] = {}
    ok = True
    for call, reply in zip(calls, replies, strict=True):
        ok = ok and int(reply[0]) == 1
        for n, index in enumerate(call.lines):
            rows[index] = reply[1 + 6 * n : 7 + 6 * n]
    deadline = now_ms + max(1, round(ttl_s * 1000))
    return ReserveResult(decision_id, ok, line_results(lines, slots, rows), None, deadline)


def without_alerts(result: ReserveResult) -> ReserveResult:
    lines = tuple(replace(line, alerts_fired=()) for line in result.lines)
    return replace(result, lines=lines)
