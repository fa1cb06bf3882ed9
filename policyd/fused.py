"""One generated function per policy: the whole decision, its stage logic written out.

This module owns speed-up #1 of docs/performance.md (and the lazy error texts of #2).
:func:`fuse` reads a compiled policy's stage objects, which stay the source of truth,
and when every stage is one it can write out (input guardrails: conditions, size limits
and text checks, :mod:`policyd.fused_guardrails`; routing, cache, prompts; no budgets or
plugins) returns
``decide(request, counter) -> (Decision, now)``, generated Python that makes the same
decision as running the steps one by one (``deciding.run_steps``), in one frame: each
condition's generated CEL inlined in order where its code allows (else its function
called), tier targets, fallback chains, trace entries and prompt choices as constants,
weighted picks and rollout schedules unrolled, the answer in locals written once.

Slow paths stay with the stage objects: when a request does not fit some model of its
tier, or a routing cooldown is active, the same prepared request, clock reading,
decision id and what the guardrails left (trace, warnings, redacted messages) go
through the steps after the guardrails instead. A trace entry whose text is a CEL error's is
kept as a :class:`~policyd.fused_runtime.Later` and rendered when ``Decision.trace`` is first read
(:class:`~policyd.decision.PendingTrace`). ``adecide``, ``record`` and policies it
cannot write out use the steps; ``tests/engine/test_fused.py`` checks both agree.
"""

from __future__ import annotations

import hashlib
import linecache
import random
from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any

from policyd import fused_guardrails, fused_runtime
from policyd.cel.runtime import ERRORS, no_overload
from policyd.decision import (
    CacheDirective,
    Decision,
    PendingTrace,
    PromptChoice,
    TraceEntry,
    build_decision,
)
from policyd.decision_id import new_decision_id
from policyd.fused_guardrails import FAILED as _FAILED
from policyd.fused_runtime import CAUGHT, ENCODE, Err, Later
from policyd.fused_source import Source, compiled
from policyd.stages.base import Runtime
from policyd.stages.cache import _SCOPE_PATHS, CacheStage
from policyd.stages.guardrails import InputGuardrailsStage
from policyd.stages.prompts import PromptsStage, assign, bucket
from policyd.stages.routing import CompiledTier, RoutingStage, _key_text, _unit

Fused = Callable[[Any, str], tuple[Decision, datetime]]


def fusible(policy: Any) -> bool:
    """Whether :func:`fuse` writes this policy out (else it decides through its steps)."""
    kinds = {
        "guardrails": InputGuardrailsStage,
        "routing": RoutingStage,
        "cache": CacheStage,
        "prompts": PromptsStage,
    }
    for step in policy.steps:
        stage = step.stage
        if type(stage) is not kinds.get(step.name):
            return False
        if isinstance(stage, InputGuardrailsStage) and not fused_guardrails.writable(stage):
            return False
    return True


