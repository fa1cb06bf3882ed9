"""Shadow revisions: a candidate bundle decides a sample of live requests off the hot path.

``decide()`` hands the live decision to a bounded queue (sampled by ``rate``; a full queue
drops and counts); a daemon thread decides the same request under the candidate with the
same clock and decision id, compares (the fields ``policyd diff`` compares) and reports
each difference as a ``shadow_diff`` event, a ``shadow`` decision-log line and metrics.
The candidate reads live budget usage through :class:`ReadOnlyStore` and never reserves;
its decisions are never returned, so nothing caches them. ``promote`` makes it live.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from policyd.budgets.learned import learned_outputs
from policyd.budgets.ledger import Amount, Line, LineResult, ReserveResult
from policyd.budgets.windows import Window, current_window
from policyd.bundle import load_bundle
from policyd.compile import CompiledBundle, compile_bundle
from policyd.deciding import decision_flow
from policyd.decision import Decision
from policyd.decision_log import decision_summary
from policyd.diff import DiffReport
from policyd.errors import ConfigError, RequestError
from policyd.stages.base import DecisionState, Runtime
from policyd.stages.flow import drive
from policyd.worker import BoundedWorker

if TYPE_CHECKING:
    from policyd.observers import Observers
    from policyd.request import TokenCounter

log = logging.getLogger("policyd")


class ReadOnlyStore:
    """The live store as a candidate sees it: usage is read, reservations are never written."""

    def __init__(self, live: Any) -> None:
        self.live = live
        # The live decision's reservation for the request being shadowed: what it saw
        # before itself is what the candidate sees (set by the one shadow thread).
        self.seen: ReserveResult | None = None

    def _spent(self, line: Line, now: datetime) -> Amount:
        seen = self.seen
        if seen is not None and seen.store_error is None:
            for result in seen.lines:
                if (result.budget, result.key, result.window) == (
                    line.budget,
                    line.key,
                    line.window,
                ):
                    return result.spent_before
        return self.live.usage(line.budget, line.key, line.window, now)

    def reserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> ReserveResult:
        results = []
        try:
            for line in lines:
                spent = self._spent(line, now)
                results.append(
                    LineResult(
                        line.budget,
                        line.key,
                        line.window,
                        current_window(line.window, now).id,
                        line.limit,
                        spent,
                        line.limit.admits(spent + line.amount),
                    )
                )
        except Exception as exc:  # unreachable store: the budgets' on_store_error decides
            return ReserveResult(decision_id, True, (), store_error=type(exc).__name__)
        ok = all(r.fits or not line.enforce for r, line in zip(results, lines, strict=True))
        return ReserveResult(decision_id, ok, tuple(results))

    def settle(self, reservation: ReserveResult, actual: Amount | None, now: datetime) -> bool:
        return False

    def usage(self, budget: str, key: str, window: Window, now: datetime) -> Amount:
        return self.live.usage(budget, key, window, now)

    async def areserve(
        self, decision_id: str, lines: Sequence[Line], now: datetime, ttl_s: float
    ) -> ReserveResult:
        return self.reserve(decision_id, lines, now, ttl_s)

    async def asettle(
        self, reservation: ReserveResult, actual: Amount | None, now: datetime
    ) -> bool:
        return False

    async def ausage(self, budget: str, key: str, window: Window, now: datetime) -> Amount:
        return self.usage(budget, key, window, now)

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _random_pick(decision: Decision) -> bool:
    return any(t.outcome == "model" and "weighted, random" in t.detail for t in decision.trace)


class Shadow(BoundedWorker):
    """A candidate revision compared with the live one on a sample of live requests."""

    def __init__(
        self,
        live: Runtime,
        live_digest: str,
        path: str | os.PathLike[str],
        *,
        token_counter: TokenCounter,
        rate: float = 1.0,
        observers: Observers,
        capacity: int = 1000,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"shadow_rate must be between 0 and 1, not {rate!r}")
        self.path = os.fspath(path)
        self.rate = rate
        self.store = ReadOnlyStore(live.store)
        self.runtime = Runtime(live.clock, self.store)
        self.runtime.cooldowns = live.cooldowns  # read only: the candidate never records
        self.runtime.reservation_ttl_s = live.reservation_ttl_s
        self.runtime.outputs = learned_outputs(live)  # read only: learned estimates
        self._live = live
        self._counter = token_counter
        self.bundle = load_bundle(self.path)
        self.compiled = compile_bundle(self.bundle, self.runtime, token_counter=self._counter)
        self._observers = observers
        self.report = DiffReport("live", f"shadow {self.path}", live_digest, self.compiled.digest)
        self.sampled_out = 0
        self._lock = threading.Lock()  # the report, read by summary() on other threads
        super().__init__("policyd-shadow", capacity)

    # -- the request path ----------------------------------------------------------------------

    def offer(self, decision: Decision, now: datetime) -> None:
        if self.rate < 1.0 and random.random() >= self.rate:
            self.sampled_out += 1
            return
        self._put((decision, now))

    # -- the shadow thread ----------------------------------------------------------------------

    def _handle(self, item: tuple[Any, ...]) -> None:
        try:
            self.compare(item[0], item[1])
        except Exception:
            log.exception("policyd: a shadow comparison failed")

    def decide(self, live: Decision, now: datetime) -> Decision | None:
        """The candidate's decision on the request ``live`` answered (same clock and id)."""
        compiled = self.compiled.policies.get(live.policy.name)
        if compiled is None:
            return None
        state = DecisionState(
            compiled.shape.prepare(live.request), now, live.id, self._counter.name
        )
        self.store.seen = live.reservation
        return drive(decision_flow(compiled, state))

    def compare(self, live: Decision, now: datetime) -> dict[str, tuple[str, str]]:
        try:
            candidate = self.decide(live, now)
        except RequestError:
            candidate = None
        if candidate is None:
            with self._lock:
                self.report.requests += 1
                self.report.errors[f"policy {live.policy.name} not in the candidate"] += 1
            return {}
        # a weighted pick without a sticky key is random on both sides: not a difference
        ignore = (
            frozenset({"model", "fallbacks"})
            if live.tier == candidate.tier and _random_pick(live) and _random_pick(candidate)
            else frozenset()
        )
        with self._lock:
            self.report.requests += 1
            changes = self.report.add(live, candidate, ignore=ignore)
        observers = self._observers
        if observers.telemetry is not None:
            observers.telemetry.compared(live.policy.name, tuple(sorted(changes)))
        if not changes:
            return changes
        changed = {k: [a, b] for k, (a, b) in sorted(changes.items())}
        revision = observers.index.revision(live)
        self._live.emit(
            {
                "type": "shadow_diff",
                "id": live.id,
                "policy": live.policy.name,
                "revision": revision,
                "candidate_revision": self.compiled.digest,
                "changed": changed,
            }
        )
        if observers.log is not None:
            observers.log.log_line(
                {
                    "v": 1,
                    "kind": "shadow",
                    "id": live.id,
                    "time": now.isoformat(),
                    "policy": live.policy.to_dict(),
                    "revision": revision,
                    "candidate_revision": self.compiled.digest,
                    "decision": decision_summary(live),
                    "candidate": decision_summary(candidate),
                    "changed": changed,
                }
            )
        return changes

    def summary(self, top: int = 10) -> dict[str, Any]:
        """``Engine.shadow_report()``: the counts so far and the ``top`` changes."""
        with self._lock:
            data = self.report.to_dict(top)
        data["sampled_out"] = self.sampled_out
        data["dropped"] = self.dropped
        data["rate"] = self.rate
        return data

    def text(self, top: int = 10) -> str:
        """``Engine.shadow_report(text=True)``: the report as ``policyd diff`` prints it."""
        from policyd.diff_report import render_text

        with self._lock:
            return render_text(self.report, top, title="policyd shadow")

    def compile_for_live(self) -> CompiledBundle:
        """Stop comparing; the candidate compiled again on the live runtime (store,
        cooldowns, callbacks), for ``Engine.promote_shadow()`` to swap in."""
        self.close()
        return compile_bundle(self.bundle, self._live, token_counter=self._counter)
