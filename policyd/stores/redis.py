"""The Redis store: budget counters shared by every instance, sync and async.

Every reservation, settlement and usage query is one ``EVALSHA`` of
``lua/ledger.lua`` (cached; a ``NOSCRIPT`` reply reloads it), which does the
whole step atomically on the server for all of a decision's budgets. On Redis
Cluster (``redis+cluster://``) a script may only touch one hash slot, so lines
are grouped per slot (one call each, all sent before any reply is needed) and a
reservation refused in one slot is cancelled in the others: never overspent,
though not isolated (see docs/budgets.md).

Failures never raise into a request: ``reserve`` returns ``store_error``,
``settle`` keeps the settlement in the bounded :class:`Journal` and the store
replays it after its next successful round trip. After a failure, calls skip
Redis for ``retry_interval_s`` and fail at once, so a dead Redis costs at most
one short timeout per interval. At most ``pool_size`` calls are in flight per
client (sync threads or one event loop); a call beyond that waits for a free
connection up to ``pool_timeout_s``: back-pressure, never counted as an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from policyd.budgets.ledger import Amount, CounterUsage, Line, ReserveResult, check_lines
from policyd.budgets.windows import Window, current_window, epoch_ms
from policyd.stages.flow import Flow, Io, adrive, drive
from policyd.stores import redis_codec as codec
from policyd.stores.base import DEFAULT_KEY_PREFIX, StoreError, StoreUnavailable
from policyd.stores.journal import Journal
from policyd.stores.pool import PoolBusy
from policyd.stores.redis_options import positive_seconds, settings
from policyd.stores.redis_replay import FAILURES as _FAILURES
from policyd.stores.redis_replay import ReplayMixin
from policyd.stores.redis_transport import LUA, Transport

log = logging.getLogger("policyd.stores")

T = TypeVar("T")
__all__ = ["LUA", "RedisStore"]


class RedisStore(ReplayMixin):
    """Budget counters in Redis. See :class:`policyd.stores.base.Store`."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        connect_timeout_s: float = 0.25,
        command_timeout_s: float = 0.25,
        journal_max: int = 10_000,
        settle_grace_s: float = 600.0,
        retry_interval_s: float = 1.0,
        replay_batch: int = 256,
        pool_size: int | None = None,
        pool_timeout_s: float | None = None,
        reply_poll_us: float | None = None,
    ) -> None:
        positive_seconds(settle_grace_s=settle_grace_s)
        if retry_interval_s < 0:
            raise StoreError(f"retry_interval_s must be 0 or more, got {retry_interval_s!r}")
        checked = settings(
            url,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
            pool_size=pool_size,
            pool_timeout_s=pool_timeout_s,
            reply_poll_us=reply_poll_us,
        )
        self.cluster = checked.cluster
        self.url = checked.shown
        self.key_prefix = key_prefix
        self._grace_ms = round(settle_grace_s * 1000)
        self._retry_interval_s = retry_interval_s
        self._replay_batch = replay_batch
        self.pool_size = checked.pool_size
        self.pool_timeout_s = checked.pool_timeout_s
        self.reply_poll_us = checked.reply_poll_s * 1e6
        self.busy = 0  # calls that found no free connection within pool_timeout_s
        self.lost = 0  # reservations the server had lost by the time they were settled
        self._listener: Callable[[dict[str, Any]], None] | None = None
        self.journal = Journal(journal_max)
        self.last_error: str | None = None
        self.failures = 0
        self._down_until = 0.0
        self._io = Transport(checked)
        # the round trips every flow yields (instance attributes: a benchmark swaps them)
        self._call, self._acall = self._io.call, self._io.acall
        self._batch, self._abatch = self._io.batch, self._io.abatch

    # -- the protocol ---------------------------------------------------------------------
    # Each operation is written once, as a flow (policyd.stages.flow) that yields every
    # round trip as Io(self._call, self._acall, ...): the sync method drives it blocking,
    # the async one awaits it. Only the transport (_call/_acall, _batch/_abatch) differs.

    def reserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> ReserveResult:
        return drive(self._reserve_flow(decision_id, lines, now, ttl_s))

    async def areserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> ReserveResult:
        return await adrive(self._reserve_flow(decision_id, lines, now, ttl_s))

    def settle(self, reservation: ReserveResult, actual: Amount | None, now: datetime) -> bool:
        return drive(self._settle_flow(reservation, actual, now))

    async def asettle(
        self, reservation: ReserveResult, actual: Amount | None, now: datetime
    ) -> bool:
        return await adrive(self._settle_flow(reservation, actual, now))

    def usage(self, budget: str, key: str, window: Window, now: datetime) -> Amount:
        return drive(self._read_flow(self._usage_call(budget, key, window, now), _amount))

    async def ausage(self, budget: str, key: str, window: Window, now: datetime) -> Amount:
        return await adrive(self._read_flow(self._usage_call(budget, key, window, now), _amount))

    def read(
        self, budget: str, key: str, window: Window, now: datetime, alerts: Sequence[str] = ()
    ) -> CounterUsage:
        """Settled, reserved and live alerts of one counter's current window."""
        call = self._usage_call(budget, key, window, now, alerts)
        return drive(self._read_flow(call, _counter_usage))

    async def aread(
        self, budget: str, key: str, window: Window, now: datetime, alerts: Sequence[str] = ()
    ) -> CounterUsage:
        """Async :meth:`read`."""
        call = self._usage_call(budget, key, window, now, alerts)
        return await adrive(self._read_flow(call, _counter_usage))

    def keys(self, budget: str, window: Window, now: datetime) -> list[str]:
        """The keys that have a counter of ``budget`` in the current window (SCAN), sorted."""
        slot_id = current_window(window, now).id
        pattern = codec.counter_pattern(self.key_prefix, budget, window, slot_id)
        client = self._io.plain_client()
        try:
            names = list(client.scan_iter(match=pattern, count=1000))
        except _FAILURES as exc:
            raise StoreUnavailable(self._failed(exc)) from None
        return sorted({codec.key_of(n, self.key_prefix, budget, window, slot_id) for n in names})

    def close(self) -> None:
        self._io.close()

    async def aclose(self) -> None:
        await self._io.aclose()

    # -- the flows --------------------------------------------------------------------------

    def _reserve_flow(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> Flow[ReserveResult]:
        """One reservation: a script call per hash slot (all sent before any reply is
        read), then on a cluster the cancel of the slots that reserved when one refused."""
        now_ms, slots, calls = self._plan_reserve(decision_id, lines, now, ttl_s)
        error = self._fail_fast()
        if error is None:
            try:
                replies = []
                for call in calls:
                    replies.append((yield Io(self._call, self._acall, (call,))))
                result = codec.reserve_result(
                    decision_id, lines, slots, calls, replies, now_ms, ttl_s
                )
                if not result.ok and len(calls) > 1:
                    for call in self._cancel_calls(result, now_ms):
                        yield Io(self._call, self._acall, (call,))
                    result = codec.without_alerts(result)
                if len(self.journal):
                    yield from self._replay_flow(now)
            except _FAILURES as exc:
                error = self._failed(exc)
            except asyncio.CancelledError:  # only ever raised in areserve
                self._release_cancelled(decision_id, lines, slots)
                raise
            else:
                return result
        return ReserveResult(decision_id, False, codec.unknown_results(lines, slots), error)

    def _plan_reserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> tuple[int, list[Any], list[codec.Call]]:
        """The script calls of one reservation (one per hash slot)."""
        check_lines(lines)
        now_ms = epoch_ms(now)
        slots = [current_window(line.window, now) for line in lines]
        calls = codec.reserve_calls(
            self.key_prefix,
            decision_id,
            lines,
            slots,
            now_ms,
            max(1, round(ttl_s * 1000)),
            self._grace_ms,
            self.cluster,
        )
        return now_ms, slots, calls

    def _release_cancelled(self, decision_id: str, lines: Sequence[Line], slots: Any) -> None:
        """The caller was cancelled with the reserve sent (or made): nobody will settle it,
        so journal its release (replayed, idempotently, after the next round trip; a
        reserve that runs after the release is a no-op) instead of letting it hold the
        budget until its ttl."""
        unknown = ReserveResult(
            decision_id, False, codec.unknown_results(lines, slots), "reserve cancelled"
        )
        log.warning(
            "budget reservation of decision %s was cancelled in flight: releasing it",
            decision_id,
        )
        self._keep(unknown, None)

    def _settle_flow(
        self, reservation: ReserveResult, actual: Amount | None, now: datetime
    ) -> Flow[bool]:
        if not reservation.ok and reservation.store_error is None:
            return False  # refused: nothing was reserved
        calls = self._settle_calls(reservation, actual, now, reservation.store_error is not None)
        if self._fail_fast() is None:
            try:
                replies = []
                for call in calls:
                    replies.append((yield Io(self._call, self._acall, (call,))))
                changed = self._settled(reservation, replies)
            except _FAILURES as exc:
                self._failed(exc)
            except asyncio.CancelledError:  # only in asettle; the settle may not have run
                self._keep(reservation, actual)
                raise
            else:
                if len(self.journal):
                    yield from self._replay_flow(now)
                return changed
        return self._keep(reservation, actual)

    def _read_flow(self, call: codec.Call, decode: Callable[[Any], T]) -> Flow[T]:
        """One usage query, its reply decoded; StoreUnavailable when Redis is not there."""
        error = self._fail_fast()
        if error is None:
            try:
                reply = yield Io(self._call, self._acall, (call,))
            except _FAILURES as exc:
                error = self._failed(exc)
            else:
                return decode(reply)
        raise StoreUnavailable(error)

    # -- health -----------------------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        """Journal and failure figures, for ``engine.status()`` and logs."""
        return {
            "store": "redis",
            "url": self.url,
            "available": self._fail_fast() is None,
            "last_error": self.last_error,
            "failures": self.failures,
            "journal": len(self.journal),
            "journal_max": self.journal.max_entries,
            "journal_dropped": self.journal.dropped,
            "journal_replayed": self.journal.replayed,
            "pool_size": self.pool_size,
            "pool_waits": self._io.pool_waits,
            "pool_busy": self.busy,
            "reply_poll_us": self.reply_poll_us,
            "reservations_lost": self.lost,
        }

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, key_prefix={self.key_prefix!r})"

    # -- internals --------------------------------------------------------------------------

    def _settle_calls(
        self, reservation: ReserveResult, actual: Amount | None, now: datetime, force: bool
    ) -> list[codec.Call]:
        return codec.settle_calls(
            self.key_prefix,
            reservation,
            actual,
            epoch_ms(now),
            self._grace_ms,
            force,
            self.cluster,
        )

    def _cancel_calls(self, refused: ReserveResult, now_ms: int) -> list[codec.Call]:
        """Cluster only: undo the slots that reserved when another slot refused."""
        return codec.settle_calls(
            self.key_prefix, refused, None, now_ms, self._grace_ms, False, self.cluster, "cancel"
        )

    def _usage_call(
        self, budget: str, key: str, window: Window, now: datetime, alerts: Sequence[str] = ()
    ) -> codec.Call:
        slot = current_window(window, now)
        return codec.usage_call(
            self.key_prefix, budget, key, window, slot, epoch_ms(now), self._grace_ms, alerts
        )

    def _pipe(self, fill: Callable[[Any], None]) -> list[Any]:
        """Plain commands (``fill(pipeline)`` queues them) in one round trip; skips Redis
        while it is failing fast."""
        error = self._fail_fast()
        if error is not None:
            raise StoreUnavailable(error)
        return self._io.pipe(fill)

    async def _apipe(self, fill: Callable[[Any], None]) -> list[Any]:
        error = self._fail_fast()
        if error is not None:
            raise StoreUnavailable(error)
        return await self._io.apipe(fill)

    def _fail_fast(self) -> str | None:
        if self._down_until and time.monotonic() < self._down_until:
            return f"Redis store at {self.url} is unavailable: {self.last_error}"
        return None

    def listen(self, callback: Callable[[dict[str, Any]], None] | None) -> None:
        """Send store events (``budget_reservation_lost``) to ``callback``."""
        self._listener = callback

    def _settled(self, reservation: ReserveResult, replies: Sequence[Any]) -> bool:
        """Read settle replies: 1 counted, 0 not, 2 counted although the store had lost
        the reservation (restarted without persistence, flushed, evicted)."""
        if any(int(r) == 2 for r in replies):
            self.lost += 1
            budgets = sorted({line.budget for line in reservation.lines})
            log.warning(
                "Redis store at %s had lost the reservation of decision %s (budgets %s): "
                "restarted without persistence, flushed or evicted? Its spend is counted "
                "now; calls it admitted meanwhile were not limited by it",
                self.url,
                reservation.decision_id,
                ", ".join(budgets),
            )
            if self._listener is not None:
                self._listener(
                    {
                        "type": "budget_reservation_lost",
                        "store": self.url,
                        "decision_id": reservation.decision_id,
                        "budgets": budgets,
                    }
                )
        return any(bool(int(r)) for r in replies)

    def _failed(self, exc: BaseException) -> str:
        if isinstance(exc, PoolBusy):  # back-pressure: this call fails, Redis is not "down"
            self.busy += 1
            log.warning("Redis store at %s is busy: %s", self.url, exc)
            return f"Redis store at {self.url} is busy: {exc}"
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.failures += 1
        self._down_until = time.monotonic() + self._retry_interval_s
        log.warning("Redis store at %s failed: %s", self.url, self.last_error)
        return f"Redis store at {self.url} is unavailable: {self.last_error}"


def _amount(reply: Any) -> Amount:
    return Amount(*(int(x) for x in reply[0][0]))


def _counter_usage(reply: Any) -> CounterUsage:
    return CounterUsage(*codec.usage_reply(reply))
