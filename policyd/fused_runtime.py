"""What the generated decide functions of :mod:`policyd.fused` call at decide time.

A condition's error kept unrendered (:class:`Err`) and the trace entry quoting it
(:class:`Later`, rendered when ``Decision.trace`` is first read), a guardrail's block as
``finish`` freezes it, a prompt template rendered as the prompts stage does, and the
hand-over to the steps after the guardrails for the slow paths (a request some model
cannot hold, cooldowns), with what the guardrails left.
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

_new_tuple = tuple.__new__

CAUGHT = (cel.EvaluationError, RecursionError)  # what stages.base.matches() catches
ENCODE = json.JSONEncoder(  # json.dumps with stages.cache.cache_key's arguments, built once
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
NO_PROMPTS: Any = MappingProxyType({})
_GUARDRAIL = _STAGE_REASONS["guardrails"]  # Decision.reason of a guardrail's block


class Err(tuple[Any, ...]):
    """A condition's error, its text made only when read: ``(exception, names)``.

    ``names`` is the expression's own names when the exception was raised by inlined code
    (converted as its function would, :func:`~policyd.cel.runtime.to_eval_error`), None
    when the function raised it. Built with ``tuple.__new__``: no ``__init__`` to run.
    """

    __slots__ = ()

    def text(self) -> str:
        """``matches()``'s words for it."""
        exc, names = self
        if names is not None:
            return str(to_eval_error(exc, names))
        if isinstance(exc, RecursionError):
            return "expression too deep to evaluate"
        return str(exc)


def detach(exc: BaseException) -> BaseException:
    """``exc`` holding nothing of the decision that raised it: no traceback (whose frames
    hold the request), no cause or context (whose tracebacks would). An :class:`Err` keeps
    its exception until the trace is read, maybe never, so it keeps only what its text
    needs: the exception's type and arguments."""
    exc.__traceback__ = None
    exc.__cause__ = None
    exc.__context__ = None
    return exc


def error_text(value: Any) -> str:
    """A failed condition's text: an :class:`Err`'s, or a value that is not a bool."""
    if value.__class__ is Err:
        return value.text()
    return f"condition gave {type(value).__name__}, not bool"


def rerun(slow: Callable[[Any], Any], exc: BaseException, request: Any, now: Any) -> Any:
    """An inlined condition raised: its absorbing form decides, as its function's would
    (CEL's ``&&``/``||`` let a decisive operand win over an error); an :class:`Err`."""
    if isinstance(exc, cel.CostLimitExceeded):  # never absorbed (not raised uninlined)
        return _new_tuple(Err, (detach(exc), None))
    try:
        return slow({"request": request, "now": now})
    except CAUGHT as raised:
        return _new_tuple(Err, (detach(raised), None))


class Later(tuple[Any, ...]):
    """A trace entry quoting a failed condition: ``((stage, rule, outcome, before, after),
    value)``, its detail ``before + error text + after`` made when the trace is read."""

    __slots__ = ()

    def entry(self) -> TraceEntry:
        (stage, rule, outcome, before, after), value = self
        return TraceEntry(stage, rule, outcome, before + error_text(value) + after)


def blocked(
    rule: str, message: str, warned: Any, trace: list[Any], lazy: int, msgs: list[Any] | None,
    rest: tuple[Any, ...],
) -> Decision:  # fmt: skip
    """A guardrail's block, as ``finish`` freezes it (``msgs``: the redacted messages, if a
    guardrail redacted; rest: id, counter, request, ref, policy)."""
    did, counter, request, ref, policy = rest
    held = PendingTrace(trace) if lazy else tuple(trace)
    return build_decision(
        False, rule, message, None, None, None, (), None, None, None, NO_PROMPTS, (),
        tuple(warned), held, ref, _GUARDRAIL, did, None if msgs is None else tuple(msgs),
        msgs is not None, None, (), counter, request, None, policy,
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


Handover = Callable[
    [Any, datetime, str, str, list[Any], list[str], list[Any] | None], tuple[Decision, datetime]
]


def handover(policy: Any) -> Handover:
    """The steps after the guardrails, one by one (``deciding.run_steps``), on the prepared
    request and what the guardrails left: their trace entries (rendered), warnings and
    redacted messages (None when nothing was redacted), as their stage leaves its state."""
    steps, ref = policy.steps, policy.ref
    if steps and steps[0].name == "guardrails":
        steps = steps[1:]

    def handover(
        request: Any, now: datetime, did: str, counter: str, trace: list[Any],
        warned: list[str], msgs: list[Any] | None,
    ) -> tuple[Decision, datetime]:  # fmt: skip
        state = DecisionState(request, now, did, counter)
        state.trace = [i if i.__class__ is TraceEntry else i.entry() for i in trace]
        state.warnings = list(warned)
        if msgs is not None:
            state.messages = msgs
            state.redacted = True
        for step in steps:
            step.run(state)
            if state.blocked_by is not None:
                break
        return finish(state, ref, policy), now

    return handover
