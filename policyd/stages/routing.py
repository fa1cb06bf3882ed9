"""Routing: pick a tier by first-matching rule, a model in it, and the fallback chain.

At compile time every tier gets its targets in preference order and its
expanded fallback chain (tiers replaced by their own targets and fallbacks,
duplicates removed). At decide time the stage only evaluates rule conditions,
hashes a sticky key when there is one, and filters targets that cannot hold
the request or are cooling down after reported failures.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyd import cel, document, fields
from policyd.decision import Decision, RetryPolicy, TraceEntry
from policyd.prices import ModelInfo
from policyd.stages.base import CompileEnv, DecisionState, Outcome, Runtime, evaluate, matches

STAGE = "routing"


@dataclass(frozen=True, slots=True)
class CompiledTier:
    name: str
    strategy: str
    targets: tuple[ModelInfo, ...]  # in preference order (weighted: by weight, descending)
    weights: tuple[int, ...]  # aligned with targets
    sticky: cel.Expression | None
    chain: tuple[ModelInfo, ...]  # expanded fallback chain after the tier's own targets
    # Fast path, when every target and fallback fits and nothing cools down:
    min_window: float  # smallest context window among targets and chain (inf: unknown)
    fallbacks: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # chosen -> (ids, litellm)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    when: cel.Expression
    tier: str
    detail: str  # the trace detail of a match, built once


class RoutingStage:
    name = STAGE
    writes = frozenset(
        {"tier", "model", "litellm_model", "fallbacks", "litellm_fallbacks", "retry", "timeout_s"}
    )

    def __init__(self, env: CompileEnv, routing: document.Routing) -> None:
        policy = env.ctx.policy
        self.runtime: Runtime = env.runtime
        self.models = env.models
        self.tiers = _compile_tiers(policy, env)
        self.default = routing.default
        self.rules = tuple(
            CompiledRule(
                rule.name, env.expr("routing", "rules", i, "when"), rule.tier, f"tier {rule.tier}"
            )
            for i, rule in enumerate(routing.rules)
        )
        self.default_detail = f"no rule matched; tier {self.default}"
        self.skip_small = routing.context_window == "skip_small"
        self.timeout_s = fields.parse_duration(routing.timeout) if routing.timeout else None
        self.retry = _retry(routing.retry)
        cooldown = routing.cooldown
        self.cooldown = (
            (cooldown.after_failures, fields.parse_duration(cooldown.for_)) if cooldown else None
        )

    # -- decide ---------------------------------------------------------------------------

    def run(self, state: DecisionState) -> None:
        tier_name = state.forced_tier or self._match_rule(state)
        self.route(state, tier_name)

    def _match_rule(self, state: DecisionState) -> str:
        for rule in self.rules:
            hit, error = matches(rule.when, state)
            if hit:
                state.note(STAGE, rule.name, "match", rule.detail)
                return rule.tier
            if error is not None:
                state.note(STAGE, rule.name, "error", f"condition failed, no match: {error}")
        state.note(STAGE, None, "default", self.default_detail)
        return self.default

    def route(self, state: DecisionState, tier_name: str) -> None:
        """Choose the model of ``tier_name`` and the fallback chain (also used on downgrade)."""
        tier = self.tiers[tier_name]
        state.tier = tier_name
        state.retry = self.retry
        state.timeout_s = self.timeout_s
        needed = self._needed(state) if self.skip_small else 0
        cooling = self.cooldown is not None and self.runtime.cooldowns.active(state.now.timestamp())
        if needed <= tier.min_window and not cooling:
            # Every target and fallback fits: the precomputed chains apply as they are.
            chosen, how = self._pick(state, tier, tier.targets)
            fallbacks, litellm_fallbacks = tier.fallbacks[chosen.id]
            state.model = chosen.id
            state.litellm_model = chosen.litellm
            state.fallbacks = fallbacks
            state.litellm_fallbacks = litellm_fallbacks
            state.note(STAGE, tier_name, "model", f"{chosen.id} ({how})")
            return
        usable = self._usable(state, tier.targets)
        if not usable:
            if self.skip_small and not self._usable(state, tier.targets, cooldowns=False):
                chain = self._usable(state, tier.chain)
                if chain:
                    self._choose(state, chain[0], chain[1:], "first fallback that fits")
                    return
                state.block(
                    STAGE,
                    "context_window",
                    "The request is too large for every model this policy allows",
                    f"needs {self._needed(state)} tokens",
                )
                return
            usable = list(tier.targets)  # every target cooling down: try them anyway
            state.warn(STAGE, tier_name, "every target is cooling down; using them anyway")
        chosen, how = self._pick(state, tier, usable)
        others = [t for t in usable if t is not chosen]
        self._choose(state, chosen, [*others, *self._usable(state, tier.chain)], how)

    def _choose(
        self, state: DecisionState, chosen: ModelInfo, rest: list[ModelInfo], how: str
    ) -> None:
        state.model = chosen.id
        state.litellm_model = chosen.litellm
        state.fallbacks, state.litellm_fallbacks = _chain(chosen, rest)
        state.note(STAGE, state.tier, "model", f"{chosen.id} ({how})")

    def _needed(self, state: DecisionState) -> int:
        request = state.request
        max_tokens = request.get("max_tokens")
        valid = isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
        extra = max_tokens if valid and max_tokens > 0 else 0  # type: ignore[operator]
        return request["input_tokens"] + extra

    def _usable(
        self, state: DecisionState, targets: tuple[ModelInfo, ...], *, cooldowns: bool = True
    ) -> list[ModelInfo]:
        needed = self._needed(state) if self.skip_small else 0
        now = state.now.timestamp() if self.cooldown else 0.0
        out = []
        for info in targets:
            if needed and info.context_window is not None and needed > info.context_window:
                _skip(
                    state, info.id, f"context window {info.context_window} < {needed} tokens needed"
                )
                continue
            if cooldowns and self.cooldown and self.runtime.cooldowns.cooling(info.id, now):
                _skip(state, info.id, "cooling down after reported failures")
                continue
            out.append(info)
        return out

    def _pick(
        self, state: DecisionState, tier: CompiledTier, usable: Sequence[ModelInfo]
    ) -> tuple[ModelInfo, str]:
        if tier.strategy != "weighted" or len(usable) == 1:
            return usable[0], tier.strategy
        if usable is tier.targets:
            weights: tuple[int, ...] | list[int] = tier.weights
        else:
            weights = [tier.weights[tier.targets.index(info)] for info in usable]
        total = sum(weights)
        if total <= 0:
            return usable[0], "weighted: no positive weight left, first target"
        point, how = self._point(state, tier)
        cumulative = 0
        target = point * total
        for info, weight in zip(usable, weights, strict=True):
            cumulative += weight
            if target < cumulative:
                return info, how
        return usable[-1], how

    def _point(self, state: DecisionState, tier: CompiledTier) -> tuple[float, str]:
        """A number in [0, 1): from the sticky key, else the request id, else random."""
        if tier.sticky is not None:
            value, error = evaluate(tier.sticky, state)
            if error is None and value is not None:
                return _unit(f"{tier.name}:{_key_text(value)}"), "weighted, sticky"
            state.note(STAGE, tier.name, "error", f"sticky_by failed ({error or 'null'})")
        request_id = state.request.get("id")
        if isinstance(request_id, str) and request_id:
            return _unit(f"{tier.name}:{request_id}"), "weighted, seeded by request id"
        return random.random(), "weighted, random"

    # -- outcomes -------------------------------------------------------------------------

    def attempt(self, decision: Decision, outcome: Outcome) -> None:
        """One try of ``outcome.model``: a failure counts toward its cooldown."""
        if self.cooldown is None or outcome.model is None:
            return
        after, seconds = self.cooldown
        now = outcome.at.timestamp()
        started = self.runtime.cooldowns.report(
            outcome.model, outcome.error is not None, after, seconds, now
        )
        if started:
            self.runtime.emit(
                {"type": "cooldown_started", "model": outcome.model, "seconds": seconds}
            )


def _chain(chosen: ModelInfo, rest: list[ModelInfo]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Fallback ids and LiteLLM names after ``chosen``: in order, no duplicates."""
    ids: dict[str, None] = {}  # a list looked each id up in all the ids before it
    names: list[str] = []
    for info in rest:
        if info.id != chosen.id and info.id not in ids:
            ids[info.id] = None
            names.append(info.litellm)
    return tuple(ids), tuple(names)


