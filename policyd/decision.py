"""Decision and its parts: the immutable answer to one ``decide(request)``.

Every part is a frozen dataclass; :meth:`Decision.to_dict` is the JSON shape
that ``policyd eval --json`` prints and ``PolicyTest`` expectations address
with dotted paths. :func:`build_decision` is the engine's way to make a
``Decision``: the same object, built without the frozen ``__init__``'s cost. A
decision's ``trace`` may be held as a :class:`PendingTrace` until first read: the
entries whose text quotes a CEL error are rendered then, once (the same entries and
texts, only later).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple


class TraceEntry(NamedTuple):
    """One step of a decision: which stage, which rule, what happened and why.

    A NamedTuple rather than a dataclass: immutable all the same, and several are
    created per decision, where a tuple is the cheapest immutable record Python has.
    """

    stage: str
    rule: str | None
    outcome: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "rule": self.rule,
            "outcome": self.outcome,
            "detail": self.detail,
        }


class PendingTrace:
    """A trace not rendered yet: each item a :class:`TraceEntry` or an object whose
    ``entry()`` makes one (an entry whose text is a CEL error's, made when read)."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def render(self) -> tuple[TraceEntry, ...]:
        return tuple(i if i.__class__ is TraceEntry else i.entry() for i in self.items)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    backoff: str
    base_s: float
    max_s: float
    jitter: str
    on: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "backoff": self.backoff,
            "base_s": self.base_s,
            "max_s": self.max_s,
            "jitter": self.jitter,
            "on": list(self.on),
        }

    def delay_s(self, attempt: int, rand: float) -> float:
        """Wait before retry number ``attempt`` (1-based), ``rand`` uniform in [0, 1)."""
        if self.backoff == "none":
            return 0.0
        raw = self.base_s if self.backoff == "constant" else self.base_s * 2 ** (attempt - 1)
        capped = min(raw, self.max_s)
        if self.jitter == "full":
            return capped * rand
        if self.jitter == "equal":
            return capped / 2 + capped / 2 * rand
        return capped


@dataclass(frozen=True, slots=True)
class CacheDirective:
    ttl_s: float
    key: str | None
    namespace: str | None
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ttl_s": self.ttl_s,
            "key": self.key,
            "namespace": self.namespace,
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class PromptChoice:
    version: str
    rollout: str | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "rollout": self.rollout, "text": self.text}


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One budget as this decision saw it (amounts in USD, tokens and requests)."""

    name: str
    key: str
    state: str  # ok | warn | exceeded | downgraded | blocked | too_large | store_error | skipped
    spent_usd: float | None = None
    limit_usd: float | None = None
    remaining_usd: float | None = None
    spent_tokens: int | None = None
    limit_tokens: int | None = None
    spent_requests: int | None = None
    limit_requests: int | None = None
    reserved_usd: float | None = None
    reserved_tokens: int | None = None
    retry_after_s: float | None = None
    alerts: tuple[float, ...] = ()
    window: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "state": self.state,
            "spent_usd": self.spent_usd,
            "limit_usd": self.limit_usd,
            "remaining_usd": self.remaining_usd,
            "spent_tokens": self.spent_tokens,
            "limit_tokens": self.limit_tokens,
            "spent_requests": self.spent_requests,
            "limit_requests": self.limit_requests,
            "reserved_usd": self.reserved_usd,
            "reserved_tokens": self.reserved_tokens,
            "retry_after_s": self.retry_after_s,
            "alerts": list(self.alerts),
            "window": self.window,
        }


@dataclass(frozen=True, slots=True)
class PolicyRef:
    name: str
    version: str | None
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "digest": self.digest}


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one LLM request. Immutable; safe to share between threads."""

    allowed: bool
    blocked_by: str | None
    message: str | None
    model: str | None
    litellm_model: str | None
    tier: str | None
    fallbacks: tuple[str, ...]
    retry: RetryPolicy | None
    timeout_s: float | None
    cache: CacheDirective | None
    prompts: Mapping[str, PromptChoice]
    budgets: tuple[BudgetState, ...]
    warnings: tuple[str, ...]
    trace: tuple[TraceEntry, ...]
    policy: PolicyRef
    #: Why it was blocked (None when allowed): ``used_up``, ``too_large``, ``concurrent``
    #: or ``store_unavailable`` for a budget, ``guardrail``, ``routing``.
    reason: str | None = None
    # Not part of to_dict(): for the caller and the integrations.
    id: str = ""
    messages: tuple[Mapping[str, Any], ...] | None = None
    redacted: bool = False
    retry_after_s: float | None = None
    litellm_fallbacks: tuple[str, ...] = ()
    token_counter: str = ""
    request: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    reservation: Any = field(default=None, repr=False, compare=False)
    # The compiled policy revision that made this decision: record() and check_output()
    # use it too, so one decision sees one revision from start to end.
    revision: Any = field(default=None, repr=False, compare=False)

    @property
    def retry_after(self) -> float | None:
        return self.retry_after_s

    @property
    def timeout(self) -> float | None:
        return self.timeout_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "blocked_by": self.blocked_by,
            "reason": self.reason,
            "message": self.message,
            "model": self.model,
            "litellm_model": self.litellm_model,
            "tier": self.tier,
            "fallbacks": list(self.fallbacks),
            "retry": self.retry.to_dict() if self.retry else None,
            "timeout_s": self.timeout_s,
            "cache": self.cache.to_dict() if self.cache else None,
            "prompts": {k: v.to_dict() for k, v in self.prompts.items()},
            "budgets": [b.to_dict() for b in self.budgets],
            "warnings": list(self.warnings),
            "trace": [t.to_dict() for t in self.trace],
            "policy": self.policy.to_dict(),
        }


