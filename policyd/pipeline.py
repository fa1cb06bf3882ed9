"""The decision pipeline: the named, ordered stage list, and each stage bound as a Step.

:data:`STAGES` is the one place that says which stages exist and in which order a
decision runs them; adding a stage is one line here plus its module in
:mod:`policyd.stages`. Each builder gets the policy's :class:`CompileEnv` and the stages
built before it (their dependencies: budgets re-route through routing), and returns its
stage, or None when the policy has no such section.

:func:`bind` turns a stage into a :class:`Step` of bound callables once, when a policy is
compiled, so deciding never asks a stage what it can do. :func:`timed` wraps steps to
count the time each stage takes (``policyd bench --stages``); steps that are not wrapped
pay nothing for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from policyd.decision import Decision
from policyd.errors import ConfigError
from policyd.stages.base import (
    AttemptHook,
    CompileEnv,
    DecisionState,
    IoStage,
    Outcome,
    PureStage,
    SettleHook,
    Stage,
)
from policyd.stages.cache import CacheStage
from policyd.stages.flow import Flow, drive
from policyd.stages.guardrails import InputGuardrailsStage, PluginGuardrailsStage
from policyd.stages.prompts import PromptsStage
from policyd.stages.routing import RoutingStage

Builder = Callable[[CompileEnv, Mapping[str, Stage]], Stage | None]


def _guardrails(env: CompileEnv, built: Mapping[str, Stage]) -> Stage | None:
    guards = env.ctx.policy.guardrails.input
    if not guards:
        return None
    plugins = any(g.plugin is not None for g in guards)
    return (PluginGuardrailsStage if plugins else InputGuardrailsStage)(env, guards)


def _routing(env: CompileEnv, built: Mapping[str, Stage]) -> Stage | None:
    routing = env.ctx.policy.routing
    return RoutingStage(env, routing) if routing is not None else None


def _budgets(env: CompileEnv, built: Mapping[str, Stage]) -> Stage | None:
    if not env.ctx.policy.budgets:
        return None
    from policyd.stages.budgets import BudgetsStage

    routing = built.get("routing")
    assert routing is None or isinstance(routing, RoutingStage)
    return BudgetsStage(env, env.ctx.policy.budgets, routing)


def _cache(env: CompileEnv, built: Mapping[str, Stage]) -> Stage | None:
    cache = env.ctx.policy.cache
    return CacheStage(env, cache) if cache.rules else None


def _prompts(env: CompileEnv, built: Mapping[str, Stage]) -> Stage | None:
    policy = env.ctx.policy
    return PromptsStage(env, policy) if policy.prompts else None


# The order decisions run in: guardrails see the raw request, routing picks a
# model, budgets price and reserve it (and may re-route), then cache and prompts.
STAGES: tuple[tuple[str, Builder], ...] = (
    ("guardrails", _guardrails),
    ("routing", _routing),
    ("budgets", _budgets),
    ("cache", _cache),
    ("prompts", _prompts),
)


@dataclass(frozen=True, slots=True)
class Step:
    """One stage of a compiled policy as bound callables, resolved when it is compiled.

    ``run`` decides the stage's part blocking; ``flow`` is set for a stage with I/O (the
    decision core drives it, blocking or awaited), None for one without. ``attempt`` and
    ``settle`` are its parts of ``Engine.record_attempt`` / ``Engine.record``, or None.
    """

    name: str
    run: Callable[[DecisionState], None]
    flow: Callable[[DecisionState], Flow[None]] | None
    attempt: Callable[[Decision, Outcome], None] | None
    settle: Callable[[Decision, Outcome], Flow[None]] | None
    stage: Stage


def bind(name: str, stage: Stage) -> Step:
    """The step of ``stage`` (which must be a PureStage or an IoStage)."""
    flow: Callable[[DecisionState], Flow[None]] | None = None
    run: Callable[[DecisionState], None]
    if isinstance(stage, IoStage):
        flow = stage.flow
        run = _blocking(flow)
    elif isinstance(stage, PureStage):
        run = stage.run
    else:
        raise ConfigError(
            f"stage {name!r} has neither run(state) nor flow(state): give its class one "
            "(see docs/architecture.md, the stage contract)"
        )
    return Step(
        name,
        run,
        flow,
        stage.attempt if isinstance(stage, AttemptHook) else None,
        stage.settle if isinstance(stage, SettleHook) else None,
        stage,
    )


def _blocking(flow: Callable[[DecisionState], Flow[None]]) -> Callable[[DecisionState], None]:
    def run(state: DecisionState) -> None:
        drive(flow(state))

    return run


def build_steps(env: CompileEnv) -> tuple[Step, ...]:
    """The steps of one policy, in :data:`STAGES` order (absent sections left out)."""
    built: dict[str, Stage] = {}
    for name, build in STAGES:
        stage = build(env, built)
        if stage is not None:
            built[name] = stage
    return tuple(bind(name, stage) for name, stage in built.items())


# -- per-stage timing ----------------------------------------------------------------------


@dataclass
class StageTimings:
    """Nanoseconds spent in each stage and how many times it ran (a stage that does
    I/O counts the time of its calls too, awaited ones included)."""

    ns: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, took_ns: int) -> None:
        self.ns[name] = self.ns.get(name, 0) + took_ns
        self.calls[name] = self.calls.get(name, 0) + 1


def timed(steps: tuple[Step, ...], timings: StageTimings) -> tuple[Step, ...]:
    """Copies of ``steps`` that add each run's time to ``timings``."""
    return tuple(_timed(step, timings) for step in steps)


def _timed(step: Step, timings: StageTimings) -> Step:
    clock, name, run, flow = time.perf_counter_ns, step.name, step.run, step.flow

    def timed_run(state: DecisionState) -> None:
        started = clock()
        try:
            run(state)
        finally:
            timings.add(name, clock() - started)

    if flow is None:
        return replace(step, run=timed_run)
    inner = flow

    def timed_flow(state: DecisionState) -> Flow[None]:
        started = clock()
        try:
            yield from inner(state)
        finally:
            timings.add(name, clock() - started)

    return replace(step, run=timed_run, flow=timed_flow)