def _unit(text: str) -> float:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _key_text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _retry(retry: document.Retry | None) -> RetryPolicy | None:
    if retry is None:
        return None
    return RetryPolicy(
        attempts=retry.attempts,
        backoff=retry.backoff,
        base_s=fields.parse_duration(retry.base),
        max_s=fields.parse_duration(retry.max),
        jitter=retry.jitter,
        on=tuple(retry.on),
    )


def _compile_tiers(policy: document.Policy, env: CompileEnv) -> dict[str, CompiledTier]:
    models = env.models
    ordered: dict[str, tuple[tuple[ModelInfo, ...], tuple[int, ...]]] = {}
    for name, tier in policy.tiers.items():
        pairs = [(models[t.model], t.weight) for t in tier.targets]
        if tier.strategy == "weighted":
            pairs.sort(key=lambda p: -p[1])  # stable: ties keep declared order
        elif tier.strategy == "cheapest":
            pairs.sort(key=lambda p: p[0].blended_price())
        ordered[name] = (tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))

    reach = _reach(policy, ordered, models)
    compiled = {}
    for name, tier in policy.tiers.items():
        unique = list(_after(tier.fallback, policy.tiers, reach, models))
        targets, weights = ordered[name]
        windows = [info.context_window for info in (*targets, *unique)]
        known = [w for w in windows if w is not None]
        compiled[name] = CompiledTier(
            name,
            tier.strategy,
            targets,
            weights,
            env.optional_expr("tiers", name, "sticky_by"),
            tuple(unique),
            float(min(known)) if known else math.inf,
            {chosen.id: _chain(chosen, [*targets, *unique]) for chosen in targets},
        )
    return compiled


