"""What the generated decide functions of :mod:`policyd.fused` call at decide time.

A condition's error kept unrendered (:class:`Err`) and the trace entry quoting it
(:class:`Later`, rendered when ``Decision.trace`` is first read), a guardrail's block as
``finish`` freezes it, a prompt template rendered as the prompts stage does, and the
hand-over to the steps for the slow paths (a request some model cannot hold, cooldowns).
Each says which stage code it stands for; the texts are that code's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any

from policyd import cel
from policyd.cel.runtime import to_eval_error
from policyd.decision import Decision, PendingTrace, PromptChoice, TraceEntry, build_decision
from policyd.stages.base import _STAGE_REASONS, DecisionState, finish
from policyd.stages.prompts import Template

CAUGHT = (cel.EvaluationError, RecursionError)  # what stages.base.matches() catches
ENCODE = json.JSONEncoder(  # json.dumps with stages.cache.cache_key's arguments, built once
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
NO_PROMPTS: Any = MappingProxyType({})
_GUARDRAIL = _STAGE_REASONS["guardrails"]  # Decision.reason of a guardrail's block


class Err:
    """A condition's error, its text made only when read: ``matches()``'s words."""

    __slots__ = ("exc", "fixed", "names")

    def __init__(
        self, exc: BaseException | None, names: frozenset[str] | None = None, fixed: str = ""
    ) -> None:
        if exc is not None:
            exc.__traceback__ = None  # hold no frame of the decision
        self.exc, self.names, self.fixed = exc, names, fixed

    def text(self) -> str:
        exc = self.exc
        if exc is None:
            return self.fixed
        if self.names is not None:  # raised by inlined code: converted as its function does
            return str(to_eval_error(exc, self.names))
        if isinstance(exc, RecursionError):
            return "expression too deep to evaluate"
        return str(exc)


def not_bool(value: Any) -> Err:
    return value if value.__class__ is Err else Err(None, None, _not_bool_text(value))


def _not_bool_text(value: Any) -> str:
    return f"condition gave {type(value).__name__}, not bool"


def rerun(evaluate: Callable[[Any], Any], activation: Any) -> Any:
    """An inlined condition raised: its own function decides (CEL's absorbing ``&&``/``||``)."""
    try:
        return evaluate(activation)
    except CAUGHT as exc:
        return Err(exc)


class Later:
    """A trace entry whose detail quotes an error: ``before + error text + after``."""

    __slots__ = ("after", "before", "err", "outcome", "rule", "stage")

    def __init__(
        self, stage: str, rule: str | None, outcome: str, before: str, err: Err, after: str
    ) -> None:
        self.stage, self.rule, self.outcome = stage, rule, outcome
        self.before, self.err, self.after = before, err, after

    def entry(self) -> TraceEntry:
        detail = self.before + self.err.text() + self.after
        return TraceEntry(self.stage, self.rule, self.outcome, detail)


def blocked(
    rule: str, message: str, warned: Any, trace: list[Any], lazy: int, rest: tuple[Any, ...]
) -> Decision:
    """A guardrail's block, as ``finish`` freezes it (rest: id, counter, request, ref, policy)."""
    did, counter, request, ref, policy = rest
    held = PendingTrace(trace) if lazy else tuple(trace)
    return build_decision(
        False, rule, message, None, None, None, (), None, None, None, NO_PROMPTS, (),
        tuple(warned), held, ref, _GUARDRAIL, did, None, False, None, (), counter, request,
        None, policy,
    )  # fmt: skip


def render_choice(
    template: Template, prompt: str, version: str, rollout: str | None, request: Any,
    warned: list[str], trace: list[Any],
) -> PromptChoice:  # fmt: skip
    """A prompt with placeholders, as ``PromptsStage._choice`` renders it."""
    text, missing = template.render(request)
    for path in missing:
        message = f"placeholder {{{{ {path} }}}} has no value in the request"
        warned.append(f"{prompt}: {message}")
        trace.append(TraceEntry("prompts", prompt, "warn", message))
    return PromptChoice(version, rollout, text)


def handover(policy: Any) -> Callable[[Any, datetime, str, str], tuple[Decision, datetime]]:
    """The steps, one by one, on the prepared request (``deciding.run_steps``)."""
    steps, ref = policy.steps, policy.ref

    def handover(request: Any, now: datetime, did: str, counter: str) -> tuple[Decision, datetime]:
        state = DecisionState(request, now, did, counter)
        for step in steps:
            step.run(state)
            if state.blocked_by is not None:
                break
        return finish(state, ref, policy), now

    return handover
