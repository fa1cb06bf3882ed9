"""The Store protocol that budget accounting runs on, its errors, and ``open_store``.

A store keeps counters per budget × key × window and answers three questions
atomically: may this decision reserve these amounts (:meth:`Store.reserve`),
what did it actually spend (:meth:`Store.settle`), and what has a counter spent
so far (:meth:`Store.usage`). The engine picks one with ``store=`` in
``Engine.from_path``; ``None``/``"memory"`` is the in-process default and
``redis://``/``rediss://``/``unix://`` URLs share budgets between instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from policyd.budgets.ledger import Amount, Line, ReserveResult
from policyd.budgets.windows import Window
from policyd.errors import PolicydError

DEFAULT_KEY_PREFIX = "policyd:"


class StoreError(PolicydError):
    """A store is misconfigured (bad URL, bad option): a user error, with a fix."""


class StoreUnavailable(StoreError):
    """The store could not be reached in time (connection refused, timeout, ...)."""


@runtime_checkable
class Store(Protocol):
    """Budget counters shared by every decision that uses this store.

    ``now`` is always the caller's clock (aware datetime), so tests and
    ``policyd eval --now`` control time; ``ttl_s`` is how long an unsettled
    reservation counts before it expires.
    """

    def reserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> ReserveResult:
        """Reserve every line's amount, all or nothing over the ``enforce`` lines.

        Never raises for an unreachable store: the result carries ``store_error``.
        Reserving the same decision id again leaves the first reservation as is.
        """
        ...

    def settle(self, reservation: ReserveResult, actual: Amount | None, now: datetime) -> bool:
        """Replace the reservation's amount on every line with ``actual``.

        ``actual=None`` releases it (the call was never made). Returns True when
        the spend was counted (or journaled to be counted), False when this
        decision was already settled or is unknown to the store (e.g. refused).
        """
        ...

    def usage(self, budget: str, key: str, window: Window, now: datetime) -> Amount:
        """Settled spend plus live reservations of one counter's current window.

        Raises :class:`StoreUnavailable` when the store cannot be reached.
        """
        ...

    async def areserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> ReserveResult: ...

    async def asettle(
        self, reservation: ReserveResult, actual: Amount | None, now: datetime
    ) -> bool: ...

    async def ausage(self, budget: str, key: str, window: Window, now: datetime) -> Amount: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


def open_store(
    spec: str | Store | None = None,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
    connect_timeout_s: float = 0.25,
    command_timeout_s: float = 0.25,
    journal_max: int = 10_000,
    settle_grace_s: float = 600.0,
    retry_interval_s: float = 1.0,
    pool_size: int | None = None,
    pool_timeout_s: float | None = None,
) -> Store:
    """A store from ``store=``: an instance, ``None``/``"memory"``, or a Redis URL.

    Redis options: ``key_prefix`` starts every key; the timeouts bound every
    connect and command so a dead Redis never hangs a request;
    ``journal_max`` bounds the settlements kept locally while Redis is down;
    ``retry_interval_s`` is how long after a failure calls skip Redis and fail
    fast before the next attempt. ``pool_size`` (default 100, or ``?pool_size=N`` in
    the URL) bounds the connections, and the calls in flight, per client; a call
    beyond it waits for a free connection while the pool makes progress, and fails
    as busy only when none frees up for ``pool_timeout_s`` (default: the command
    timeout). ``settle_grace_s`` (both stores) is how long
    after a reservation expires a late settle is still counted, and how long a
    settled decision is remembered so a second settle is ignored.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "memory")):
        from policyd.stores.memory import MemoryStore

        return MemoryStore(settle_grace_s=settle_grace_s)
    if not isinstance(spec, str):
        if isinstance(spec, Store):
            return spec
        raise StoreError(
            f"store= must be 'memory', a redis:// URL or a Store object, got {type(spec).__name__}"
        )
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        from policyd.stores.redis import RedisStore

        return RedisStore(
            spec,
            key_prefix=key_prefix,
            connect_timeout_s=connect_timeout_s,
            command_timeout_s=command_timeout_s,
            journal_max=journal_max,
            settle_grace_s=settle_grace_s,
            retry_interval_s=retry_interval_s,
            pool_size=pool_size,
            pool_timeout_s=pool_timeout_s,
        )
    raise StoreError(
        f"unknown store {spec!r}: use 'memory' (the default) or a Redis URL such as "
        "'redis://localhost:6379/0' ('redis+cluster://host:port' for Redis Cluster)"
    )
