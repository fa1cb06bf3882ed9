"""The accounting of one counter (budget × key × window), in plain Python.

This is the reference semantics of every store: :mod:`policyd.stores.memory`
runs it directly and ``policyd/stores/lua/ledger.lua`` does the same steps
inside Redis (the tests run both on the same operations and compare).

A counter holds settled spend and live reservations per bucket (a calendar
window is a single bucket; a rolling window has up to 60) and one entry per
decision that touched it:

* ``L`` live reservation: its amount counts until it is settled or its
  deadline (reserve time + ttl) passes;
* ``X`` expired reservation: no longer counts, but a late settle still records
  the actual spend until ``deadline + grace``;
* ``S`` settled: kept for ``grace`` after settling so a second settle of the
  same decision is recognised and ignored.

Times are integer milliseconds from the caller's clock; amounts are integers.
Every counter field is kept within [0, MAX_AMOUNT] (saturating), exactly as the
Lua script does, so a hostile amount can neither wrap nor drive a counter negative.
"""

from __future__ import annotations

import heapq

from policyd.budgets.ledger import clamp
from policyd.budgets.windows import Window

Triple = list[int]  # [usd_micros, tokens, requests]


class Entry:
    __slots__ = ("amount", "bucket", "deadline", "state")

    def __init__(self, state: str, bucket: int, amount: tuple[int, int, int], deadline: int):
        self.state = state
        self.bucket = bucket
        self.amount = amount
        self.deadline = deadline


