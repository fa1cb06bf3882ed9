"""Where learned output-token histograms are kept: per store, apart from the budget ledger.

``reserve: {estimate: p95}`` learns the output tokens of recorded calls per policy ×
model (:mod:`policyd.budgets.learned`); this module gives it one backend per store so
that every instance sharing a store shares what was learned. Histograms are windowed
by **epoch** (:data:`EPOCH_S` of the caller's clock): counts go to the current epoch's
histogram, an estimate reads the current and the previous one, and older epochs are
dropped, so an estimate follows drift and storage stays bounded (two histograms of at
most ``histogram.BUCKETS`` fields per policy × model).

One call, :meth:`OutputsBackend.exchange`, adds counts and reads histograms at once:
on Redis that is one pipelined round trip (:mod:`policyd.stores.redis_outputs`),
kept out of the ledger script. :func:`policyd.budgets.learned.open_outputs` picks the
backend of a store; one it does not know (a custom Store object) learns in process,
like the memory store.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

#: Length of one histogram epoch: an estimate sees the last 6 to 12 hours of outcomes.
EPOCH_S = 6 * 3600
#: A policy × model: the histogram's identity.
OutputKey = tuple[str, str]
Histogram = dict[int, int]


class OutputsBackend(Protocol):
    """Shared histograms of output tokens (bucket -> count) per policy × model × epoch."""

    #: True when an exchange costs no I/O (in process): it may run on every call.
    local: bool

    def exchange(
        self, deltas: Mapping[OutputKey, Mapping[int, int]], wanted: Sequence[OutputKey], epoch: int
    ) -> dict[OutputKey, Histogram]:
        """Add ``deltas`` to epoch ``epoch``; return the current plus previous epoch's
        counts of each ``wanted`` key (every key present, maybe empty). Raises on a
        store failure; nothing is half-applied that a retry would count twice, except
        on Redis where a reply lost after the write is (rare; counts are estimates)."""
        ...

    async def aexchange(
        self, deltas: Mapping[OutputKey, Mapping[int, int]], wanted: Sequence[OutputKey], epoch: int
    ) -> dict[OutputKey, Histogram]: ...


class MemoryOutputs:
    """In-process histograms (the memory store's, and any store's without its own)."""

    local = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epochs: dict[int, dict[OutputKey, Histogram]] = {}

    def exchange(
        self, deltas: Mapping[OutputKey, Mapping[int, int]], wanted: Sequence[OutputKey], epoch: int
    ) -> dict[OutputKey, Histogram]:
        with self._lock:
            for old in [e for e in self._epochs if e < epoch - 1]:
                del self._epochs[old]
            current = self._epochs.setdefault(epoch, {})
            for key, counts in deltas.items():
                hist = current.setdefault(key, {})
                for bucket, n in counts.items():
                    hist[bucket] = hist.get(bucket, 0) + n
            out: dict[OutputKey, Histogram] = {}
            for key in wanted:
                merged: Histogram = {}
                for e in (epoch - 1, epoch):
                    for bucket, n in self._epochs.get(e, {}).get(key, {}).items():
                        merged[bucket] = merged.get(bucket, 0) + n
                out[key] = merged
            return out

    async def aexchange(
        self, deltas: Mapping[OutputKey, Mapping[int, int]], wanted: Sequence[OutputKey], epoch: int
    ) -> dict[OutputKey, Histogram]:
        return self.exchange(deltas, wanted, epoch)