def _reach(
    policy: document.Policy,
    ordered: Mapping[str, tuple[tuple[ModelInfo, ...], tuple[int, ...]]],
    models: Mapping[str, ModelInfo],
) -> dict[str, tuple[ModelInfo, ...]]:
    """Each tier's models, then those its fallbacks lead to, in the order a depth-first
    walk first reaches them, each model once.

    Each tier is walked once, on explicit stacks: expanding every fallback again wherever
    it is reached doubled the work with each level of tiers sharing a fallback (16 levels
    took 0.87 s to compile, and each level more twice as long), and a chain of 1,000 tiers
    was a RecursionError. Keeping each model's first place at every step keeps the order the
    full expansion had. Fallback cycles are check errors, so a compiled bundle has none;
    a tier met again on its own way adds nothing here rather than looping.
    """
    tiers = policy.tiers
    reach: dict[str, tuple[ModelInfo, ...]] = {}
    for root in tiers:
        if root in reach:
            continue
        path, on_path = [root], {root}
        todo = [iter(tiers[root].fallback)]
        while todo:
            for entry in todo[-1]:
                if entry in tiers and entry not in reach and entry not in on_path:
                    path.append(entry)
                    on_path.add(entry)
                    todo.append(iter(tiers[entry].fallback))
                    break
            else:
                todo.pop()
                name = path.pop()
                on_path.discard(name)
                found = dict.fromkeys(ordered[name][0])
                found.update(_after(tiers[name].fallback, tiers, reach, models))
                reach[name] = tuple(found)
    return reach


def _after(
    fallback: Sequence[str],
    tiers: Mapping[str, Any],
    reach: Mapping[str, tuple[ModelInfo, ...]],
    models: Mapping[str, ModelInfo],
) -> dict[ModelInfo, None]:
    """The models a fallback list leads to, in the order first reached, each once: a
    model, or what a tier reaches (nothing for a tier still on the walk's path)."""
    out: dict[ModelInfo, None] = {}
    for entry in fallback:
        if entry in tiers:
            out.update(dict.fromkeys(reach.get(entry, ())))
        else:
            out[models[entry]] = None
    return out


def _skip(state: DecisionState, model_id: str, detail: str) -> None:
    """Trace a skipped model once per decision (targets and fallback chains overlap)."""
    entry = TraceEntry(STAGE, model_id, "skip", detail)
    if entry not in state.trace:
        state.trace.append(entry)
