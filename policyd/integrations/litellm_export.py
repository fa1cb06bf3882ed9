"""``policyd export litellm``: a LiteLLM proxy ``config.yaml`` from a policy's routing.

What is written, from the compiled policy (so it matches what the engine decides):

- ``model_list``: one deployment per model id (``model_name`` = the id, as the
  proxy hook needs), with the policy's price as ``input/output_cost_per_token``
  where it differs from LiteLLM's own, and the context window as
  ``model_info.max_input_tokens``; plus one model
  group per tier (``model_name`` = the tier) whose deployments are the tier's
  targets — ``weight`` for weighted tiers, ``order`` for ordered and cheapest
  ones — so clients without the hook can ask for ``model: premium``;
- ``router_settings``: ``fallbacks`` (each tier and each target model to the rest
  of its tier's chain), ``num_retries`` (``attempts - 1``), ``timeout``,
  ``retry_after`` (the backoff base, whole seconds) and
  ``allowed_fails``/``cooldown_time`` from ``cooldown``.

No ``retry_policy`` is written: LiteLLM lets a retry policy override the per-request
``num_retries`` the proxy hook sets, so a rate-limited model would get more tries
than the decision names. What the file cannot express (routing rules, stickiness,
guardrails, budgets, cache rules, prompts, ``retry.on``, backoff shape) is listed in
its header and by :func:`unexpressed`, which the CLI also prints on stderr.
litellm is not imported.
"""

from __future__ import annotations

import math
import os
from typing import Any

import yaml

from policyd.engine import Engine
from policyd.integrations._litellm_support import deployment_params


def export_config(path: str | os.PathLike[str], policy: str | None = None) -> dict[str, Any]:
    """The ``model_list`` and ``router_settings`` of a proxy config, as a mapping.

    Raises ``PolicyError`` for a broken bundle and ``RequestError`` for an unknown
    or missing policy name.
    """
    engine = Engine.from_path(path)
    try:
        compiled = engine.compiled.policy(policy)
    finally:
        engine.close()
    models = compiled.models
    routing = compiled.stage_by_name.get("routing")
    tiers = dict(getattr(routing, "tiers", {}))

    model_list: list[dict[str, Any]] = []
    for model_id, info in models.items():
        entry: dict[str, Any] = {"model_name": model_id, "litellm_params": deployment_params(info)}
        model_info = {}
        if info.context_window:
            model_info["max_input_tokens"] = info.context_window
        if info.max_output_tokens:
            model_info["max_output_tokens"] = info.max_output_tokens
        if model_info:
            entry["model_info"] = model_info
        model_list.append(entry)
    for name, tier in tiers.items():
        if name in models:  # a tier named like a model: the model's group wins
            continue
        for i, (info, weight) in enumerate(zip(tier.targets, tier.weights, strict=True)):
            params = deployment_params(info)
            if tier.strategy == "weighted":
                params["weight"] = weight
            else:
                params["order"] = i + 1
            model_list.append({"model_name": name, "litellm_params": params})

    settings: dict[str, Any] = {"routing_strategy": "simple-shuffle"}
    fallbacks = _fallbacks(tiers, getattr(routing, "default", None), set(models))
    if fallbacks:
        settings["fallbacks"] = fallbacks
    retry = getattr(routing, "retry", None)
    if retry is not None:
        retries = retry.attempts - 1
        settings["num_retries"] = retries
        on = set(retry.on)
        if retry.backoff != "none" and retry.base_s > 0:
            settings["retry_after"] = max(1, math.ceil(retry.base_s))
        if "context_window" in on and fallbacks:
            settings["context_window_fallbacks"] = fallbacks
    timeout = getattr(routing, "timeout_s", None)
    if timeout is not None:
        settings["timeout"] = timeout
    cooldown = getattr(routing, "cooldown", None)
    if cooldown is not None:
        after, seconds = cooldown
        settings["allowed_fails"] = after
        settings["cooldown_time"] = seconds
    return {
        "model_list": model_list,
        "router_settings": settings,
        "_policy": compiled.ref,
        "_unexpressed": unexpressed(compiled),
    }