class Counter:
    """One budget × key × window counter: see the module docstring."""

    __slots__ = (
        "alerts",
        "bucket_ms",
        "entries",
        "expires_ms",
        "heap",
        "hi",
        "n_buckets",
        "reserved",
        "settled",
        "total_reserved",
        "total_settled",
    )

    def __init__(self, window: Window) -> None:
        self.n_buckets = window.n_buckets  # 0 for a calendar window
        self.bucket_ms = window.bucket_ms
        self.settled: dict[int, Triple] = {}
        self.reserved: dict[int, Triple] = {}
        self.total_settled: Triple = [0, 0, 0]
        self.total_reserved: Triple = [0, 0, 0]
        self.entries: dict[str, Entry] = {}
        self.heap: list[tuple[int, str]] = []
        self.alerts: dict[str, int] = {}  # name -> marker expiry ms (0: until the window ends)
        self.hi: int | None = None  # newest bucket seen (rolling)
        self.expires_ms = 0  # when the memory store may forget this counter

    # -- time -------------------------------------------------------------------------------

    def live_from(self) -> int:
        """Oldest bucket that still counts (calendar: the only bucket, 0)."""
        return 0 if self.hi is None else self.hi - self.n_buckets

    def is_live(self, bucket: int) -> bool:
        return self.n_buckets == 0 or bucket >= self.live_from()

    def place(self, bucket: int) -> int:
        """The bucket new spend goes to: never one that has already slid out."""
        if self.n_buckets == 0 or self.hi is None:
            return 0 if self.n_buckets == 0 else bucket
        return min(max(bucket, self.live_from()), self.hi)

    def maintain(self, now_ms: int, grace_ms: int) -> None:
        """Slide the rolling window to ``now_ms`` and expire overdue entries."""
        if self.n_buckets:
            cur = now_ms // self.bucket_ms
            if self.hi is None or cur > self.hi:
                self.hi = cur
                floor = cur - self.n_buckets
                for bucket in [b for b in self.settled if b < floor]:
                    _sub(self.total_settled, self.settled.pop(bucket))
                for bucket in [b for b in self.reserved if b < floor]:
                    _sub(self.total_reserved, self.reserved.pop(bucket))
        heap = self.heap
        while heap and heap[0][0] <= now_ms:
            deadline, did = heapq.heappop(heap)
            entry = self.entries.get(did)
            if entry is None or entry.deadline != deadline:
                continue  # superseded heap item
            if entry.state == "L":
                self._add(self.reserved, self.total_reserved, entry.bucket, entry.amount, -1)
                next_deadline = deadline + grace_ms
                if next_deadline > now_ms:
                    self._set_entry(did, "X", entry.bucket, entry.amount, next_deadline)
                    continue
            del self.entries[did]

    # -- reading ----------------------------------------------------------------------------

    def spent(self) -> tuple[int, int, int]:
        s, v = self.total_settled, self.total_reserved
        return (clamp(s[0] + v[0]), clamp(s[1] + v[1]), clamp(s[2] + v[2]))

    def retry_after_ms(
        self,
        before: tuple[int, int, int],
        amount: tuple[int, int, int],
        limit: tuple[int, int, int],
        now_ms: int,
    ) -> int:
        """Rolling only: ms until enough old buckets slide out for ``amount`` to fit."""
        # (before - limit) + amount, clamped: the order and bounds the Lua script uses
        need = [clamp(before[i] - limit[i] + amount[i]) if limit[i] >= 0 else 0 for i in range(3)]
        assert self.hi is not None
        for bucket in range(self.live_from(), self.hi + 1):
            s = self.settled.get(bucket, (0, 0, 0))
            v = self.reserved.get(bucket, (0, 0, 0))
            for i in range(3):
                need[i] -= s[i] + v[i]
            if all(n <= 0 for n in need):
                return (bucket + self.n_buckets + 1) * self.bucket_ms - now_ms
        return (self.hi + self.n_buckets + 1) * self.bucket_ms - now_ms

    # -- writing ----------------------------------------------------------------------------

    def reserve(self, did: str, amount: tuple[int, int, int], now_ms: int, ttl_ms: int) -> None:
        bucket = self.place(now_ms // self.bucket_ms if self.n_buckets else 0)
        self._add(self.reserved, self.total_reserved, bucket, amount, 1)
        self._set_entry(did, "L", bucket, amount, now_ms + ttl_ms)

    def fire_alerts(
        self,
        levels: tuple[tuple[str, tuple[int, ...]], ...],
        after: tuple[int, int, int],
        now_ms: int,
    ) -> list[str]:
        fired = []
        for name, dims in levels:
            if not any(dims[i] >= 0 and after[i] >= dims[i] for i in range(3)):
                continue
            marker = self.alerts.get(name)
            if marker is None or 0 < marker <= now_ms:
                self.alerts[name] = (
                    now_ms + self.n_buckets * self.bucket_ms if self.n_buckets else 0
                )
                fired.append(name)
        return fired

    def settle(
        self,
        did: str,
        actual: tuple[int, int, int] | None,
        now_ms: int,
        grace_ms: int,
        force_bucket: int | None,
    ) -> bool:
        """Replace ``did``'s reservation with ``actual`` (``None``: release it).

        Returns False for a decision already settled, or unknown here (unless
        ``force_bucket`` is given: then the spend is recorded in that bucket).
        """
        entry = self.entries.get(did)
        if entry is not None and entry.state == "S":
            return False
        if entry is None and force_bucket is None:
            return False
        if entry is None:
            assert force_bucket is not None
            # recorded where it was reserved; spend that has already slid out stays out
            bucket = (
                0
                if self.n_buckets == 0
                else min(force_bucket, force_bucket if self.hi is None else self.hi)
            )
        else:
            bucket = entry.bucket
            if entry.state == "L":
                self._add(self.reserved, self.total_reserved, bucket, entry.amount, -1)
        if actual is not None:
            self._add(self.settled, self.total_settled, bucket, actual, 1)
        self._set_entry(did, "S", bucket, (0, 0, 0), now_ms + grace_ms)
        return True

    # -- helpers ----------------------------------------------------------------------------

    def _set_entry(
        self, did: str, state: str, bucket: int, amount: tuple[int, int, int], deadline: int
    ) -> None:
        self.entries[did] = Entry(state, bucket, amount, deadline)
        heapq.heappush(self.heap, (deadline, did))

    def _add(
        self,
        buckets: dict[int, Triple],
        total: Triple,
        bucket: int,
        amount: tuple[int, int, int] | Triple,
        sign: int,
    ) -> None:
        if not self.is_live(bucket):
            return  # that bucket slid out, and its amounts with it
        row = buckets.get(bucket)
        if row is None:
            row = buckets[bucket] = [0, 0, 0]
        for i in range(3):
            row[i] = clamp(row[i] + sign * amount[i])
            total[i] = clamp(total[i] + sign * amount[i])


def _sub(total: Triple, row: Triple) -> None:
    for i in range(3):
        total[i] = clamp(total[i] - row[i])
