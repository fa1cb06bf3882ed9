"""A prototype of speed-ups 1-3 of docs/performance.md, measured, not shipped (#17).

``fused(engine)`` returns a decide function for a policy whose guardrails are CEL
conditions only and that has no budgets (routing-heavy): the engine's own request
preparation and compiled CEL functions, called straight from one function (no
``matches()``/``evaluate()`` wrappers, no stage objects, no ``DecisionState``), the
trace kept as raw tuples and errors as the caught exceptions (rendered only on demand),
and the answer as one tuple instead of a frozen dataclass. Off the fast path (a request
too large for some model of its tier) it hands over to ``engine.decide``.

Run: python benchmarks/prototype_fused.py  (checks it agrees with the hand-written twin
on the varied mix, then times decide(), the prototype and the twin interleaved);
``--calls N`` makes N untimed calls of the prototype only, for callgrind.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import handwritten  # noqa: E402
from bench_decide_target import NOW, ROUTING_BUNDLE, interleaved  # noqa: E402
from routing_mix import varied_requests  # noqa: E402

from policyd import Engine  # noqa: E402
from policyd.cel.runtime import ERRORS  # noqa: E402
from policyd.stages.prompts import assign, bucket  # noqa: E402


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2**64


def fused(engine: Engine) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    compiled = engine.compiled.policy(None)
    stages = compiled.stage_by_name
    guards = [
        (g.name, g.when.evaluate, g.action == "warn", g.on_error == "allow")
        for g in stages["guardrails"].guards  # type: ignore[attr-defined]
    ]
    routing: Any = stages["routing"]
    rules = [(r.name, r.when.evaluate, r.tier) for r in routing.rules]
    tiers = {
        name: (
            t.strategy == "weighted",
            t.sticky.evaluate if t.sticky is not None else None,
            t.targets,
            t.weights,
            sum(t.weights),
            t.min_window,
            t.fallbacks,
        )
        for name, t in routing.tiers.items()
    }
    default = routing.default
    cache: Any = stages["cache"]
    cache_rules = [(r.name, r.when.evaluate, r.ttl_s, r.fields, r.scope) for r in cache.rules]
    prefix = f"policyd:{cache.policy_name}:"
    prompts: Any = stages["prompts"]
    fixed = [(name, version) for name, version in prompts.fixed]
    rollouts = [
        (r.name, r.prompt, r.when.evaluate if r.when else None, r.sticky.evaluate, r.default, r)
        for r in prompts.rollouts
    ]
    prepare = compiled.shape.prepare
    clock = engine._runtime.clock
    ref = compiled.ref
    id_prefix = os.urandom(8).hex()
    counter = iter(range(2**63))

    def decide(request: dict[str, Any]) -> tuple[Any, ...]:
        r = prepare(request)
        now = clock()
        a = {"request": r, "now": now}
        trace: list[tuple[Any, ...]] = []
        warnings: list[str] = []
        for name, when, warn, allow in guards:
            try:
                hit = when(a)
            except ERRORS as exc:  # rendered on demand, like the engine's text
                if allow:
                    trace.append(("guardrails", name, "error-allowed", exc))
                    continue
                trace.append(("guardrails", name, "block", exc))
                return (False, name, None, None, None, (), None, {}, tuple(warnings), trace)
            if hit is True:
                if not warn:
                    trace.append(("guardrails", name, "block", None))
                    return (False, name, None, None, None, (), None, {}, tuple(warnings), trace)
                warnings.append(f"{name}: condition matched")
                trace.append(("guardrails", name, "warn", None))
        tier = default
        for name, when, rule_tier in rules:
            try:
                if when(a) is True:
                    tier = rule_tier
                    trace.append(("routing", name, "match", None))
                    break
            except ERRORS as exc:
                trace.append(("routing", name, "error", exc))
        weighted, sticky, targets, weights, total, smallest, chains = tiers[tier]
        max_tokens = r.get("max_tokens")
        extra = max_tokens if max_tokens.__class__ is int and max_tokens > 0 else 0
        if r["input_tokens"] + extra > smallest:
            return engine.decide(request)  # type: ignore[return-value]  # the slow path
        chosen = targets[0]
        if weighted and total > 0:
            point = None
            if sticky is not None:
                try:
                    value = sticky(a)
                    if value is not None:
                        point = _unit(f"{tier}:{value if isinstance(value, str) else repr(value)}")
                except ERRORS as exc:
                    trace.append(("routing", tier, "error", exc))
            if point is None:
                rid = r.get("id")
                point = _unit(f"{tier}:{rid}") if isinstance(rid, str) and rid else random.random()
            target = point * total
            cumulative = 0
            for info, weight in zip(targets, weights, strict=True):
                cumulative += weight
                if target < cumulative:
                    chosen = info
                    break
            else:
                chosen = targets[-1]
        fallbacks = chains[chosen.id]
        trace.append(("routing", tier, "model", chosen.id))
        directive = None
        for name, when, ttl, fields, scope in cache_rules:
            try:
                if when(a) is not True:
                    continue
            except ERRORS as exc:
                trace.append(("cache", name, "error", exc))
                continue
            if ttl <= 0:
                directive = (0.0, None, None, name)
                break
            if scope == "global":
                namespace = prefix + "global"
            else:
                holder = r.get(scope)
                value = holder.get("id") if isinstance(holder, dict) else None
                if value is None or value == "":
                    break
                namespace = f"{prefix}{scope}:{value}"
            payload = {f: (chosen.id if f == "model" else r.get(f)) for f in fields}
            payload["__namespace__"] = namespace
            text = json.dumps(
                payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
            )
            directive = (ttl, hashlib.sha256(text.encode("utf-8")).hexdigest(), namespace, name)
            break
        chosen_prompts = dict(fixed)
        for name, prompt, when, sticky_fn, fallback, rollout in rollouts:
            version = fallback
            try:
                eligible = when is None or when(a) is True
                if eligible:
                    value = sticky_fn(a)
                    if value is not None and value != "":
                        point = bucket(name, value if isinstance(value, str) else repr(value))
                        version = assign(rollout.active_table(now), point)
            except ERRORS as exc:
                trace.append(("prompts", name, "default", exc))
            chosen_prompts[prompt] = version
        return (
            True,
            None,
            tier,
            chosen.id,
            chosen.litellm,
            fallbacks[0],
            directive,
            chosen_prompts,
            tuple(warnings),
            trace,
            ref,
            f"{id_prefix}{next(counter):016x}",
        )

    return decide


def observable(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, tuple):  # the slow path: a real Decision
        return handwritten.observable(answer)
    allowed, blocked_by, tier, model, litellm, fallbacks, cache, prompts, warnings = answer[:9]
    keys = ("ttl_s", "key", "namespace", "rule")
    return {
        "allowed": allowed,
        "blocked_by": blocked_by,
        "tier": tier,
        "model": model,
        "litellm_model": litellm,
        "fallbacks": fallbacks,
        "cache": None if cache is None else dict(zip(keys, cache, strict=True)),
        "prompts": prompts,
        "warnings": warnings,
    }


def main() -> None:
    engine = Engine.from_path(ROUTING_BUNDLE, clock=lambda: NOW)
    fast = fused(engine)
    if len(sys.argv) == 3 and sys.argv[1] == "--calls":  # untimed, for callgrind
        requests = varied_requests(400, seed=2026, clean=True)
        for request in requests[:50]:
            fast(request)
        for i in range(int(sys.argv[2])):
            fast(requests[i % len(requests)])
        return
    disagree = 0
    for i, request in enumerate(varied_requests(2000, 17)):
        try:
            random.seed(i)
            ours: Any = observable(fast(request))
        except Exception as exc:  # the request checks are the engine's own
            ours = type(exc).__name__
        try:
            random.seed(i)
            theirs: Any = handwritten.decide(request, NOW)
        except handwritten.BadRequest:
            theirs = "RequestError"
        disagree += ours != theirs
    print(f"prototype vs hand-written twin on 2,000 varied requests: {disagree} disagreements")
    requests = varied_requests(400, seed=2026, clean=True)

    def twin(request: dict[str, Any]) -> Any:
        return handwritten.decide(request, NOW)

    for name, fn in (("decide()", engine.decide), ("prototype", fast)):
        result = interleaved(name, fn, twin, requests, 40)
        print(
            f"{name:<10} {result.engine_us:6.2f} µs vs hand-written {result.baseline_us:6.2f} µs:"
            f" {result.ratio:.2f}x"
        )


if __name__ == "__main__":
    main()
