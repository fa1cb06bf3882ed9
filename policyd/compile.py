"""Compiler: a validated bundle -> an immutable :class:`CompiledBundle` of policies.

Each policy becomes a :class:`CompiledPolicy`: its request shape and an
ordered tuple of stages, each compiled by its own stage class from its own
section of the policy. The engine only runs the stages in order; adding a
stage means adding one line to :data:`STAGE_BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from policyd.bundle import Bundle, policy_digest
from policyd.decision import PolicyRef
from policyd.diagnostics import PolicyError
from policyd.prices import ModelInfo, resolve
from policyd.request import RequestShape, TokenCounter
from policyd.stages.base import CompileEnv, Runtime, Stage
from policyd.stages.cache import CacheStage
from policyd.stages.guardrails import InputGuardrailsStage
from policyd.stages.output import OutputGuardrails
from policyd.stages.prompts import PromptsStage
from policyd.stages.routing import RoutingStage


def _guardrails(env: CompileEnv) -> Stage | None:
    guards = env.ctx.policy.guardrails.input
    return InputGuardrailsStage(env, guards) if guards else None


def _routing(env: CompileEnv) -> Stage | None:
    routing = env.ctx.policy.routing
    return RoutingStage(env, routing) if routing is not None else None


def _budgets(env: CompileEnv) -> Stage | None:
    if not env.ctx.policy.budgets:
        return None
    from policyd.stages.budgets import BudgetsStage

    return BudgetsStage(env, env.ctx.policy.budgets)


def _cache(env: CompileEnv) -> Stage | None:
    cache = env.ctx.policy.cache
    return CacheStage(env, cache) if cache.rules else None


def _prompts(env: CompileEnv) -> Stage | None:
    policy = env.ctx.policy
    return PromptsStage(env, policy) if policy.prompts else None


# The order decisions run in: guardrails see the raw request, routing picks a
# model, budgets price and reserve it (and may re-route), then cache and prompts.
STAGE_BUILDERS: tuple[tuple[str, Callable[[CompileEnv], Stage | None]], ...] = (
    ("guardrails", _guardrails),
    ("routing", _routing),
    ("budgets", _budgets),
    ("cache", _cache),
    ("prompts", _prompts),
)


@dataclass(frozen=True)
class CompiledPolicy:
    """One policy ready to decide: immutable, shared by every thread."""

    name: str
    ref: PolicyRef
    shape: RequestShape
    stages: tuple[Stage, ...]
    models: Mapping[str, ModelInfo]
    stage_by_name: Mapping[str, Stage] = field(default_factory=dict)
    output_guardrails: OutputGuardrails | None = None


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
                hint="policies: " + ", ".join(sorted(self.policies)),
            )
        try:
            return self.policies[name]
        except KeyError:
            from policyd.structure import suggest

            hint = suggest(name, self.policies) or "policies: " + ", ".join(sorted(self.policies))
            raise RequestError(f"unknown policy {name!r}", hint=hint) from None


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
        stages = []
        by_name = {}
        for stage_name, build in STAGE_BUILDERS:
            stage = build(env)
            if stage is not None:
                stages.append(stage)
                by_name[stage_name] = stage
        if "budgets" in by_name:
            by_name["budgets"].routing = by_name.get("routing")  # type: ignore[attr-defined]
        ref = PolicyRef(name, ctx.policy.metadata.version, policy_digest(ctx))
        output = OutputGuardrails(ctx.policy.guardrails.output, ctx.expressions)
        compiled[name] = CompiledPolicy(
            name=name,
            ref=ref,
            shape=RequestShape(ctx.declarations["request"], counter),
            stages=tuple(stages),
            models=models,
            stage_by_name=by_name,
            output_guardrails=output,
        )
    return CompiledBundle(compiled, bundle.digest, bundle, runtime.clock())
