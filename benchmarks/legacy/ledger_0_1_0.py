"""The 0.1.0 Redis ledger (``ledger_0_1_0.lua``) and its arguments: a contender only.

``bench_stores.py`` times it against ``policyd/stores/lua/ledger.lua`` on the same
server in the same run. Two keys per counter (a hash of decimal fields, a zset of
deadlines); see the script's header. Only what the benchmark calls is kept here:
the KEYS and ARGV of one reserve and one settle (non-cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policyd.budgets.ledger import Amount, Line, ReserveResult, alert_levels, counter_suffix
from policyd.budgets.windows import WindowSlot, epoch_ms
from policyd.stores.redis_codec import LATE_MARGIN_MS, encode_name

LUA = (Path(__file__).parent / "ledger_0_1_0.lua").read_text(encoding="utf-8")


def _keys(prefix: str, line: Line, window_id: str) -> list[str]:
    base = (
        f"{prefix}{{{encode_name(line.budget)}:{encode_name(line.key)}}}:"
        f"{counter_suffix(line.window, window_id)}"
    )
    return [base, base + ":e"]


def reserve_call(
    prefix: str,
    did: str,
    lines: Sequence[Line],
    slots: Sequence[WindowSlot],
    now_ms: int,
    ttl_ms: int,
    grace_ms: int,
) -> tuple[list[str], list[Any]]:
    keys: list[str] = []
    args: list[Any] = ["reserve", did, now_ms, ttl_ms, grace_ms, 0, -1, -1, -1]
    for line, slot in zip(lines, slots, strict=True):
        keys += _keys(prefix, line, slot.id)
        window = line.window
        retry = -1 if slot.reset_ms is None else slot.reset_ms - now_ms
        life = (window.n_buckets + 1) * window.bucket_ms if retry < 0 else max(0, retry)
        limit = [-1 if x is None else x for x in line.limit.as_tuple()]
        args += [window.n_buckets, window.bucket_ms, life + ttl_ms + grace_ms]
        args += [1 if line.enforce else 0, *line.amount.as_tuple(), *limit, retry]
        levels = alert_levels(line.limit, line.alerts) if line.alerts else ()
        args.append(len(levels))
        for name, dims in levels:
            args += [name, *dims]
    return keys, args


def settle_call(
    prefix: str, reservation: ReserveResult, actual: Amount, now_ms: int, grace_ms: int
) -> tuple[list[str], list[Any]]:
    keys: list[str] = []
    args: list[Any] = ["settle", reservation.decision_id, now_ms, reservation.deadline_ms]
    args += [grace_ms, 0, *actual.clamped().as_tuple()]
    for line in reservation.lines:
        keys += _keys(prefix, line, line.window_id)  # type: ignore[arg-type]
        window = line.window
        life = (
            (window.n_buckets + 1) * window.bucket_ms
            if line.reset_at is None
            else max(0, epoch_ms(line.reset_at) - now_ms)
        )
        args += [window.n_buckets, window.bucket_ms, life + grace_ms + LATE_MARGIN_MS]
        args += [int(line.window_id[1:]) if window.is_rolling else 0]
        args += [1 if window.is_in_flight else 0]
    return keys, args
