"""The local journal of settlements a shared store could not take yet.

Owned by :class:`policyd.stores.redis.RedisStore`, one per store instance. When
Redis is unreachable, ``settle`` appends the settlement here instead of losing
it; the store replays the journal (oldest first, in batches, each replay
idempotent by decision id) after its next successful round trip, or when
``flush_journal()`` is called. The journal is bounded: when it is full a new
settlement is dropped, counted in :attr:`Journal.dropped` and logged.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from policyd.budgets.ledger import Amount, ReserveResult
from policyd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One settlement waiting for the store: which reservation, what it cost."""

    reservation: ReserveResult
    actual: Amount | None


class Journal:
    """A bounded, thread-safe FIFO of :class:`JournalEntry`; one replayer at a time."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ConfigError(f"journal_max must be 0 or more, got {max_entries}")
        self.max_entries = max_entries
        self.dropped = 0
        self.replayed = 0
        self._entries: deque[JournalEntry] = deque()
        self._lock = threading.Lock()
        self._replaying = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry: JournalEntry) -> bool:
        """Keep ``entry``; False (and counted as dropped) when the journal is full."""
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self.dropped += 1
                return False
            self._entries.append(entry)
            return True

    def begin_replay(self) -> bool:
        """Become the one replayer; False when another thread or task already is."""
        return self._replaying.acquire(blocking=False)

    def end_replay(self) -> None:
        self._replaying.release()

    def head(self, n: int) -> list[JournalEntry]:
        """The ``n`` oldest entries, left in place until :meth:`done` (replayer only)."""
        with self._lock:
            return [self._entries[i] for i in range(min(n, len(self._entries)))]

    def done(self, n: int) -> None:
        """Forget the ``n`` oldest entries, now applied to the store (replayer only)."""
        with self._lock:
            for _ in range(n):
                self._entries.popleft()
            self.replayed += n