def fuse(policy: Any, runtime: Runtime) -> Fused | None:
    """``policy``'s decisions as one generated function, or None when it has a stage this
    module does not write out. ``policy`` is a ``CompiledPolicy``."""
    if not fusible(policy):
        return None
    ns: dict[str, Any] = {
        "_E": ERRORS, "_no_overload": no_overload, "_CAUGHT": CAUGHT, "_Err": Err, "_Later": Later,
        "_rerun": fused_runtime.rerun, "_detach": fused_runtime.detach,
        "_blocked": fused_runtime.blocked, "_build": build_decision,
        "_new_id": new_decision_id, "_rt": runtime, "_prepare": policy.shape.prepare,
        "_Pending": PendingTrace, "_proxy": MappingProxyType, "_TE": TraceEntry,
        "_new_tuple": tuple.__new__, "_unit": _unit, "_key_text": _key_text, "_random": random,
        "_sha256": hashlib.sha256, "_encode": ENCODE, "_CD": CacheDirective,
        "_bucket": bucket, "_assign": assign, "_render": fused_runtime.render_choice,
        "_handover": fused_runtime.handover(policy), "_ref": policy.ref, "_policy": policy,
    }  # fmt: skip
    fused_guardrails.names(ns)
    src = Source(ns)
    src.emit(
        "r = _prepare(request)",
        "now = _rt.clock()",
        "did = _new_id()",
        "trace = []",
        "warned = []",
        "lazy = 0",
        "msgs = None",
    )
    stages = {step.name: step.stage for step in policy.steps}
    if "guardrails" in stages:
        fused_guardrails.guardrails(src, stages["guardrails"])
    routed = "routing" in stages
    if routed:
        src.emit("g = len(trace)")  # the guardrails' part, should routing hand over
        _routing(src, stages["routing"])
    else:
        src.emit("tier = model = litellm = None", "fbs = lfbs = ()")
    if "cache" in stages:
        _cache(src, stages["cache"], policy.name)
    else:
        src.emit("cache = None")
    src.emit("prompts = {}")
    if "prompts" in stages:
        _prompts(src, stages["prompts"])
    retry = src.const(stages["routing"].retry) if routed else "None"
    timeout = src.const(stages["routing"].timeout_s) if routed else "None"
    src.emit(
        "held = _Pending(trace) if lazy else tuple(trace)",
        f"return _build(True, None, None, model, litellm, tier, fbs, {retry}, {timeout}, cache, "
        "_proxy(prompts), (), tuple(warned), held, _ref, None, did, "
        "None if msgs is None else tuple(msgs), msgs is not None, None, lfbs, "
        "counter, r, None, _policy), now",
    )
    if src.called:  # the activation a condition's function reads
        src.lines.insert(3, "    a = {'request': r, 'now': now}")
    text = "def decide(request, counter):\n" + "\n".join(src.lines) + "\n"
    filename = f"<policyd.fused {policy.name}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(compiled(text, filename), ns)
    decide: Fused = ns["decide"]
    return decide


_NULL = "sticky_by failed (null)"
_NO_MATCH = "condition failed, no match: "


def _routing(src: Source, stage: RoutingStage) -> None:
    src.emit("tier = None")
    for i, rule in enumerate(stage.rules):
        if i:
            src.emit("if tier is None:")
            src.depth += 1
        src.condition(rule.when)
        entry = src.entry("routing", rule.name, "match", rule.detail)
        src.emit(
            "if v is True:", f"    tier = {src.const(rule.tier)}", f"    trace.append({entry})"
        )
        src.emit(
            "elif v is not False:", "    " + src.later("routing", rule.name, "error", _NO_MATCH, "")
        )
        if i:
            src.depth -= 1
    default = src.entry("routing", None, "default", stage.default_detail)
    src.emit(
        "if tier is None:", f"    tier = {src.const(stage.default)}", f"    trace.append({default})"
    )
    if stage.skip_small:  # RoutingStage._needed
        src.emit(
            "mt = r.get('max_tokens')",
            "need = r['input_tokens'] + (mt if isinstance(mt, int) and not isinstance(mt, bool) "
            "and mt > 0 else 0)",
        )
    if stage.cooldown is not None:
        src.emit("if _rt.cooldowns.active(now.timestamp()):")
        src.emit("    return _handover(r, now, did, counter, trace[:g], warned, msgs)")
    for i, tier in enumerate(stage.tiers.values()):
        src.emit(f"{'if' if i == 0 else 'elif'} tier == {src.const(tier.name)}:")
        src.depth += 1
        if stage.skip_small:
            src.emit(f"if need > {src.const(tier.min_window)}:")
            src.emit("    return _handover(r, now, did, counter, trace[:g], warned, msgs)")
        _pick(src, tier)
        src.depth -= 1