class _TraceSlot:
    """``Decision.trace``: the slot's value, a :class:`PendingTrace` rendered (and stored
    back) the first time it is read. Everything reads the field through here (equality,
    hash, repr, ``to_dict()``, pickling, ``dataclasses.replace``), so a decision built
    with a pending trace is indistinguishable from one built with the tuple."""

    __slots__ = ("slot",)

    def __init__(self, slot: Any) -> None:
        self.slot = slot

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = self.slot.__get__(obj, owner)
        if value.__class__ is PendingTrace:
            value = value.render()
            self.slot.__set__(obj, value)  # two threads may both render: equal tuples
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        self.slot.__set__(obj, value)

    def __delete__(self, obj: Any) -> None:
        self.slot.__delete__(obj)


setattr(Decision, "trace", _TraceSlot(Decision.__dict__["trace"]))  # noqa: B010


def _decision_builder() -> Callable[..., Decision]:
    """``build(allowed, blocked_by, ..., revision)``: a :class:`Decision` from every field's
    value, positionally in field order, as ``Decision(...)`` makes it.

    A frozen dataclass's ``__init__`` sets each of its 24 fields through
    ``object.__setattr__`` (about 5 µs a decision). This fills the same slots through a
    twin class of identical layout with plain attribute stores, then gives the object
    its real class (``__class__`` assignment between classes of the same slots): what
    comes out is an ordinary ``Decision``, frozen, equal to and indistinguishable from
    one made by ``Decision(...)`` (tests/engine/test_decision_build.py checks it).
    """
    names = tuple(f.name for f in fields(Decision))
    open_twin = type("_OpenDecision", (), {"__slots__": Decision.__slots__})
    body = "".join(f"    self.{name} = {name}\n" for name in names)
    source = (
        f"def build({', '.join(names)}):\n"
        "    self = _new(_Open)\n"
        f"{body}"
        "    self.__class__ = _Decision\n"
        "    return self\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_Open": open_twin, "_Decision": Decision}
    exec(compile(source, "<policyd.decision.build_decision>", "exec"), namespace)
    build: Callable[..., Decision] = namespace["build"]
    return build


#: ``build_decision(allowed, blocked_by, message, model, litellm_model, tier, fallbacks,
#: retry, timeout_s, cache, prompts, budgets, warnings, trace, policy, reason, id, messages,
#: redacted, retry_after_s, litellm_fallbacks, token_counter, request, reservation,
#: revision)``: every field, positionally (see :func:`_decision_builder`).
build_decision = _decision_builder()