def unexpressed(compiled: Any) -> list[str]:
    """What of the policy a LiteLLM config cannot say, one line each (empty: nothing)."""
    out: list[str] = []
    stages = compiled.stage_by_name

    def names(items: Any) -> str:
        return ", ".join(str(getattr(i, "name", i)) for i in items)

    routing = stages.get("routing")
    if routing is not None:
        if routing.rules:
            out.append(
                f"routing.rules ({names(routing.rules)}): LiteLLM serves the model the client names"
            )
        sticky = [t.name for t in routing.tiers.values() if t.sticky is not None]
        if sticky:
            out.append(
                f"tiers.*.sticky_by ({', '.join(sticky)}): LiteLLM's weighted choice "
                "is not sticky per user"
            )
        if getattr(routing, "skip_small", False):
            out.append(
                "routing.context_window: skip_small (LiteLLM does not skip a model "
                "whose context window is too small for the input)"
            )
        retry = routing.retry
        if retry is not None:
            out.append(
                f"retry.on ({', '.join(retry.on)}): LiteLLM retries and falls back on "
                "any error it deems retryable"
            )
            if retry.backoff != "none":
                out.append(
                    f"retry backoff {retry.backoff}, max {retry.max_s:g}s, jitter "
                    f"{retry.jitter}: LiteLLM waits retry_after seconds"
                )
            out.append(
                "retry order: LiteLLM retries a model num_retries times before its "
                "fallbacks; policyd tries the chain one model per try"
            )
    guards = getattr(stages.get("guardrails"), "guards", ()) or ()
    if guards:
        out.append(f"guardrails.input ({names(guards)})")
    output = getattr(compiled.output_guardrails, "guards", ()) or ()
    if output:
        out.append(f"guardrails.output ({names(output)})")
    budgets = getattr(stages.get("budgets"), "budgets", ()) or ()
    if budgets:
        out.append(f"budgets ({names(budgets)})")
    cache = getattr(stages.get("cache"), "rules", ()) or ()
    if cache:
        out.append(f"cache.rules ({names(cache)})")
    prompts = stages.get("prompts")
    rollouts = getattr(prompts, "rollouts", ()) or ()
    if prompts is not None:
        out.append("prompts" + (f" and rollouts ({names(rollouts)})" if rollouts else ""))
    return out


def export_config_yaml(path: str | os.PathLike[str], policy: str | None = None) -> str:
    """The proxy ``config.yaml`` text (with a header saying where it came from)."""
    return export_litellm(path, policy)[0]


def export_litellm(
    path: str | os.PathLike[str], policy: str | None = None
) -> tuple[str, list[str]]:
    """The ``config.yaml`` text, and what of the policy it could not express."""
    config = export_config(path, policy)
    ref = config.pop("_policy")
    missing = config.pop("_unexpressed")
    header = [
        f"# LiteLLM proxy config generated by `policyd export litellm` from policy {ref.name}",
        f"# (version {ref.version or '-'}, {ref.digest}). Regenerate rather than edit.",
        "#",
        "# NOT EXPRESSED in this file (LiteLLM alone does not apply them; the policyd guardrail,",
        "# policyd.integrations.litellm_proxy, does: add its `guardrails:` entry):",
        *(f"#   - {line}" for line in missing or ["nothing"]),
        "#",
        "# With the guardrail every request gets the decided model, fallbacks and exactly the",
        "# decided attempts. No retry_policy is written: it would override the attempts the",
        "# guardrail sets per request.",
    ]
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body, list(missing)


def _fallbacks(tiers: dict[str, Any], default: str | None, model_ids: set[str]) -> list[Any]:
    """LiteLLM ``fallbacks``: each tier, then each target model (first tier that has it)."""
    out: list[dict[str, list[str]]] = []
    ordered = sorted(tiers.values(), key=lambda t: t.name != default)  # the default tier first
    for tier in tiers.values():
        if tier.name in model_ids:
            continue
        chain = _unique(info.id for info in tier.chain)
        if chain:
            out.append({tier.name: chain})
    seen: set[str] = set()
    for tier in ordered:
        rest = [info.id for info in (*tier.targets, *tier.chain)]
        for info in tier.targets:
            if info.id in seen:
                continue
            seen.add(info.id)
            chain = _unique(m for m in rest if m != info.id)
            if chain:
                out.append({info.id: chain})
    return out


def _unique(items: Any) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