def _pick(src: Source, tier: CompiledTier) -> None:
    """``RoutingStage._pick`` and ``_point`` on a tier's own targets, unrolled."""
    total = sum(tier.weights)
    if tier.strategy != "weighted" or len(tier.targets) == 1 or total <= 0:
        how = (
            tier.strategy
            if tier.strategy != "weighted" or len(tier.targets) == 1
            else ("weighted: no positive weight left, first target")
        )
        _chosen(src, tier, 0, (how,), "0")
        return
    prefix = src.const(f"{tier.name}:")
    src.emit("x = -1.0")
    if tier.sticky is not None:
        src.condition(tier.sticky)
        src.emit(
            "if v is None:",
            f"    trace.append({src.entry('routing', tier.name, 'error', _NULL)})",
            "elif v.__class__ is _Err:",
            "    " + src.later("routing", tier.name, "error", "sticky_by failed (", ")"),
            "else:",
            f"    x = _unit({prefix} + f'{{_key_text(v)}}')",
            "    h = 0",
        )
    src.emit(
        "if x < 0.0:",
        "    rid = r.get('id')",
        "    if isinstance(rid, str) and rid:",
        f"        x = _unit({prefix} + f'{{rid}}')",
        "        h = 1",
        "    else:",
        "        x = _random.random()",
        "        h = 2",
        f"x = x * {total}",
    )
    cumulative = 0
    for k, weight in enumerate(tier.weights[:-1]):
        cumulative += weight
        src.emit(f"{'if' if k == 0 else 'elif'} x < {cumulative}:", f"    k = {k}")
    src.emit("else:", f"    k = {len(tier.targets) - 1}")
    hows = ("weighted, sticky", "weighted, seeded by request id", "weighted, random")
    _chosen(src, tier, None, hows, "h")


def _chosen(
    src: Source, tier: CompiledTier, only: int | None, hows: tuple[str, ...], how: str
) -> None:
    """model, litellm, fbs, lfbs and the trace entry of target ``k`` (or ``only``)."""
    table = []
    for info in tier.targets:
        fallbacks, litellm_fallbacks = tier.fallbacks[info.id]
        entries = tuple(TraceEntry("routing", tier.name, "model", f"{info.id} ({h})") for h in hows)
        table.append((info.id, info.litellm, fallbacks, litellm_fallbacks, entries))
    picked = f"{src.const(tuple(table))}[{'k' if only is None else only}]"
    src.emit(f"model, litellm, fbs, lfbs, entries = {picked}", f"trace.append(entries[{how}])")


def _cache(src: Source, stage: CacheStage, policy_name: str) -> None:
    src.emit("cache = None", "cached = False")
    for rule in stage.rules:
        src.emit("if not cached:")
        src.depth += 1
        src.condition(rule.when)
        src.emit("if v is True:")
        src.depth += 1
        src.emit("cached = True")
        name = rule.name
        if rule.ttl_s <= 0:
            src.emit(
                f"cache = {src.const(CacheDirective(0.0, None, None, name))}",
                f"trace.append({src.entry('cache', name, 'no-store', 'ttl 0: do not cache')})",
            )
        else:
            if rule.scope == "global":
                src.emit(f"space = {src.const(f'policyd:{policy_name}:global')}")
            else:
                outer, inner = _SCOPE_PATHS[rule.scope]
                skip = src.entry(
                    "cache", name, "skip", f"no {rule.scope} id in the request for scope"
                )
                src.emit(
                    f"holder = r.get({outer!r})",
                    f"value = holder.get({inner!r}) if isinstance(holder, dict) else None",
                    "if value is None or value == '':",
                    f"    trace.append({skip})",
                    "else:",
                )
                src.depth += 1
                src.emit(
                    f"space = {src.const(f'policyd:{policy_name}:{rule.scope}:')} + f'{{value}}'"
                )
            parts = [
                f"{f!r}: model" if f == "model" else f"{f!r}: r.get({f!r})" for f in rule.fields
            ]
            payload = "{" + ", ".join([*parts, "'__namespace__': space"]) + "}"
            done = src.entry("cache", name, "cache", f"ttl {rule.ttl_s:g}s, scope {rule.scope}")
            src.emit(
                f"key = _sha256(_encode({payload}).encode('utf-8')).hexdigest()",
                f"cache = _CD({src.const(rule.ttl_s)}, key, space, {src.const(name)})",
                f"trace.append({done})",
            )
            if rule.scope != "global":
                src.depth -= 1
        src.depth -= 1
        src.emit("elif v is not False:", "    " + src.later("cache", name, "error", _NO_MATCH, ""))
        src.depth -= 1
    none = src.entry("cache", None, "none", "no cache rule matched")
    src.emit("if not cached:", f"    trace.append({none})")


