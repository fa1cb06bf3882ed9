"""Engine: holds the current compiled revision and answers ``decide(request)``.

A decision reads the current :class:`CompiledBundle` reference once and runs
that revision's stages start to end, so a concurrent reload (one reference
swap) never mixes revisions. State that must survive reloads — store,
cooldowns, event callbacks — lives in the :class:`Runtime`.
"""

from __future__ import annotations

import inspect
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policyd.bundle import load_bundle
from policyd.compile import CompiledBundle, CompiledPolicy, compile_bundle
from policyd.decision import Decision
from policyd.diagnostics import Diagnostic, PolicyError
from policyd.request import TokenCounter
from policyd.stages.base import DecisionState, EventCallback, Outcome, Runtime, finish
from policyd.stages.output import OutputVerdict


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Status:
    """What an operator asks a running engine: which revision, and what went wrong last."""

    path: str
    revision: str
    policies: tuple[str, ...]
    loaded_at: datetime
    reloads: int
    rejected: int
    last_error_at: datetime | None
    last_error: tuple[Diagnostic, ...]
    watching: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "revision": self.revision,
            "policies": list(self.policies),
            "loaded_at": self.loaded_at.isoformat(),
            "reloads": self.reloads,
            "rejected": self.rejected,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "last_error": [d.to_dict() for d in self.last_error],
            "watching": self.watching,
        }


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
        self._last_error_at: datetime | None = None
        self._watcher: Any = None

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
        **store_options: Any,
    ) -> Engine:
        """Load, validate and compile a bundle; raises PolicyError with every diagnostic.

        ``store`` is ``None``/``"memory"`` (one process) or a ``redis://`` URL (shared).
        ``token_counter`` is ``"estimate"`` (default, offline) or ``"tiktoken"``.
        """
        runtime = Runtime(clock or utc_now, _open_store(store, **store_options))
        counter = TokenCounter(token_counter)
        bundle = load_bundle(path)
        compiled = compile_bundle(bundle, runtime, token_counter=counter)
        engine = cls(compiled, runtime, os.fspath(path), counter)
        if watch:
            engine.start_watching_thread()
        return engine

    # -- deciding ---------------------------------------------------------------------------

    def _start(self, policy: CompiledPolicy, request: Any) -> DecisionState:
        prepared = policy.shape.prepare(request)
        return DecisionState(prepared, self._runtime.clock(), uuid.uuid4().hex, self._counter.name)

    def decide(self, request: Mapping[str, Any], policy: str | None = None) -> Decision:
        """Decide one request. Raises RequestError for a malformed request or policy name."""
        compiled = self._current.policy(policy)
        state = self._start(compiled, request)
        for stage in compiled.stages:
            stage.run(state)
            if state.blocked_by is not None:
                break
        return finish(state, compiled.ref)

    async def adecide(self, request: Mapping[str, Any], policy: str | None = None) -> Decision:
        """Like decide(), with store I/O awaited instead of blocking the event loop."""
        compiled = self._current.policy(policy)
        state = self._start(compiled, request)
        for stage in compiled.stages:
            arun = getattr(stage, "arun", None)
            if arun is not None:
                await arun(state)
            else:
                stage.run(state)
            if state.blocked_by is not None:
                break
        return finish(state, compiled.ref)

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
        (``error`` marks a failure of ``model``, default the decided model).
        """
        outcome = self._outcome(
            decision, input_tokens, output_tokens, cost_usd, error, latency_s, model
        )
        for stage in self._stages_for(decision):
            hook = getattr(stage, "record", None)
            if hook is not None:
                hook(decision, outcome)

    async def arecord(self, decision: Decision, **kwargs: Any) -> None:
        """Like record(), with store I/O awaited."""
        outcome = self._outcome(
            decision,
            kwargs.get("input_tokens"),
            kwargs.get("output_tokens"),
            kwargs.get("cost_usd"),
            kwargs.get("error"),
            kwargs.get("latency_s"),
            kwargs.get("model"),
        )
        for stage in self._stages_for(decision):
            hook = getattr(stage, "arecord", None) or getattr(stage, "record", None)
            if hook is None:
                continue
            result = hook(decision, outcome)
            if inspect.isawaitable(result):
                await result

    def _outcome(
        self,
        decision: Decision,
        input_tokens: int | None,
        output_tokens: int | None,
        cost_usd: float | None,
        error: BaseException | str | None,
        latency_s: float | None,
        model: str | None,
    ) -> Outcome:
        if error is not None and not isinstance(error, str):
            error = f"{type(error).__name__}: {error}"
        return Outcome(
            model=model or decision.model,
            error=error,
            latency_s=latency_s,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            at=self._runtime.clock(),
        )

    def _stages_for(self, decision: Decision) -> tuple[Any, ...]:
        compiled = self._current.policies.get(decision.policy.name)
        return compiled.stages if compiled is not None else ()

    # -- output guardrails -------------------------------------------------------------------

    def check_output(self, decision: Decision, text: str) -> OutputVerdict:
        """Run the policy's output guardrails on a model's answer to ``decision``."""
        compiled = self._current.policies.get(decision.policy.name)
        if compiled is None or compiled.output_guardrails is None:
            return OutputVerdict(True, text)
        return compiled.output_guardrails.check(decision, text, self._runtime.clock())

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
        return Status(
            path=self._path,
            revision=current.digest,
            policies=tuple(current.policies),
            loaded_at=current.loaded_at,
            reloads=self._reloads,
            rejected=self._rejected,
            last_error_at=self._last_error_at,
            last_error=self._last_error,
            watching=self._watcher is not None,
        )

    def reload(self) -> bool:
        """Load the bundle again; swap to it when valid and changed.

        Returns True when a new revision went live. A broken bundle is rejected: the
        current revision keeps serving and ``status()`` shows why.
        """
        with self._reload_lock:
            bundle = load_bundle(self._path)
            if bundle.digest == self._current.digest and bundle.ok:
                return False
            try:
                compiled = compile_bundle(bundle, self._runtime, token_counter=self._counter)
            except PolicyError as exc:
                self._rejected += 1
                self._last_error = tuple(exc.diagnostics)
                self._last_error_at = self._runtime.clock()
                self._runtime.emit(
                    {
                        "type": "reload_rejected",
                        "path": self._path,
                        "errors": [d.to_dict() for d in exc.diagnostics if d.is_error],
                    }
                )
                return False
            previous = self._current
            self._current = compiled
            self._reloads += 1
            self._runtime.emit(
                {
                    "type": "reloaded",
                    "path": self._path,
                    "revision": compiled.digest,
                    "previous": previous.digest,
                    "policies": {n: p.ref.to_dict() for n, p in compiled.policies.items()},
                }
            )
            return True

    def start_watching_thread(self) -> None:
        from policyd.reload import Watcher

        if self._watcher is None:
            self._watcher = Watcher(self._path, self.reload)
            self._watcher.start()

    def close(self) -> None:
        """Stop the watcher and close the store."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        close = getattr(self._runtime.store, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_store(store: Any, **options: Any) -> Any:
    if store is None or store == "memory":
        try:
            from policyd.stores import open_store
        except ImportError:
            return None
        return open_store(store, **options)
    from policyd.stores import open_store

    return open_store(store, **options)
