"""Admission to a store's connection pool: waiting for a connection is back-pressure.

A :class:`RedisStore` lets at most ``pool_size`` calls be in flight per client
(the sync client, or the asyncio client of one event loop). A call beyond that
waits for a free connection. It waits as long as the pool makes progress (some
call finishes and frees a connection at least every ``pool_timeout_s``), and
gives up with :class:`PoolBusy` only when no connection frees up for a whole
``pool_timeout_s``: then every call in flight is stuck, which the command
timeout will report as an outage anyway. So a burst of 1,500 concurrent
decisions against a pool of 100 queues and is served; a dead Redis still
costs at most one bounded wait.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from policyd.stores.base import StoreError

DEFAULT_POOL_SIZE = 100


class PoolBusy(StoreError):
    """No connection of the pool freed up for ``pool_timeout_s`` (caught in the store)."""


class Gate:
    """The sync gate: ``size`` slots whose waiters give up only without progress.

    The slots are tokens in a ``queue.SimpleQueue`` (C): taking and giving one back costs
    ~0.1 µs, where ``threading.BoundedSemaphore`` (Python, a condition and a lock) cost
    ~2.4 µs, twice per store call."""

    def __init__(self, size: int, timeout_s: float) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self.waited = 0  # calls that had to wait for a connection
        self._free: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(size):
            self._free.put(None)
        self._released = 0

    @contextmanager
    def enter(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        """Take a slot (waiting as the class says); :meth:`release` gives it back. The
        store's hot path calls the pair directly: ``enter`` is the same, as a context."""
        try:
            self._free.get_nowait()
            return
        except queue.Empty:
            pass
        self.waited += 1
        while True:
            seen = self._released
            try:
                self._free.get(timeout=self.timeout_s)
                return
            except queue.Empty:
                if self._released == seen:
                    raise PoolBusy(_busy_text(self.size, self.timeout_s)) from None

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire` (only such a slot)."""
        self._released += 1
        self._free.put(None)


class AsyncGate:
    """The asyncio twin of :class:`Gate`, for one event loop."""

    def __init__(self, size: int, timeout_s: float) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self.waited = 0
        self._sem = asyncio.Semaphore(size)
        self._released = 0

    @asynccontextmanager
    async def enter(self) -> AsyncIterator[None]:
        if self._sem.locked():
            self.waited += 1
            while True:
                seen = self._released
                try:
                    await asyncio.wait_for(self._sem.acquire(), self.timeout_s)
                    break
                except TimeoutError:
                    if self._released == seen:
                        raise PoolBusy(_busy_text(self.size, self.timeout_s)) from None
        else:
            await self._sem.acquire()
        try:
            yield
        finally:
            self._released += 1
            self._sem.release()


def _busy_text(size: int, timeout_s: float) -> str:
    return (
        f"all {size} connections stayed busy for {timeout_s:g}s; "
        "raise pool_size or pool_timeout_s if Redis itself is healthy"
    )