def _prompts(src: Source, stage: PromptsStage) -> None:
    for name, version in stage.fixed:
        src.emit(f"prompts[{src.const(name)}] = {_choice(src, stage, name, version, None)}")
    for rollout in stage.rollouts:
        name, prompt = rollout.name, rollout.prompt
        default = src.const(rollout.default)
        versions = [rollout.default, *(v for v, _ in rollout.table)]
        versions += [v for _, later in rollout.schedule for v, _ in later]
        versions = list(dict.fromkeys(versions))
        src.emit(f"version = {default}")
        if rollout.when is not None:
            src.condition(rollout.when)
            not_eligible = src.entry(
                "prompts", name, "default", f"{rollout.default} (not eligible)"
            )
            src.emit(
                "if v is False:",
                f"    trace.append({not_eligible})",
                "elif v is not True:",
                "    "
                + src.later("prompts", name, "default", f"{rollout.default} ({_FAILED}", ")"),
                "else:",
            )
            src.depth += 1
        src.condition(rollout.sticky)
        no_value = src.entry("prompts", name, "default", f"{rollout.default} (no sticky value)")
        src.emit(
            "if v.__class__ is _Err:",
            "    " + src.later("prompts", name, "default", f"{rollout.default} (", ")"),
            "elif v is None or v == '':",
            f"    trace.append({no_value})",
            "else:",
            f"    point = _bucket({src.const(name)}, v if isinstance(v, str) else repr(v))",
            f"    table = {src.const(rollout.table)}",
        )
        for at, entry in rollout.schedule:  # CompiledRollout.active_table
            src.emit(f"    if {src.const(at)} <= now:", f"        table = {src.const(entry)}")
        src.emit(
            "    version = _assign(table, point)",
            f"    trace.append(_new_tuple(_TE, ({src.const('prompts')}, {src.const(name)}, "
            "'variant', f'{version} (bucket {point})')))",
        )
        if rollout.when is not None:
            src.depth -= 1
        key = src.const(prompt)
        templates = [stage.templates[(prompt, v)] for v in versions]
        if all(t.static for t in templates):  # one shared PromptChoice per version
            pairs = zip(versions, templates, strict=True)
            shared = {v: PromptChoice(v, name, t.parts[0]) for v, t in pairs}  # type: ignore[arg-type]
            src.emit(f"prompts[{key}] = {src.const(shared)}[version]")
            continue
        for i, v in enumerate(versions):  # render only the version chosen
            src.emit(f"{'if' if i == 0 else 'elif'} version == {src.const(v)}:")
            src.emit(f"    prompts[{key}] = {_choice(src, stage, prompt, v, name)}")


def _choice(
    src: Source, stage: PromptsStage, prompt: str, version: str, rollout: str | None
) -> str:
    """Code for ``PromptsStage._choice``: a shared constant for a static text."""
    template = stage.templates[(prompt, version)]
    if template.static:
        return src.const(PromptChoice(version, rollout, template.parts[0]))  # type: ignore[arg-type]
    args = ", ".join(src.const(x) for x in (template, prompt, version, rollout))
    return f"_render({args}, r, warned, trace)"
