"""What every stage shares: the per-request state, the stage protocol, the runtime.

``DecisionState`` is the mutable scratch of one ``decide()`` call; stages read
the request from it and write their part of the answer. ``Runtime`` holds what
outlives a policy revision (clock, store, cooldown counters, event callbacks),
so a hot reload keeps budgets and cooldowns. ``CompileEnv`` is what a stage's
compiler gets: the validated policy, its resolved models and CEL expressions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from policyd import cel
from policyd.decision import (
    BudgetState,
    CacheDirective,
    Decision,
    PromptChoice,
    RetryPolicy,
    TraceEntry,
    build_decision,
)
from policyd.prices import ModelInfo
from policyd.stages.flow import Flow
from policyd.stores.base import Store
from policyd.validate import PolicyContext

log = logging.getLogger("policyd")
_new_tuple = tuple.__new__
Path = tuple[str | int, ...]


class DecisionState:
    """Mutable scratch for one decision; turned into a frozen Decision at the end.

    Fields a stage may leave unset are class-level defaults, so starting a decision
    sets only what every decision has (it runs once per request, on the hot path).
    Stages that fill a collection assign a new one; the class defaults are never
    mutated.
    """

    blocked_by: str | None = None
    reason: str | None = None
    message: str | None = None
    retry_after_s: float | None = None
    messages: list[Any] | None = None
    redacted = False
    tier: str | None = None
    model: str | None = None
    litellm_model: str | None = None
    fallbacks: tuple[str, ...] = ()
    litellm_fallbacks: tuple[str, ...] = ()
    forced_tier: str | None = None
    retry: RetryPolicy | None = None
    timeout_s: float | None = None
    cache: CacheDirective | None = None
    budgets: list[BudgetState] | tuple[BudgetState, ...] = ()
    reservation: Any = None

    def __init__(
        self,
        request: dict[str, Any],
        now: datetime,
        decision_id: str,
        token_counter: str,
    ) -> None:
        self.request = request
        self.now = now
        self.activation: dict[str, Any] = {"request": request, "now": now}
        self.decision_id = decision_id
        self.token_counter = token_counter
        self.trace: list[TraceEntry] = []
        self.warnings: list[str] = []
        self.prompts: dict[str, PromptChoice] = {}

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None

    def note(self, stage: str, rule: str | None, outcome: str, detail: str = "") -> None:
        # TraceEntry(stage, rule, outcome, detail) without the NamedTuple's Python __new__
        self.trace.append(_new_tuple(TraceEntry, (stage, rule, outcome, detail)))

    def block(
        self,
        stage: str,
        rule: str,
        message: str,
        detail: str = "",
        retry_after_s: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.blocked_by = rule
        self.reason = reason or _STAGE_REASONS.get(stage, stage)
        self.message = message
        self.retry_after_s = retry_after_s
        self.note(stage, rule, "block", detail or message)

    def warn(self, stage: str, rule: str, message: str) -> None:
        self.warnings.append(f"{rule}: {message}")
        self.note(stage, rule, "warn", message)


#: ``Decision.reason`` of a block that names no finer reason: the stage's kind.
_STAGE_REASONS = {"guardrails": "guardrail"}


@dataclass(frozen=True)
class Outcome:
    """What the app reports after the call a decision led to (see Engine.record)."""

    model: str | None
    error: str | None
    latency_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    at: datetime


#: Fields of DecisionState any stage may change: through note() and warn() (trace,
#: warnings) and block() (blocked_by, reason, message, retry_after_s). Beyond them a stage
#: changes only the fields its ``writes`` names.
ALWAYS_WRITTEN = frozenset(
    {"trace", "warnings", "blocked_by", "reason", "message", "retry_after_s"}
)


class Stage(Protocol):
    """One step of a decision, compiled from one section of a policy (docs/architecture.md).

    A stage is built once per revision by its builder in :data:`policyd.pipeline.STAGES`,
    with everything it depends on (the runtime, another stage) passed to its constructor,
    and is immutable afterwards: one object serves every thread. It reads the request
    and what earlier stages wrote from the :class:`DecisionState`, and writes only the
    fields its ``writes`` names (and those of :data:`ALWAYS_WRITTEN`). It does its work in
    ``run`` when it needs no I/O (:class:`PureStage`), else in ``flow`` (:class:`IoStage`),
    and may take part in ``Engine.record`` (:class:`AttemptHook`, :class:`SettleHook`).
    The pipeline reads which of these a stage is once, when a policy is compiled.
    """

    name: str
    writes: frozenset[str]


@runtime_checkable
class PureStage(Stage, Protocol):
    """A stage without I/O: ``decide`` and ``adecide`` both call ``run``."""

    def run(self, state: DecisionState) -> None: ...


@runtime_checkable
class IoStage(Stage, Protocol):
    """A stage with I/O (a store, a plugin): a flow that yields each call it needs, made
    blocking by ``decide`` and awaited by ``adecide`` (:mod:`policyd.stages.flow`)."""

    def flow(self, state: DecisionState) -> Flow[None]: ...


@runtime_checkable
class AttemptHook(Protocol):
    """Told of every try of a model (``Engine.record_attempt``, and the last try reported
    by ``Engine.record``); no I/O (routing feeds its cooldowns)."""

    def attempt(self, decision: Decision, outcome: Outcome) -> None: ...


@runtime_checkable
class SettleHook(Protocol):
    """Told once what the call a decision led to cost (``Engine.record``), as a flow
    (budgets settle their reservation in the store)."""

    def settle(self, decision: Decision, outcome: Outcome) -> Flow[None]: ...


def evaluate(expr: cel.Expression, state: DecisionState) -> tuple[Any, str | None]:
    """(value, None) or (None, error text); CEL errors never escape a stage."""
    try:
        return expr.evaluate(state.activation), None
    except cel.EvaluationError as exc:
        return None, str(exc)
    except RecursionError:
        return None, "expression too deep to evaluate"


def matches(expr: cel.Expression, state: DecisionState) -> tuple[bool, str | None]:
    """A condition's outcome: (True|False, None), or (False, why) when it errored."""
    try:  # evaluate(expr, state), inlined: a condition runs ~12 times a decision
        value = expr.evaluate(state.activation)
    except cel.EvaluationError as exc:
        return False, str(exc)
    except RecursionError:
        return False, "expression too deep to evaluate"
    if value is True:
        return True, None
    if value is False:
        return False, None
    return False, f"condition gave {type(value).__name__}, not bool"


