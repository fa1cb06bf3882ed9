"""Deciding and recording: functions of a compiled policy, a runtime and a request.

This is the decision core the :class:`~policyd.engine.Engine`, the policy test runner,
the shadow and ``policyd diff`` share. A decision is :func:`start` (check the request,
open a :class:`DecisionState`), :func:`decision_flow` (each step in order until one
blocks) and :func:`~policyd.stages.base.finish`. The flow yields the I/O its stages need
(:mod:`policyd.stages.flow`): :func:`decide` makes those calls blocking, :func:`adecide`
awaits them. Reporting an outcome is the same: :func:`record_flow`, driven by
:func:`record` or awaited. Nothing here holds state; the engine holds which revision
serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyd.budgets.outcome import check_outcome
from policyd.compile import CompiledPolicy
from policyd.decision import Decision
from policyd.decision_id import new_decision_id
from policyd.errors import OutcomeError
from policyd.request import TokenCounter
from policyd.stages.base import DecisionState, Outcome, Runtime, finish
from policyd.stages.flow import Flow, adrive, drive


def start(
    policy: CompiledPolicy, runtime: Runtime, counter: TokenCounter, request: Any
) -> DecisionState:
    """Check and prepare ``request`` (RequestError when malformed); a fresh state."""
    prepared = policy.shape.prepare(request)
    return DecisionState(prepared, runtime.clock(), new_decision_id(), counter.name)


def decision_flow(policy: CompiledPolicy, state: DecisionState) -> Flow[Decision]:
    """Run the policy's steps on ``state`` until one blocks; the frozen Decision."""
    for step in policy.steps:
        if step.flow is None:
            step.run(state)
        else:
            yield from step.flow(state)
        if state.blocked_by is not None:
            break
    return finish(state, policy.ref, policy)


def run_steps(policy: CompiledPolicy, state: DecisionState) -> Decision:
    """``drive(decision_flow(policy, state))`` without the generator: each step's ``run``
    is its flow driven blocking (:func:`policyd.pipeline.bind`), so this is the same
    decision, and the stages' I/O logic is still written once. ``decide()`` runs this:
    driving the decision flow cost 1.9% more instructions per decision."""
    for step in policy.steps:
        step.run(state)
        if state.blocked_by is not None:
            break
    return finish(state, policy.ref, policy)


def decide(
    policy: CompiledPolicy, runtime: Runtime, counter: TokenCounter, request: Mapping[str, Any]
) -> Decision:
    """One decision, store and plugin calls made blocking."""
    return run_steps(policy, start(policy, runtime, counter, request))


async def adecide(
    policy: CompiledPolicy, runtime: Runtime, counter: TokenCounter, request: Mapping[str, Any]
) -> Decision:
    """One decision, store and plugin calls awaited."""
    return await adrive(decision_flow(policy, start(policy, runtime, counter, request)))


# -- outcomes -----------------------------------------------------------------------------


def outcome_of(
    decision: Decision,
    runtime: Runtime,
    input_tokens: int | None,
    output_tokens: int | None,
    cost_usd: float | None,
    error: BaseException | str | None,
    latency_s: float | None,
    model: str | None,
) -> tuple[Outcome, OutcomeError | None]:
    """The Outcome to record, and the error to raise after recording it when a figure is
    one no store can count (the figures are then left out, as if not reported)."""
    problem = check_outcome(input_tokens, output_tokens, cost_usd)
    if problem is not None:
        input_tokens = output_tokens = cost_usd = None
    if error is not None and not isinstance(error, str):
        error = f"{type(error).__name__}: {error}"
    outcome = Outcome(
        model=model or decision.model,
        error=error,
        latency_s=latency_s,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        at=runtime.clock(),
    )
    return outcome, problem


def record_flow(policy: CompiledPolicy | None, decision: Decision, outcome: Outcome) -> Flow[None]:
    """The call's outcome to every step of ``policy`` (the revision that decided), in order:
    its last try (cooldowns), then what it cost (budgets settle)."""
    if policy is None:
        return
    for step in policy.steps:
        if step.attempt is not None:
            step.attempt(decision, outcome)
        if step.settle is not None:
            yield from step.settle(decision, outcome)


def record(policy: CompiledPolicy | None, decision: Decision, outcome: Outcome) -> None:
    drive(record_flow(policy, decision, outcome))


async def arecord(policy: CompiledPolicy | None, decision: Decision, outcome: Outcome) -> None:
    await adrive(record_flow(policy, decision, outcome))


def record_attempt(policy: CompiledPolicy | None, decision: Decision, outcome: Outcome) -> None:
    """One try of a model within a call: only the steps that count tries hear of it."""
    if policy is None:
        return
    for step in policy.steps:
        if step.attempt is not None:
            step.attempt(decision, outcome)
