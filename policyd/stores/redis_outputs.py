"""Learned output-token histograms in Redis: one hash per policy × model × epoch.

Layout (``<prefix>`` is the store's key prefix; names percent-encoded as in the ledger,
one hash tag per policy × model so both epochs live in one Redis Cluster slot)::

    <prefix>outputs:{<policy>:<model>}:<epoch>    hash: bucket -> count

An exchange is one pipelined round trip (not a transaction, not the ledger script):
``HINCRBY`` per bucket counted since the last one and an ``EXPIRE`` of two epochs
plus an hour, then ``HGETALL`` of the current and previous epoch of each key read.
It goes through the store's connection pool and its pool gate, and skips Redis while
the store is failing fast; failures raise to :mod:`policyd.budgets.learned`, which
keeps the counts for the next try. Nothing here runs while a decision waits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from policyd.stores.outputs import EPOCH_S, Histogram, OutputKey
from policyd.stores.redis import RedisStore
from policyd.stores.redis_codec import encode_name

_KEEP_S = 2 * EPOCH_S + 3600


def output_key(prefix: str, key: OutputKey, epoch: int) -> str:
    policy, model = key
    return f"{prefix}outputs:{{{encode_name(policy)}:{encode_name(model)}}}:{epoch}"


class RedisOutputs:
    """The histograms of one :class:`RedisStore` (its clients, pool and prefix)."""

    local = False

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def _queue(
        self,
        pipe: Any,
        deltas: Mapping[OutputKey, Mapping[int, int]],
        wanted: Sequence[OutputKey],
        epoch: int,
    ) -> None:
        prefix = self.store.key_prefix
        for key, counts in deltas.items():
            name = output_key(prefix, key, epoch)
            for bucket, n in counts.items():
                pipe.hincrby(name, str(bucket), n)
            pipe.expire(name, _KEEP_S)
        for key in wanted:
            pipe.hgetall(output_key(prefix, key, epoch - 1))
            pipe.hgetall(output_key(prefix, key, epoch))

    def exchange(
        self, deltas: Mapping[OutputKey, Mapping[int, int]], wanted: Sequence[OutputKey], epoch: int
    ) -> dict[OutputKey, Histogram]:
        fill = functools.partial(self._queue, deltas=deltas, wanted=wanted, epoch=epoch)
        return _read(self.store._pipe(fill), wanted)

    async def aexchange(
        self, deltas: Mapping[OutputKey, Mapping[int, int]], wanted: Sequence[OutputKey], epoch: int
    ) -> dict[OutputKey, Histogram]:
        fill = functools.partial(self._queue, deltas=deltas, wanted=wanted, epoch=epoch)
        return _read(await self.store._apipe(fill), wanted)


def _read(replies: Sequence[Any], wanted: Sequence[OutputKey]) -> dict[OutputKey, Histogram]:
    """The merged histograms from the last ``2 * len(wanted)`` replies (HGETALL maps)."""
    tail = replies[len(replies) - 2 * len(wanted) :]
    out: dict[OutputKey, Histogram] = {}
    for i, key in enumerate(wanted):
        merged: Histogram = {}
        for reply in (tail[2 * i], tail[2 * i + 1]):
            for field, value in (reply or {}).items():
                try:
                    bucket, count = int(field), int(value)
                except ValueError:
                    continue  # not ours: ignore rather than fail every estimate
                if count > 0:
                    merged[bucket] = merged.get(bucket, 0) + count
        out[key] = merged
    return out
