"""Replaying the Redis store's journal: settlements kept while Redis was unreachable.

``ReplayMixin`` gives :class:`policyd.stores.redis.RedisStore` its ``flush_journal``
and ``aflush_journal``, the journaling of a settlement Redis could not take
(``_keep``), and the batched, idempotent replay after a successful round trip: a flow
(:mod:`policyd.stages.flow`) that the store's sync and async methods both run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from policyd.budgets.ledger import Amount, ReserveResult
from policyd.stages.flow import Flow, Io, adrive, drive
from policyd.stores import redis_codec as codec
from policyd.stores.journal import Journal, JournalEntry
from policyd.stores.pool import PoolBusy

log = logging.getLogger("policyd.stores")
#: What a failed round trip raises: Redis errors, socket errors, timeouts, a busy pool.
FAILURES: tuple[type[BaseException], ...] = (
    redis.RedisError,
    redis.exceptions.RedisClusterException,  # not a RedisError: no reachable node, ...
    OSError,
    asyncio.TimeoutError,
    PoolBusy,
)


class ReplayMixin:
    """The replay half of :class:`~policyd.stores.redis.RedisStore`: journal settlements
    while Redis is unreachable, replay them (sync or async) when it answers again."""

    journal: Journal
    cluster: bool
    _replay_batch: int

    # provided by RedisStore
    def _fail_fast(self) -> str | None:
        raise NotImplementedError

    def _failed(self, exc: BaseException) -> str:
        raise NotImplementedError

    # the store's transport (policyd.stores.redis_transport): one call, a pipelined batch
    _call: Callable[[codec.Call], Any]
    _acall: Callable[[codec.Call], Awaitable[Any]]
    _batch: Callable[[Sequence[codec.Call]], list[Any]]
    _abatch: Callable[[Sequence[codec.Call]], Awaitable[list[Any]]]

    def _settled(self, reservation: ReserveResult, replies: Sequence[Any]) -> bool:
        raise NotImplementedError

    def _settle_calls(
        self, reservation: ReserveResult, actual: Amount | None, now: datetime, force: bool
    ) -> list[codec.Call]:
        raise NotImplementedError

    def flush_journal(self, now: datetime | None = None) -> int:
        """Replay every journaled settlement now; returns how many are still waiting."""
        return drive(self._flush_flow(now or datetime.now(UTC)))

    async def aflush_journal(self, now: datetime | None = None) -> int:
        """Async :meth:`flush_journal`."""
        return await adrive(self._flush_flow(now or datetime.now(UTC)))

    def _flush_flow(self, now: datetime) -> Flow[int]:
        while len(self.journal) and self._fail_fast() is None:
            before = len(self.journal)
            yield from self._replay_flow(now)
            if len(self.journal) >= before:
                break
        return len(self.journal)

    def _keep(self, reservation: ReserveResult, actual: Amount | None) -> bool:
        if self.journal.append(JournalEntry(reservation, actual)):
            return True
        log.error(
            "budget journal full (%d entries): spend of decision %s is lost; "
            "raise journal_max or restore Redis",
            self.journal.max_entries,
            reservation.decision_id,
        )
        return False

    def _replay_calls(self, now: datetime) -> tuple[int, list[codec.Call], list[ReserveResult]]:
        """One batch of journaled settlements: how many, their calls, and each call's
        reservation (to report one the store had lost)."""
        batch = self.journal.head(self._replay_batch)
        calls: list[codec.Call] = []
        owners: list[ReserveResult] = []
        for entry in batch:
            for call in self._settle_calls(entry.reservation, entry.actual, now, True):
                calls.append(call)
                owners.append(entry.reservation)
        return len(batch), calls, owners

    def _replayed(self, owners: list[ReserveResult], replies: Sequence[Any]) -> None:
        lost = {id(o): o for o, r in zip(owners, replies, strict=True) if int(r) == 2}
        for reservation in lost.values():
            self._settled(reservation, [2])

    def _replay_flow(self, now: datetime) -> Flow[None]:
        """Replay one batch of the journal (idempotent), if there is one to replay: one
        pipelined round trip, or a call per hash slot on a cluster."""
        if not len(self.journal) or not self.journal.begin_replay():
            return
        try:
            n, calls, owners = self._replay_calls(now)
            if self.cluster:
                replies = []
                for call in calls:
                    replies.append((yield Io(self._call, self._acall, (call,))))
            else:
                replies = yield Io(self._batch, self._abatch, (calls,))
            self.journal.done(n)
            self._replayed(owners, replies)
        except FAILURES as exc:
            self._failed(exc)
        finally:
            self.journal.end_replay()
