"""Learned reservations: output tokens recorded per policy × model, and their quantiles.

``reserve: {estimate: p95}`` prices a reservation with the p95 of the output tokens
that calls of the same policy and model actually produced. :class:`LearnedOutputs`
(one per engine runtime, shared by every policy revision) keeps:

* **pending counts**: outcomes recorded here and not yet sent to the store, as one
  log-scale histogram per policy × model (:mod:`policyd.budgets.histogram`), so
  their size is bounded however many calls wait;
* **snapshots**: the store's histogram (every instance's outcomes, current and
  previous epoch) per policy × model, as of the last exchange.

``estimate()`` runs on the decision path and never does I/O: it reads the snapshot.
``sync()``/``async_sync()`` run after ``record()`` has settled (piggy-backed on the
call's end, never while a decision waits) and at most once per ``refresh_s``: one
exchange that sends the pending counts and fetches fresh snapshots of every key that
decisions asked for. A failed exchange keeps the counts for the next one and leaves
the snapshots as they were; below ``min_samples`` (or before the first exchange of a
fresh instance) the budget's fallback applies. A store that costs no I/O (memory)
exchanges on every record.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policyd.budgets.histogram import BUCKETS, Quantile, bucket_of, quantile
from policyd.budgets.windows import epoch_ms
from policyd.stores.outputs import EPOCH_S, Histogram, MemoryOutputs, OutputKey, OutputsBackend

log = logging.getLogger("policyd")

#: Default seconds between two exchanges with a shared store.
DEFAULT_REFRESH_S = 10.0
#: A key no decision asked for in this long is no longer fetched.
_FORGET_S = 600.0
_TOUCH_S = 60.0  # how stale "when a decision last asked" may get before it is updated
#: At most this many policy × model keys are tracked (old revisions' keys fall out).
_MAX_KEYS = 4096


@dataclass(slots=True)
class Snapshot:
    """The store's histogram of one policy × model, and the quantiles read from it."""

    counts: Histogram
    total: int
    memo: dict[Quantile, int | None] = field(default_factory=dict)

    def quantile(self, q: Quantile) -> int | None:
        if q not in self.memo:
            self.memo[q] = quantile(self.counts, q)
        return self.memo[q]


@dataclass(frozen=True, slots=True)
class Estimate:
    """Output tokens to reserve (None: too few samples, use the fallback) and from how
    many recorded outcomes."""

    tokens: int | None
    samples: int


