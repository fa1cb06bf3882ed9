"""Compiler: a validated bundle -> an immutable :class:`CompiledBundle` of policies.

Each policy becomes a :class:`CompiledPolicy`: its request shape and an
ordered tuple of steps, each a stage compiled by its own class from its own
section of the policy and bound by :mod:`policyd.pipeline` (which names and
orders the stages). Deciding (:mod:`policyd.deciding`) only runs the steps in
order; ``Engine.decide`` runs the policy's generated function instead where
:mod:`policyd.fused` could write one (the same decisions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from policyd.bundle import Bundle, policy_digest
from policyd.decision import PolicyRef
from policyd.diagnostics import PolicyError
from policyd.fused import Fused, fuse
from policyd.pipeline import StageTimings, Step, build_steps, timed
from policyd.prices import ModelInfo, resolve
from policyd.request import RequestShape, TokenCounter
from policyd.stages.base import CompileEnv, Runtime, Stage
from policyd.stages.budgets import BudgetsStage, CompiledBudget
from policyd.stages.output import OutputGuardrails
from policyd.words import listing, suggest


@dataclass(frozen=True)
class CompiledPolicy:
    """One policy ready to decide: immutable, shared by every thread."""

    name: str
    ref: PolicyRef
    shape: RequestShape
    steps: tuple[Step, ...]
    models: Mapping[str, ModelInfo]
    output_guardrails: OutputGuardrails | None = None
    # The steps written out as one generated function (policyd.fused), set by
    # compile_bundle when every stage is one it writes out; Engine.decide calls it.
    # Copies (timed()) decide through their steps.
    fused: Fused | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stage objects, in the order they run."""
        return tuple(step.stage for step in self.steps)

    @property
    def stage_by_name(self) -> Mapping[str, Stage]:
        return {step.name: step.stage for step in self.steps}

    @property
    def budgets(self) -> tuple[CompiledBudget, ...]:
        """The policy's compiled budgets, in their order (empty when it has none)."""
        for stage in self.stages:
            if isinstance(stage, BudgetsStage):
                return stage.budgets
        return ()

    def timed(self, timings: StageTimings) -> CompiledPolicy:
        """This policy with every step adding its time to ``timings`` (for benchmarks;
        the policy itself is left as it is, so timing costs it nothing)."""
        return replace(self, steps=timed(self.steps, timings))


@dataclass(frozen=True)
class CompiledBundle:
    """Every policy of one bundle revision; swapped as a whole on reload."""

    policies: Mapping[str, CompiledPolicy]
    digest: str
    source: Bundle
    loaded_at: datetime
    # policy(None)'s answer on a bundle of one policy, looked up once per revision
    _only: CompiledPolicy | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        only = next(iter(self.policies.values())) if len(self.policies) == 1 else None
        object.__setattr__(self, "_only", only)

    def policy(self, name: str | None) -> CompiledPolicy:
        if name is None:
            only = self._only
            if only is not None:
                return only
        from policyd.errors import RequestError

        if name is None:
            raise RequestError(
                f"this bundle has {len(self.policies)} policies; name one "
                "(policy=... in Python, --policy NAME on the command line)",
                hint="policies: " + listing(sorted(self.policies)),
            )
        try:
            return self.policies[name]
        except KeyError:
            hint = suggest(name, self.policies) or "policies: " + listing(sorted(self.policies))
            raise RequestError(f"unknown policy {name!r}", hint=hint) from None


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # a frozen dataclass's field set after __init__


def compile_bundle(
    bundle: Bundle, runtime: Runtime, *, token_counter: TokenCounter | None = None
) -> CompiledBundle:
    """Compile every policy of a valid bundle; raises PolicyError if it has errors."""
    if not bundle.ok:
        raise PolicyError(bundle.diagnostics)
    if not bundle.policies:
        from policyd.diagnostics import Diagnostic, Severity

        raise PolicyError(
            [Diagnostic(bundle.path, 1, 1, Severity.ERROR, "PD012", "the bundle has no Policy")]
        )
    counter = token_counter or TokenCounter()
    compiled = {}
    for name, ctx in bundle.policies.items():
        models = {model_id: resolve(model_id, spec) for model_id, spec in ctx.models.items()}
        env = CompileEnv(ctx=ctx, models=models, runtime=runtime, policy_name=name)
        ref = PolicyRef(name, ctx.policy.metadata.version, policy_digest(ctx))
        output = OutputGuardrails(ctx.policy.guardrails.output, ctx.expressions)
        compiled[name] = CompiledPolicy(
            name=name,
            ref=ref,
            shape=RequestShape(ctx.declarations["request"], counter),
            steps=build_steps(env),
            models=models,
            output_guardrails=output,
        )
        _set(compiled[name], "fused", fuse(compiled[name], runtime))
    return CompiledBundle(compiled, bundle.digest, bundle, runtime.clock())
