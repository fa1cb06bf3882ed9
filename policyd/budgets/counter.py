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

Settled decisions are most of what a busy counter holds (one per decision for
``grace``, 600 s by default), so they are kept compactly: not as an entry, but as
decision id -> forget time in one of a few generation dicts (by forget time, each
``grace / 4`` long). A lookup checks the live generations (at most six); a
generation whose forget times have all passed is dropped whole, so forgetting costs
O(1) per decision. At most ``max_settled`` settled ids are kept per counter: beyond
that the oldest generation is forgotten early and counted in ``settled_dropped``. A
decision forgotten early is then unknown here: a second settle of it is still not
counted (it is not known, and only a store error forces a settle), but a forced
settle would be, and a reservation reusing its id would be made again.

Times are integer milliseconds from the caller's clock; amounts are integers.
Every counter field is kept within [0, MAX_AMOUNT] (saturating), exactly as the
Lua script does, so a hostile amount can neither wrap nor drive a counter negative.
"""

from __future__ import annotations

import heapq
import re

from policyd.budgets.ledger import clamp
from policyd.budgets.windows import Window

Triple = list[int]  # [usd_micros, tokens, requests]
SettledKey = str | int
_ENGINE_ID = re.compile("[0-9a-f]{32}")


def settled_key(did: str) -> SettledKey:
    """How a settled decision id is remembered: an engine decision id (32 lowercase hex
    digits) as the 128-bit number it spells (44 bytes instead of 81: there are many),
    any other id as itself. Distinct ids stay distinct (a number never equals a text)."""
    if len(did) == 32 and _ENGINE_ID.fullmatch(did):
        return int(did, 16)
    return did


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
        "done",
        "entries",
        "expires_ms",
        "generation_ms",
        "heap",
        "hi",
        "max_settled",
        "n_buckets",
        "n_done",
        "reserved",
        "settled",
        "settled_dropped",
        "total_reserved",
        "total_settled",
    )

    def __init__(
        self, window: Window, grace_ms: int = 600_000, max_settled: int = 1_000_000
    ) -> None:
        self.n_buckets = window.n_buckets  # 0 for a calendar window
        self.bucket_ms = window.bucket_ms
        self.settled: dict[int, Triple] = {}
        self.reserved: dict[int, Triple] = {}
        self.total_settled: Triple = [0, 0, 0]
        self.total_reserved: Triple = [0, 0, 0]
        self.entries: dict[str, Entry] = {}  # live and expired reservations (L, X)
        self.heap: list[tuple[int, str]] = []
        # settled decisions: generation -> {decision id: forget ms}, generation = forget
        # ms // generation_ms (see the module docstring)
        self.done: dict[int, dict[SettledKey, int]] = {}
        self.n_done = 0
        self.generation_ms = max(1, grace_ms // 4)
        self.max_settled = max_settled
        self.settled_dropped = 0
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
        if self.done:  # drop the generations whose forget times have all passed
            first = (now_ms + 1) // self.generation_ms  # forget > now_ms lies in >= first
            for gen in [g for g in self.done if g < first]:
                self.n_done -= len(self.done.pop(gen))

    def is_settled(self, key: SettledKey, now_ms: int) -> bool:
        """True when the decision (its :func:`settled_key`) was settled here and is not
        forgotten yet."""
        for ids in self.done.values():
            forget = ids.get(key)
            if forget is not None and forget > now_ms:
                return True
        return False

    def knows(self, did: str, now_ms: int, key: SettledKey | None = None) -> bool:
        """True when ``did`` has an entry here: reserved, expired or settled."""
        if did in self.entries:
            return True
        return self.is_settled(settled_key(did) if key is None else key, now_ms)

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
        key: SettledKey | None = None,
        forget_ms: int | None = None,
    ) -> bool:
        """Replace ``did``'s reservation with ``actual`` (``None``: release it).

        Returns False for a decision already settled, or unknown here (unless
        ``force_bucket`` is given: then the spend is recorded in that bucket). ``key``
        is :func:`settled_key` of ``did``, when the caller has it (one object shared by
        every counter a decision settles in), and ``forget_ms`` ``now_ms + grace_ms``,
        likewise.
        """
        if key is None:
            key = settled_key(did)
        if self.is_settled(key, now_ms):
            return False
        entry = self.entries.get(did)
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
        if entry is not None:
            del self.entries[did]  # its heap item is now superseded
        self._remember(key, now_ms + grace_ms if forget_ms is None else forget_ms)
        return True

    def _remember(self, key: SettledKey, forget_ms: int) -> None:
        """Keep a decision as settled until ``forget_ms`` (the oldest generation goes
        early when ``max_settled`` would be exceeded)."""
        gen = forget_ms // self.generation_ms
        ids = self.done.get(gen)
        if ids is None:
            ids = self.done[gen] = {}
        ids[key] = forget_ms
        self.n_done += 1
        while self.n_done > self.max_settled and len(self.done) > 1:
            oldest = min(self.done)
            dropped = len(self.done.pop(oldest))
            self.n_done -= dropped
            self.settled_dropped += dropped

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
