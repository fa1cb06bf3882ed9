"""What watches an engine: decision log, OpenTelemetry and a shadow revision, behind one hook.

The engine calls :meth:`Observers.decided` after ``decide()`` and :meth:`Observers.recorded`
after ``record()`` only when something is attached; with nothing attached it pays one
``is None`` test. Nothing here imports OpenTelemetry unless telemetry is on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from policyd.decision import Decision
from policyd.decision_log import DecisionLog, RequestFields

if TYPE_CHECKING:
    from policyd.compile import CompiledBundle
    from policyd.engine import Engine
    from policyd.shadow import Shadow
    from policyd.telemetry import Telemetry

_MAX_PENDING_ATTEMPTS = 100_000
_KEEP_REVISIONS = 16


class RevisionIndex:
    """Which bundle revision made a decision, and what its policy logs of a request.

    Keyed by the identity of the compiled policy a decision carries; filled when a
    revision goes live (and on a miss, from the revision serving then).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._by_policy: dict[int, tuple[Any, str, RequestFields]] = {}
        self._bundles: list[CompiledBundle] = []
        self.add(engine.compiled)

    def add(self, bundle: CompiledBundle) -> None:
        with self._lock:
            if any(b is bundle for b in self._bundles):
                return
            self._bundles.append(bundle)
            for compiled in bundle.policies.values():
                ctx = bundle.source.policies.get(compiled.name)
                fields = (
                    RequestFields.for_policy(ctx.policy)
                    if ctx is not None
                    else RequestFields((), "lengths")
                )
                self._by_policy[id(compiled)] = (compiled, bundle.digest, fields)
            while len(self._bundles) > _KEEP_REVISIONS:
                old = self._bundles.pop(0)
                for compiled in old.policies.values():
                    self._by_policy.pop(id(compiled), None)

    def describe(self, decision: Decision) -> tuple[str, RequestFields] | None:
        """(bundle digest, logged fields) of the revision that made ``decision``; None when
        it is not one of this engine's revisions."""
        entry = self._by_policy.get(id(decision.revision))
        if entry is None or entry[0] is not decision.revision:
            self.add(self._engine.compiled)
            entry = self._by_policy.get(id(decision.revision))
        if entry is None or entry[0] is not decision.revision:
            return None
        return entry[1], entry[2]

    def revision(self, decision: Decision) -> str | None:
        found = self.describe(decision)
        return found[0] if found is not None else None


class Observers:
    """The decision log, telemetry and shadow attached to one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.index = RevisionIndex(engine)
        self.log: DecisionLog | None = None
        self.telemetry: Telemetry | None = None
        self.shadow: Shadow | None = None
        self._attempts: dict[str, int] = {}
        self.owns_log = True

    def decided(self, decision: Decision, now: datetime, started_ns: int) -> None:
        if self.log is not None:
            self.log.log_decision(decision, now)
        if self.telemetry is not None:
            self.telemetry.decided(decision, started_ns, self.index)
        if self.shadow is not None:
            self.shadow.offer(decision, now)

    def attempted(self, decision: Decision, outcome: Any) -> None:
        attempts = self._attempts
        if decision.id in attempts or len(attempts) < _MAX_PENDING_ATTEMPTS:
            attempts[decision.id] = attempts.get(decision.id, 0) + 1

    def recorded(self, decision: Decision, outcome: Any) -> None:
        attempts = self._attempts.pop(decision.id, 0) + 1
        if self.log is not None:
            self.log.log_outcome(decision, outcome, attempts)
        if self.telemetry is not None:
            self.telemetry.recorded(decision, outcome, attempts)

    def event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "reloaded":
            self.index.add(self.engine.compiled)
        if self.telemetry is not None:
            self.telemetry.event(event)

    def close(self) -> None:
        if self.shadow is not None:
            self.shadow.close()
        if self.log is not None:
            if self.owns_log:
                self.log.close()
            else:  # the app's DecisionLog, perhaps shared: write ours, leave it open
                self.log.flush()
                if self.index.describe in self.log.describers:
                    self.log.describers.remove(self.index.describe)


def attach(
    engine: Engine,
    *,
    decision_log: str | os.PathLike[str] | Callable[[dict[str, Any]], None] | DecisionLog | None,
    otel: Any,
    shadow: str | os.PathLike[str] | None,
    shadow_rate: float,
) -> Observers | None:
    """Build the observers ``Engine.from_path`` was asked for; None when there are none."""
    from policyd import telemetry as tm

    telemetry = tm.from_option(otel)
    if decision_log is None and telemetry is None and shadow is None:
        return None
    observers = Observers(engine)
    if decision_log is not None:
        if isinstance(decision_log, DecisionLog):  # may be shared by several engines
            observers.log = decision_log
            observers.owns_log = False
            decision_log.describers.append(observers.index.describe)
        else:
            observers.log = DecisionLog(decision_log, describe=observers.index.describe)
    observers.telemetry = telemetry
    if telemetry is not None and observers.log is not None:
        telemetry.watch_log(observers.log)
    if shadow is not None:
        from policyd.shadow import Shadow

        observers.shadow = Shadow(
            engine._runtime,
            engine.compiled.digest,
            shadow,
            token_counter=engine._counter,
            rate=shadow_rate,
            observers=observers,
        )
    engine.on_event(observers.event)
    return observers
