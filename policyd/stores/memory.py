"""The in-process store (the default): exact, thread-safe budget counters in a dict.

One lock guards every counter, so a reservation over several budgets is
atomic, all or nothing, exactly like one Redis script call. The accounting
itself is :class:`policyd.budgets.counter.Counter`. Counters whose window is
over are forgotten on a sweep every minute of the caller's clock. Settled
decision ids, most of what a busy store holds, are kept compactly for
``settle_grace_s`` and at most ``max_settled`` per counter (see counter.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from policyd.budgets.counter import Counter, settled_key
from policyd.budgets.ledger import (
    Amount,
    CounterUsage,
    Line,
    LineResult,
    ReserveResult,
    alert_levels,
    check_lines,
    counter_suffix,
)
from policyd.budgets.windows import Window, WindowSlot, current_window, epoch_ms
from policyd.stores.base import StoreError

_SWEEP_EVERY_MS = 60_000
_LATE_MARGIN_MS = 60_000  # a settle may refresh a counter's life by this much past its grace

CounterId = tuple[str, str, str]


class MemoryStore:
    """Budget counters for one process. See :class:`policyd.stores.base.Store`."""

    name = "memory"

    def __init__(self, *, settle_grace_s: float = 600.0, max_settled: int = 1_000_000) -> None:
        self._grace_ms = max(1, round(settle_grace_s * 1000))
        if max_settled < 1:
            raise StoreError(f"max_settled must be 1 or more, got {max_settled!r}")
        self.max_settled = max_settled
        self._counters: dict[CounterId, Counter] = {}
        self._lock = threading.Lock()
        self._next_sweep_ms = 0

    # -- the protocol -----------------------------------------------------------------------

    def reserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> ReserveResult:
        check_lines(lines)
        now_ms = epoch_ms(now)
        ttl_ms = max(1, round(ttl_s * 1000))
        slots = [current_window(line.window, now) for line in lines]
        with self._lock:
            self._maybe_sweep(now_ms)
            counters = [
                self._live_counter(line, slot, now_ms, ttl_ms)
                for line, slot in zip(lines, slots, strict=True)
            ]
            befores = [c.spent() for c in counters]
            key = settled_key(decision_id)
            dups = [c.knows(decision_id, now_ms, key) for c in counters]
            fits = [
                dup or line.limit.admits(Amount(*before) + line.amount)
                for line, before, dup in zip(lines, befores, dups, strict=True)
            ]
            ok = all(fit or not line.enforce for line, fit in zip(lines, fits, strict=True))
            results = []
            for i, line in enumerate(lines):
                counter, before, slot = counters[i], befores[i], slots[i]
                fired: tuple[float, ...] = ()
                if ok and not dups[i]:
                    fired = _take(counter, line, before, decision_id, now_ms, ttl_ms)
                retry: float | None = None
                if not fits[i] and not line.window.is_in_flight:  # in flight: no reset time
                    retry = _retry_after_s(counter, line, before, slot, now_ms)
                results.append(
                    LineResult(
                        budget=line.budget,
                        key=line.key,
                        window=line.window,
                        window_id=slot.id,
                        limit=line.limit,
                        spent_before=Amount(*before),
                        fits=fits[i],
                        alerts_fired=fired,
                        retry_after_s=retry,
                        reset_at=slot.reset_at,
                    )
                )
        return ReserveResult(
            decision_id=decision_id, ok=ok, lines=tuple(results), deadline_ms=now_ms + ttl_ms
        )

    def _live_counter(self, line: Line, slot: WindowSlot, now_ms: int, ttl_ms: int) -> Counter:
        """The line's counter for this window, maintained, kept alive past the
        reservation's deadline and the settle grace."""
        counter = self._counter(line.budget, line.key, line.window, slot.id)
        counter.maintain(now_ms, self._grace_ms)
        life = (
            now_ms + (counter.n_buckets + 1) * counter.bucket_ms
            if slot.reset_ms is None
            else slot.reset_ms
        )
        counter.expires_ms = max(counter.expires_ms, life + ttl_ms + self._grace_ms)
        return counter

    def settle(self, reservation: ReserveResult, actual: Amount | None, now: datetime) -> bool:
        now_ms = epoch_ms(now)
        amount = None if actual is None else actual.clamped().as_tuple()
        force = reservation.store_error is not None
        # one object each for every counter: there may be many settled decisions
        key, forget = settled_key(reservation.decision_id), now_ms + self._grace_ms
        changed = False
        with self._lock:
            for line in reservation.lines:
                counter = self._counter(line.budget, line.key, line.window, line.window_id)
                counter.maintain(now_ms, self._grace_ms)
                counter.expires_ms = max(
                    counter.expires_ms, now_ms + self._grace_ms + _LATE_MARGIN_MS
                )
                bucket = _bucket_of(line.window_id) if force else None
                spend = None if line.window.is_in_flight else amount  # in flight: release
                did = reservation.decision_id
                if counter.settle(did, spend, now_ms, self._grace_ms, bucket, key, forget):
                    changed = True
        return changed

    def usage(self, budget: str, key: str, window: Window, now: datetime) -> Amount:
        now_ms = epoch_ms(now)
        slot = current_window(window, now)
        with self._lock:
            ident = (budget, key, counter_suffix(window, slot.id))
            counter = self._counters.get(ident)
            if counter is None:
                return Amount()
            counter.maintain(now_ms, self._grace_ms)
            return Amount(*counter.spent())

    def read(
        self, budget: str, key: str, window: Window, now: datetime, alerts: Sequence[str] = ()
    ) -> CounterUsage:
        """Settled, reserved and live alerts of one counter's current window."""
        now_ms = epoch_ms(now)
        slot = current_window(window, now)
        with self._lock:
            counter = self._counters.get((budget, key, counter_suffix(window, slot.id)))
            if counter is None:
                return CounterUsage(Amount(), Amount())
            counter.maintain(now_ms, self._grace_ms)
            live = tuple(
                name
                for name in alerts
                if (marker := counter.alerts.get(name)) is not None
                and (marker == 0 or marker > now_ms)
            )
            return CounterUsage(
                Amount(*counter.total_settled), Amount(*counter.total_reserved), live
            )

    async def aread(
        self, budget: str, key: str, window: Window, now: datetime, alerts: Sequence[str] = ()
    ) -> CounterUsage:
        return self.read(budget, key, window, now, alerts)

    def keys(self, budget: str, window: Window, now: datetime) -> list[str]:
        """The keys that have a counter of ``budget`` in the current window, sorted."""
        suffix = counter_suffix(window, current_window(window, now).id)
        with self._lock:
            return sorted(k for b, k, s in self._counters if b == budget and s == suffix)

    async def areserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> ReserveResult:
        return self.reserve(decision_id, lines, now, ttl_s)

    async def asettle(
        self, reservation: ReserveResult, actual: Amount | None, now: datetime
    ) -> bool:
        return self.settle(reservation, actual, now)

    async def ausage(self, budget: str, key: str, window: Window, now: datetime) -> Amount:
        return self.usage(budget, key, window, now)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def stats(self) -> dict[str, object]:
        """Figures for ``engine.status()``."""
        with self._lock:
            counters = list(self._counters.values())
        return {
            "store": "memory",
            "counters": len(counters),
            "settled_ids": sum(c.n_done for c in counters),
            # settled ids forgotten before settle_grace_s because their counter held
            # max_settled (summed over the counters held now: a swept counter's go)
            "settled_dropped": sum(c.settled_dropped for c in counters),
        }

    def __len__(self) -> int:
        """How many counters are held (finished windows are swept away)."""
        return len(self._counters)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._counters)} counters)"

    # -- internals --------------------------------------------------------------------------

    def _counter(self, budget: str, key: str, window: Window, window_id: str) -> Counter:
        ident = (budget, key, counter_suffix(window, window_id))
        counter = self._counters.get(ident)
        if counter is None:
            counter = self._counters[ident] = Counter(window, self._grace_ms, self.max_settled)
        return counter

    def _maybe_sweep(self, now_ms: int) -> None:
        if now_ms < self._next_sweep_ms:
            return
        self._next_sweep_ms = now_ms + _SWEEP_EVERY_MS
        stale = [ident for ident, c in self._counters.items() if 0 < c.expires_ms < now_ms]
        for ident in stale:
            del self._counters[ident]