class LearnedOutputs:
    """Output tokens learned from recorded outcomes; see the module docstring."""

    def __init__(self, backend: OutputsBackend, refresh_s: float = DEFAULT_REFRESH_S) -> None:
        self.backend = backend
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._pending: dict[OutputKey, Histogram] = {}
        self._snapshots: dict[OutputKey, Snapshot] = {}
        self._wanted: dict[OutputKey, float] = {}  # key -> when a decision last asked
        self._next_sync = 0.0
        self._syncing = False
        self.failures = 0
        self.last_error: str | None = None

    # -- the decision path: no I/O -----------------------------------------------------------

    def estimate(self, policy: str, model: str, q: Quantile, min_samples: int) -> Estimate:
        key = (policy, model)
        seen = self._wanted.get(key)
        if seen is None or time.monotonic() - seen > _TOUCH_S:  # writes only under the lock
            with self._lock:
                self._remember(key)
        snap = self._snapshots.get(key)
        if snap is None or snap.total < min_samples:
            return Estimate(None, snap.total if snap is not None else 0)
        return Estimate(snap.quantile(q), snap.total)

    # -- after a call ------------------------------------------------------------------------

    def observe(self, policy: str, model: str, output_tokens: int) -> None:
        """Count one recorded outcome (sent to the store with the next exchange)."""
        bucket = bucket_of(output_tokens)
        key = (policy, model)
        with self._lock:
            hist = self._pending.get(key)
            if hist is None:
                if len(self._pending) >= _MAX_KEYS:
                    return  # bounded: the store is unreachable for long; drop, never grow
                hist = self._pending[key] = {}
            hist[bucket] = hist.get(bucket, 0) + 1
            if key not in self._wanted:
                self._remember(key)

    def due(self) -> bool:
        return self.backend.local or time.monotonic() >= self._next_sync

    def sync(self, now: datetime) -> None:
        """One exchange with the store, when due and no other thread is exchanging."""
        job = self._start()
        if job is None:
            return
        deltas, wanted = job
        try:
            fetched = self.backend.exchange(deltas, wanted, _epoch(now))
        except Exception as exc:  # never into the caller: keep the counts for next time
            self._failed(deltas, exc)
        else:
            self._done(fetched)

    async def async_sync(self, now: datetime) -> None:
        """:meth:`sync` with the store's I/O awaited."""
        job = self._start()
        if job is None:
            return
        deltas, wanted = job
        try:
            fetched = await self.backend.aexchange(deltas, wanted, _epoch(now))
        except Exception as exc:
            self._failed(deltas, exc)
        else:
            self._done(fetched)

    def stats(self) -> dict[str, Any]:
        return {
            "keys": len(self._snapshots),
            "pending": sum(sum(h.values()) for h in self._pending.values()),
            "failures": self.failures,
            "last_error": self.last_error,
        }

    # -- internals ---------------------------------------------------------------------------

    def _remember(self, key: OutputKey) -> None:
        """Track ``key`` (under the lock); the least recently asked key leaves when full."""
        if key not in self._wanted and len(self._wanted) >= _MAX_KEYS:
            oldest = min(self._wanted, key=self._wanted.__getitem__)
            del self._wanted[oldest]
            self._snapshots.pop(oldest, None)
        self._wanted[key] = time.monotonic()

    def _start(self) -> tuple[dict[OutputKey, Histogram], list[OutputKey]] | None:
        now = time.monotonic()
        with self._lock:
            if self._syncing or not (self.backend.local or now >= self._next_sync):
                return None
            self._syncing = True
            self._next_sync = now + self.refresh_s
            deltas, self._pending = self._pending, {}
            for key in [k for k, seen in self._wanted.items() if now - seen > _FORGET_S]:
                del self._wanted[key]
                self._snapshots.pop(key, None)
            return deltas, list(self._wanted)

    def _done(self, fetched: Mapping[OutputKey, Histogram]) -> None:
        snapshots = {}
        for key, counts in fetched.items():
            clean = {b: n for b, n in counts.items() if 0 <= b < BUCKETS and n > 0}
            snapshots[key] = Snapshot(clean, sum(clean.values()))
        with self._lock:
            self._snapshots.update(snapshots)
            self._syncing = False

    def _failed(self, deltas: dict[OutputKey, Histogram], exc: BaseException) -> None:
        with self._lock:
            for key, counts in deltas.items():  # back into pending, for the next exchange
                hist = self._pending.setdefault(key, {})
                for bucket, n in counts.items():
                    hist[bucket] = hist.get(bucket, 0) + n
            self._syncing = False
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.warning("learned output estimates: store exchange failed: %s", self.last_error)


def _epoch(now: datetime) -> int:
    return epoch_ms(now) // (EPOCH_S * 1000)


_BACKENDS: weakref.WeakKeyDictionary[Any, OutputsBackend] = weakref.WeakKeyDictionary()
_CREATE = threading.RLock()  # learned_outputs() calls open_outputs() holding it


def open_outputs(store: Any) -> OutputsBackend:
    """The histograms of ``store``: one backend per store object, shared by every
    engine (and policy revision) that uses it."""
    with _CREATE:
        backend = _BACKENDS.get(store)
        if backend is None:
            # a Redis store can only exist once its module was imported (Redis is optional)
            redis_module = sys.modules.get("policyd.stores.redis")
            if redis_module is not None and isinstance(store, redis_module.RedisStore):
                from policyd.stores.redis_outputs import RedisOutputs

                backend = RedisOutputs(store)
            else:
                backend = MemoryOutputs()
            _BACKENDS[store] = backend
        return backend


def learned_outputs(runtime: Any) -> LearnedOutputs:
    """The runtime's learned outputs, made on first use (``runtime.outputs``), on the
    backend of its store; ``runtime.estimate_refresh_s`` sets the refresh interval."""
    with _CREATE:
        outputs = getattr(runtime, "outputs", None)
        if outputs is None:
            refresh = getattr(runtime, "estimate_refresh_s", None)
            outputs = LearnedOutputs(
                open_outputs(runtime.store),
                DEFAULT_REFRESH_S if refresh is None else refresh,
            )
            runtime.outputs = outputs
        return outputs
