"""The Store protocol that budget accounting runs on, and its errors.

A store keeps counters per budget × key × window and answers three questions
atomically: may this decision reserve these amounts (:meth:`Store.reserve`),
what did it actually spend (:meth:`Store.settle`), and what has a counter spent
so far (:meth:`Store.usage`). The engine picks one with ``store=`` in
``Engine.from_path`` (through :func:`policyd.stores.factory.open_store`);
``None``/``"memory"`` is the in-process default and ``redis://``/``rediss://``/
``unix://`` URLs share budgets between instances.
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
