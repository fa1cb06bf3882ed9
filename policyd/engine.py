"""Engine: holds the current compiled revision and answers ``decide(request)``.

A decision reads the current :class:`CompiledBundle` reference once and runs
that revision's stages start to end, so a concurrent reload (one reference
swap) never mixes revisions. State that must survive reloads — store,
cooldowns, event callbacks — lives in the :class:`Runtime`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, overload

from policyd.budgets.usage import BudgetUsage, abudget_usage, budget_usage
from policyd.bundle import load_bundle
from policyd.compile import CompiledBundle, CompiledPolicy, compile_bundle
from policyd.deciding import (
    decision_flow,
    outcome_of,
    record_attempt,
    record_flow,
    run_steps,
    start,
)
from policyd.decision import Decision
from policyd.diagnostics import Diagnostic
from policyd.request import TokenCounter
from policyd.stages.base import DecisionState, EventCallback, Outcome, Runtime
from policyd.stages.flow import adrive, drive
from policyd.stages.output import OutputChecker, OutputVerdict
from policyd.status import Status as Status
from policyd.stores.base import Store

log = logging.getLogger("policyd")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """The policy decision engine. Thread-safe; one per process is typical."""

    def __init__(
        self,
        compiled: CompiledBundle,
        runtime: Runtime,
        path: str,
        token_counter: TokenCounter,
    ) -> None:
        self._current = compiled
        self._runtime = runtime
        self._path = path
        self._counter = token_counter
        self._reload_lock = threading.Lock()
        self._reloads = 0
        self._rejected = 0
        self._last_error: tuple[Diagnostic, ...] = ()
        self._rejected_revision: str | None = None  # files on disk that were rejected
        self._last_error_at: datetime | None = None
        self._watcher: Any = None
        self._observer: Any = None  # policyd.observers.Observers when logging/tracing/shadowing

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], datetime] | None = None,
        store: Any = None,
        token_counter: str = "estimate",
        watch: bool = False,
        debounce_ms: int = 200,
        reservation_ttl_s: float | None = None,
        estimate_refresh_s: float | None = None,
        decision_log: Any = None,
        otel: Any = None,
        shadow: str | os.PathLike[str] | None = None,
        shadow_rate: float = 1.0,
        **store_options: Any,
    ) -> Engine:
        """Load, validate and compile a bundle; raises PolicyError with every diagnostic.

        ``store`` is ``None``/``"memory"`` (one process) or a ``redis://`` URL (shared).
        ``token_counter`` is ``"estimate"`` (default, offline) or ``"tiktoken"``.
        ``watch=True`` hot-reloads the bundle when its files change (10 ms after a rename,
        ``debounce_ms`` after other changes). ``reservation_ttl_s`` is how long a budget reservation
        that is never settled keeps counting (default: the decision's timeout, 600 s
        without one, times its tries, plus backoff waits and 60 s); ``estimate_refresh_s``
        how often learned reservations (``{estimate: p95}``) exchange counts with the
        store (default 10). Other keyword arguments go to the store (``key_prefix``, ...).

        ``decision_log`` (path or callable), ``otel`` (None: on with an SDK provider) and
        ``shadow``/``shadow_rate`` (a candidate bundle): see docs/observability.md.
        """
        runtime = Runtime(clock or utc_now, _open_store(store, **store_options))
        runtime.reservation_ttl_s = reservation_ttl_s
        runtime.estimate_refresh_s = estimate_refresh_s
        counter = TokenCounter(token_counter)
        bundle = load_bundle(path)
        compiled = compile_bundle(bundle, runtime, token_counter=counter)
        engine = cls(compiled, runtime, os.fspath(path), counter)
        from policyd.observers import attach

        engine._observer = attach(
            engine, decision_log=decision_log, otel=otel, shadow=shadow, shadow_rate=shadow_rate
        )
        if watch:
            engine.start_watching(debounce_ms=debounce_ms)
        return engine

    # -- deciding ---------------------------------------------------------------------------

    def decide(self, request: Mapping[str, Any], policy: str | None = None) -> Decision:
        """Decide one request. Raises RequestError for a malformed request or policy name."""
        fused = self._current.policy(policy).fused
        if fused is not None:  # the steps written out as one function (policyd.fused)
            observer = self._observer
            if observer is None:
                return fused(request, self._counter.name)[0]
            started = time.perf_counter_ns()
            decision, now = fused(request, self._counter.name)
            observer.decided(decision, now, started)
            return decision
        compiled, state, started = self._open(request, policy)
        return self._decided(run_steps(compiled, state), state, started)

    async def adecide(self, request: Mapping[str, Any], policy: str | None = None) -> Decision:
        """Like decide(), with store I/O awaited instead of blocking the event loop."""
        compiled, state, started = self._open(request, policy)
        return self._decided(await adrive(decision_flow(compiled, state)), state, started)

    def _open(
        self, request: Mapping[str, Any], policy: str | None
    ) -> tuple[CompiledPolicy, DecisionState, int]:
        """The serving revision's policy, a started decision, and when it started (timed
        only for observers: decision log, telemetry, shadow)."""
        compiled = self._current.policy(policy)
        started = time.perf_counter_ns() if self._observer is not None else 0
        return compiled, start(compiled, self._runtime, self._counter, request), started

    def _decided(self, decision: Decision, state: DecisionState, started: int) -> Decision:
        observer = self._observer
        if observer is not None:
            observer.decided(decision, state.now, started)
        return decision

    # -- outcomes ---------------------------------------------------------------------------

    def record(
        self,
        decision: Decision,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        error: BaseException | str | None = None,
        latency_s: float | None = None,
        model: str | None = None,
    ) -> None:
        """Report what happened on the call a decision led to.

        Settles budget reservations (actual tokens and cost) and feeds cooldowns
        (``error`` marks a failure of ``model``, default the decided model). A figure
        no store can count (negative, NaN, infinite, too large) raises OutcomeError
        naming it, after the reservation was settled as if no figures were reported.
        """
        outcome, problem = outcome_of(
            decision, self._runtime, input_tokens, output_tokens, cost_usd, error, latency_s, model
        )
        drive(record_flow(self._compiled_for(decision), decision, outcome))
        self._recorded(decision, outcome, problem)

    async def arecord(
        self,
        decision: Decision,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        error: BaseException | str | None = None,
        latency_s: float | None = None,
        model: str | None = None,
    ) -> None:
        """Like record(), with store I/O awaited."""
        outcome, problem = outcome_of(
            decision, self._runtime, input_tokens, output_tokens, cost_usd, error, latency_s, model
        )
        await adrive(record_flow(self._compiled_for(decision), decision, outcome))
        self._recorded(decision, outcome, problem)

    def _recorded(self, decision: Decision, outcome: Outcome, problem: Exception | None) -> None:
        if self._observer is not None:
            self._observer.recorded(decision, outcome)
        if problem is not None:
            raise problem

    def record_attempt(
        self,
        decision: Decision,
        *,
        model: str,
        error: BaseException | str | None = None,
        latency_s: float | None = None,
    ) -> None:
        """Report one try of ``model`` within a call (e.g. a failed try before a fallback).

        Feeds cooldowns only; budgets settle once per decision, with ``record()``.
        """
        outcome, _ = outcome_of(decision, self._runtime, None, None, None, error, latency_s, model)
        record_attempt(self._compiled_for(decision), decision, outcome)
        if self._observer is not None:
            self._observer.attempted(decision, outcome)

    def _compiled_for(self, decision: Decision) -> CompiledPolicy | None:
        """The revision that made ``decision`` (one revision from decide to record),
        else the serving revision's policy of that name."""
        made_by = decision.revision
        if isinstance(made_by, CompiledPolicy):
            return made_by
        return self._current.policies.get(decision.policy.name)

    # -- budgets -----------------------------------------------------------------------------

    def usage(self, policy: str | None, budget: str, key: str) -> BudgetUsage:
        """Spent, reserved, limit, reset time and fired alerts of one budget × key now.

        Read-only (no reservation, no alert). Raises RequestError for an unknown policy,
        UnknownBudget for an unknown budget, StoreUnavailable when the store is down.
        """
        compiled = self._current.policy(policy)
        return budget_usage(compiled, self._runtime.store, budget, key, self._runtime.clock())

    async def ausage(self, policy: str | None, budget: str, key: str) -> BudgetUsage:
        """Like usage(), with store I/O awaited."""
        compiled = self._current.policy(policy)
        store, now = self._runtime.store, self._runtime.clock()
        return await abudget_usage(compiled, store, budget, key, now)

    # -- output guardrails -------------------------------------------------------------------

    def check_output(self, decision: Decision, text: str) -> OutputVerdict:
        """Run the policy's output guardrails on a model's answer to ``decision``."""
        compiled = self._compiled_for(decision)
        if compiled is None or compiled.output_guardrails is None:
            return OutputVerdict(True, text)
        return compiled.output_guardrails.check(decision, text, self._runtime.clock())

    def output_checker(self, decision: Decision, *, overlap: int = 4096) -> OutputChecker:
        """Check a streamed answer to ``decision`` chunk by chunk.

        ``checker.feed(chunk)`` and, at the end, ``checker.finish()`` each return an
        OutputStep: the text safe to show so far (redacted where a guardrail redacts) and
        whether the answer is still allowed. Joined, the released text is exactly what
        ``check_output`` returns for the whole answer, whatever the chunking; text is held
        back only as far as a match could still reach (docs/guardrails.md). ``overlap`` only
        bounds custom positional checks.
        """
        compiled = self._compiled_for(decision)
        guards = compiled.output_guardrails if compiled is not None else None
        if guards is None:
            return OutputChecker((), decision, self._runtime.clock(), overlap)
        return guards.open_stream(decision, self._runtime.clock(), overlap)

    # -- events, status, reload ---------------------------------------------------------------

    def on_event(self, callback: EventCallback) -> None:
        """Call ``callback(event_dict)`` on alerts, cooldowns, reloads and rejections."""
        self._runtime.on_event(callback)

    @property
    def policies(self) -> tuple[str, ...]:
        return tuple(self._current.policies)

    def policy_ref(self, name: str | None = None) -> Any:
        return self._current.policy(name).ref

    @property
    def compiled(self) -> CompiledBundle:
        """The revision serving now (read once per decision)."""
        return self._current

    def status(self) -> Status:
        current = self._current
        watcher = self._watcher
        return Status(
            path=self._path,
            revision=current.digest,
            policies=tuple(current.policies),
            loaded_at=current.loaded_at,
            reloads=self._reloads,
            rejected=self._rejected,
            last_error_at=self._last_error_at,
            last_error=self._last_error,
            watching=watcher is not None and watcher.running,
            rejected_revision=self._rejected_revision,
            watch_error=watcher.error if watcher is not None else None,
        )

    def reload(self) -> bool:
        """Load, validate and compile the bundle again; swap to it when good and changed.

        Returns True when a new revision went live (a ``reloaded`` event says what
        changed). A broken revision, or one whose tests fail while a policy sets
        ``reload.require_tests``, is rejected: the current revision keeps serving, and
        ``status()``, the log and a ``reload_rejected`` event say why. Content identical
        to the serving revision is no new revision. Safe to call from any thread.
        """
        from policyd.reload.build import Rejected, Unchanged, build_revision

        with self._reload_lock:
            started = time.perf_counter()
            current = self._current
            built = build_revision(self._path, current, self._runtime, self._counter)
            if isinstance(built, Unchanged):
                if self._rejected_revision is not None:
                    self._rejected_revision = None
                    self._runtime.emit(
                        {"type": "reload_recovered", "path": self._path, "revision": current.digest}
                    )
                return False
            if isinstance(built, Rejected):
                self._reject(current, built.digest, built.errors)
                return False
            self._go_live(current, built.compiled, started)
            return True

    def _reject(
        self, current: CompiledBundle, digest: str | None, errors: tuple[Diagnostic, ...]
    ) -> None:
        """Record a rejected revision (once per distinct broken files): status, log, event."""
        if (digest, errors) == (self._rejected_revision, self._last_error):
            return  # the same broken files again: already reported
        self._rejected += 1
        self._rejected_revision = digest
        self._last_error = errors
        self._last_error_at = at = self._runtime.clock()
        log.warning(
            "policyd: rejected a new revision of %s; still serving %s:\n%s",
            self._path,
            current.digest[:12],
            "\n".join(str(d) for d in errors),
        )
        self._runtime.emit(
            {
                "type": "reload_rejected",
                "path": self._path,
                "revision": digest,
                "serving": current.digest,
                "at": at.isoformat(),
                "errors": [d.to_dict() for d in errors],
            }
        )

    def _go_live(
        self, current: CompiledBundle, compiled: CompiledBundle, started: float, **extra: str
    ) -> None:
        """Swap to ``compiled`` (one reference assignment); log and emit what changed.

        The status is updated before the swap, so whoever sees the new revision serving
        also sees it counted; the event follows the swap."""
        from policyd.reload.revisions import went_live

        self._reloads += 1
        self._rejected_revision = None
        self._current = compiled
        took_ms = (time.perf_counter() - started) * 1000
        self._runtime.emit(went_live(self._path, current, compiled, took_ms, extra))

    def start_watching(self, *, debounce_ms: int = 200, force_polling: bool | None = None) -> None:
        """Reload on every settled burst of file changes, from a daemon thread.

        Returns once the file system watches are in place. ``debounce_ms`` is the quiet
        time after a change deleted or written in place (renames settle after 10 ms, and
        on Linux in-place writes whose writers closed the files 50 ms after the close).
        asyncio apps use :meth:`astart_watching`.
        """
        from policyd.reload.revisions import prompt_files
        from policyd.reload.watcher import Watcher

        if self._watcher is None:
            self._watcher = Watcher(
                self._path,
                self.reload,
                debounce_ms=debounce_ms,
                prompt_paths=lambda: prompt_files(self._current),
                force_polling=force_polling,
            )
            self._watcher.start()

    async def astart_watching(
        self, *, debounce_ms: int = 200, force_polling: bool | None = None
    ) -> None:
        """Like start_watching(), without blocking the event loop while the watches are
        set up. Reloads still compile in the watcher thread, never on the loop."""
        import asyncio

        await asyncio.to_thread(
            self.start_watching, debounce_ms=debounce_ms, force_polling=force_polling
        )

    def start_watching_thread(
        self, *, debounce_ms: int = 200, force_polling: bool | None = None
    ) -> None:
        """Deprecated (0.1.0's name): :meth:`start_watching`."""
        import warnings

        warnings.warn(
            "Engine.start_watching_thread() is now Engine.start_watching() "
            "(and the async form Engine.astart_watching())",
            DeprecationWarning,
            stacklevel=2,
        )
        self.start_watching(debounce_ms=debounce_ms, force_polling=force_polling)

    def stop_watching(self) -> None:
        """Stop the file watcher (within about 50 ms); the current revision keeps serving."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def install_sighup_handler(self) -> None:
        """Reload on SIGHUP (``kill -HUP <pid>``). Call from the main thread; undone by close()."""
        from policyd.reload.control import install_sighup

        if getattr(self, "_sighup_undo", None) is None:
            self._sighup_undo: Callable[[], None] | None = install_sighup(self)

    def promote_shadow(self) -> bool:
        """Make the shadow candidate the live revision (see docs/observability.md): it is
        compiled again on the live runtime and swapped in like a reload, and from then on
        reloads and the watcher follow its path. False when there is no shadow."""
        shadow = self._observer.shadow if self._observer is not None else None
        if shadow is None:
            return False
        started = time.perf_counter()
        compiled = shadow.compile_for_live()
        with self._reload_lock:
            self._observer.shadow = None
            self._path = shadow.path
            self._go_live(self._current, compiled, started, promoted="shadow")
        if self._watcher is not None:
            self.stop_watching()
            self.start_watching()
        return True

    @overload
    def shadow_report(
        self, top: int = 10, *, text: Literal[False] = False, wait_s: float = 0.0
    ) -> dict[str, Any] | None: ...
    @overload
    def shadow_report(
        self, top: int = 10, *, text: Literal[True], wait_s: float = 0.0
    ) -> str | None: ...
    def shadow_report(
        self, top: int = 10, *, text: bool = False, wait_s: float = 0.0
    ) -> dict[str, Any] | str | None:
        """What the shadow candidate decided differently so far (None without a shadow): a
        dict of counts and the ``top`` changes, or with ``text=True`` the report as ``policyd
        diff`` prints it. ``wait_s`` waits up to that long for the comparisons queued so far."""
        shadow = self._observer.shadow if self._observer is not None else None
        if shadow is None:
            return None
        if wait_s > 0:
            shadow.flush(wait_s)
        return shadow.text(top) if text else shadow.summary(top)

    def close(self) -> None:
        """Stop the watcher, remove the SIGHUP handler, flush the decision log, close the store."""
        self.stop_watching()
        if self._observer is not None:
            self._observer.close()
        undo = getattr(self, "_sighup_undo", None)
        if undo is not None:
            self._sighup_undo = None
            undo()
        self._runtime.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_store(store: Any, **options: Any) -> Store:
    from policyd.stores import open_store

    return open_store(store, **options)
