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
  of its tier's chain), ``num_retries`` (``attempts - 1``) with a ``retry_policy``
  retrying only the ``retry.on`` causes, ``timeout``, ``retry_after`` (the backoff
  base, whole seconds) and ``allowed_fails``/``cooldown_time`` from ``cooldown``.

LiteLLM retries a model group before its fallbacks while policyd walks the chain
one model per try; the header of the file says so. litellm is not imported.
"""

from __future__ import annotations

import math
import os
from typing import Any

import yaml

from policyd.engine import Engine
from policyd.integrations._litellm_support import deployment_params

# retry.on cause -> LiteLLM RetryPolicy fields it covers
_RETRY_FIELDS = {
    "rate_limit": ("RateLimitErrorRetries",),
    "timeout": ("TimeoutErrorRetries",),
    "server_error": ("InternalServerErrorRetries", "ServiceUnavailableErrorRetries"),
}
_ALL_RETRY_FIELDS = (
    "BadRequestErrorRetries",
    "AuthenticationErrorRetries",
    "TimeoutErrorRetries",
    "RateLimitErrorRetries",
    "ContentPolicyViolationErrorRetries",
    "InternalServerErrorRetries",
    "ServiceUnavailableErrorRetries",
    "NotFoundErrorRetries",
)


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
        fields = set(_ALL_RETRY_FIELDS) if "any" in on else {
            f for cause in on for f in _RETRY_FIELDS.get(cause, ())
        }  # fmt: skip
        settings["retry_policy"] = {f: retries if f in fields else 0 for f in _ALL_RETRY_FIELDS}
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
    return {"model_list": model_list, "router_settings": settings, "_policy": compiled.ref}


def export_config_yaml(path: str | os.PathLike[str], policy: str | None = None) -> str:
    """The proxy ``config.yaml`` text (with a header saying where it came from)."""
    config = export_config(path, policy)
    ref = config.pop("_policy")
    header = [
        f"# LiteLLM proxy config generated by `policyd export litellm` from policy {ref.name}",
        f"# (version {ref.version or '-'}, {ref.digest}). Regenerate rather than edit.",
        "#",
        "# LiteLLM retries a model group num_retries times, then tries its fallbacks; policyd's",
        "# PolicyRouter walks the decided chain one model per try. With the policyd proxy hook",
        "# (policyd.integrations.litellm_proxy) every request gets the decided model, fallbacks",
        "# and retries instead; add its `guardrails:` entry to use the whole policy.",
    ]
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body


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