def _bucket_of(window_id: str) -> int:
    """The rolling bucket a window id names (``r123`` -> 123); 0 for calendar ids."""
    return int(window_id[1:]) if window_id.startswith("r") else 0


def _take(
    counter: Counter,
    line: Line,
    before: tuple[int, int, int],
    decision_id: str,
    now_ms: int,
    ttl_ms: int,
) -> tuple[float, ...]:
    """Reserve the line's amount on its counter; the alert levels it crossed."""
    amount = line.amount.as_tuple()
    counter.reserve(decision_id, amount, now_ms, ttl_ms)
    if not line.alerts:
        return ()
    after = (before[0] + amount[0], before[1] + amount[1], before[2] + amount[2])
    names = counter.fire_alerts(alert_levels(line.limit, line.alerts), after, now_ms)
    return tuple(float(n) for n in names)


def _retry_after_s(
    counter: Counter, line: Line, before: tuple[int, int, int], slot: WindowSlot, now_ms: int
) -> float:
    """When the line would fit again: the window's reset, or on a rolling window when
    enough of the spend has aged out."""
    if slot.reset_ms is not None:
        return (slot.reset_ms - now_ms) / 1000
    limit = tuple(-1 if x is None else x for x in line.limit.as_tuple())
    retry_ms = counter.retry_after_ms(
        before, line.amount.as_tuple(), (limit[0], limit[1], limit[2]), now_ms
    )
    return retry_ms / 1000
