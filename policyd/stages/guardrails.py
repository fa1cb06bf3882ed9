"""Input guardrails: size limits and conditions, run in declared order before routing.

A guardrail fires when its check finds something (or, with no check, when its
``when`` is true); ``block`` stops the decision, ``warn`` records a warning and
goes on. A condition that errors fails closed (blocks) unless the guardrail
says ``on_error: allow``; the trace says which happened. Text checks (PII,
patterns, terms, injection, plugins) plug in through :data:`TextCheckFactory`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from policyd import cel, model
from policyd.stages.base import CompileEnv, DecisionState, matches

STAGE = "guardrails"

# A check looks at the request (through the state) and returns why it fired, or None.
Check = Callable[[DecisionState], str | None]


def _max_tokens(limit: int) -> Check:
    def check(state: DecisionState) -> str | None:
        n = state.request["input_tokens"]
        return f"input is {n} tokens, limit {limit}" if n > limit else None

    return check


def _max_chars(limit: int) -> Check:
    def check(state: DecisionState) -> str | None:
        n = state.request["input_chars"]
        return f"input is {n} characters, limit {limit}" if n > limit else None

    return check


def _max_messages(limit: int) -> Check:
    def check(state: DecisionState) -> str | None:
        n = len(state.request["messages"])
        return f"{n} messages, limit {limit}" if n > limit else None

    return check


def simple_checks(guard: model.Guardrail) -> list[Check]:
    checks = []
    if guard.max_tokens is not None:
        checks.append(_max_tokens(guard.max_tokens))
    if guard.max_chars is not None:
        checks.append(_max_chars(guard.max_chars))
    if guard.max_messages is not None:
        checks.append(_max_messages(guard.max_messages))
    return checks


@dataclass(frozen=True, slots=True)
class CompiledGuardrail:
    name: str
    when: cel.Expression | None
    action: str
    message: str
    on_error: str
    checks: tuple[Check, ...]


class InputGuardrailsStage:
    name = STAGE

    def __init__(self, env: CompileEnv, guards: list[model.Guardrail]) -> None:
        self.guards = tuple(
            CompiledGuardrail(
                g.name,
                env.optional_expr("guardrails", "input", i, "when"),
                g.action,
                g.message or f"Request blocked by guardrail {g.name}",
                g.on_error,
                tuple(simple_checks(g)),
            )
            for i, g in enumerate(guards)
        )

    def run(self, state: DecisionState) -> None:
        for guard in self.guards:
            reason, failed = self._fires(state, guard)
            if reason is None:
                continue
            if guard.action == "block" or failed:
                state.block(STAGE, guard.name, guard.message, reason)
                return
            state.warn(STAGE, guard.name, reason)

    def _fires(self, state: DecisionState, guard: CompiledGuardrail) -> tuple[str | None, bool]:
        """(why it fired or None, whether it fired because something failed)."""
        if guard.when is not None:
            hit, error = matches(guard.when, state)
            if error is not None:
                if guard.on_error == "allow":
                    state.note(STAGE, guard.name, "error-allowed", f"condition failed: {error}")
                    return None, False
                return f"condition failed, failing closed: {error}", True
            if not hit:
                return None, False
            if not guard.checks:
                return "condition matched", False
        for check in guard.checks:
            reason = check(state)
            if reason is not None:
                return reason, False
        return None, False