class Cooldowns:
    """Consecutive failures per model; a model is skipped for a while after too many.

    Times are the engine clock's (seconds since the epoch), so tests can inject them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._latest = 0.0  # the latest end of any cooldown

    def active(self, now: float) -> bool:
        """True while any model is cooling down (one comparison on the hot path)."""
        return now < self._latest

    def cooling(self, model: str, now: float) -> bool:
        until = self._until.get(model)
        return until is not None and now < until

    def report(self, model: str, failed: bool, after: int, seconds: float, now: float) -> bool:
        """Record one outcome; True when this failure starts a cooldown."""
        with self._lock:
            if not failed:
                self._failures.pop(model, None)
                return False
            count = self._failures.get(model, 0) + 1
            self._failures[model] = count
            if count >= after:
                self._failures[model] = 0
                self._until[model] = now + seconds
                self._latest = max(self._latest, now + seconds)
                return True
            return False


EventCallback = Callable[[dict[str, Any]], None]


#: Event fields that hold a request value (a budget's key: a tenant id, an e-mail):
#: callbacks get them (an alert must say whose budget), the log record does not.
REQUEST_VALUE_FIELDS = frozenset({"key"})


class Runtime:
    """State that outlives one policy revision; shared by every stage of every revision."""

    def __init__(self, clock: Callable[[], datetime], store: Store) -> None:
        self.clock = clock
        self.store = store
        self.reservation_ttl_s: float | None = None  # None: the decision's timeout + margin
        self.estimate_refresh_s: float | None = None  # None: learned estimates' default
        self.outputs: Any = None  # policyd.budgets.learned.LearnedOutputs, made on first use
        self.cooldowns = Cooldowns()
        self._callbacks: list[EventCallback] = []

    def on_event(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    def emit(self, event: dict[str, Any]) -> None:
        """Log the event (without the request values it holds) and pass it to callbacks."""
        logged = {k: v for k, v in event.items() if k not in REQUEST_VALUE_FIELDS}
        log.info("policyd event %s", event.get("type"), extra={"policyd_event": logged})
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:  # a broken callback must not break decisions
                log.exception("policyd event callback failed")


@dataclass
class CompileEnv:
    """Everything a stage compiler may read."""

    ctx: PolicyContext
    models: Mapping[str, ModelInfo]
    runtime: Runtime
    policy_name: str
    expressions: Mapping[Path, cel.Expression] = field(default_factory=dict)

    def expr(self, *path: str | int) -> cel.Expression:
        return self.ctx.expressions[tuple(path)]

    def optional_expr(self, *path: str | int) -> cel.Expression | None:
        return self.ctx.expressions.get(tuple(path))


_NO_PROMPTS: Mapping[str, PromptChoice] = MappingProxyType({})


def finish(state: DecisionState, ref: Any, revision: Any = None) -> Decision:
    """Freeze a state into a Decision (``revision``: the compiled policy that made it)."""
    allowed = state.blocked_by is None  # a blocked decision names no model, tier, cache...
    return build_decision(  # every field, positionally in field order
        allowed,
        state.blocked_by,
        state.message,
        state.model if allowed else None,
        state.litellm_model if allowed else None,
        state.tier if allowed else None,
        state.fallbacks if allowed else (),
        state.retry if allowed else None,
        state.timeout_s if allowed else None,
        state.cache if allowed else None,
        MappingProxyType(state.prompts) if allowed else _NO_PROMPTS,
        tuple(state.budgets),
        tuple(state.warnings),
        tuple(state.trace),
        ref,  # policy
        state.reason,
        state.decision_id,  # id
        tuple(state.messages) if state.messages is not None else None,
        state.redacted,
        state.retry_after_s,
        state.litellm_fallbacks if allowed else (),
        state.token_counter,
        state.request,
        state.reservation,
        revision,
    )
