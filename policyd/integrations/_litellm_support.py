"""What the LiteLLM router wrapper and the proxy hook share: errors, request shaping, outcomes.

Nothing here imports litellm at module import time (the export command uses this
module and must stay fast); functions that need litellm's classes import it when
called, by which time the caller has imported it anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from policyd.decision import Decision, RetryPolicy
from policyd.errors import PolicydError
from policyd.prices import ModelInfo, litellm_entry
from policyd.stages.output import OutputVerdict

# Arguments the policy decides; passing them as well would silently fight the policy.
POLICY_OWNED = {
    "fallbacks": "routing (the tier's fallback chain)",
    "context_window_fallbacks": "routing (the tier's fallback chain)",
    "num_retries": "routing.retry.attempts",
    "max_retries": "routing.retry.attempts",
    "timeout": "routing.timeout",
    "request_timeout": "routing.timeout",
    "cache": "cache.rules",
    "caching": "cache.rules",
    "cache_key": "cache.rules",
}
# OpenAI-style arguments the policy may read; they also go to LiteLLM unchanged.
REQUEST_FIELDS = ("max_tokens", "temperature", "metadata")
# Attributes policyd computes from the request itself; a context's values are dropped.
COMPUTED = frozenset({"messages", "input_tokens", "input_chars", "model"})
# Used when a policy has no routing.retry: the format's defaults (one try, no fallback).
NO_RETRY = RetryPolicy(1, "none", 0.0, 0.0, "none", ("rate_limit", "timeout", "server_error"))


class PolicyBlockedError(PolicydError):
    """The policy refused the request; nothing was sent to LiteLLM.

    ``blocked_by`` names the guardrail, budget or rule, ``kind`` says which
    (``guardrail``, ``budget`` or ``routing``), ``message`` is the policy's text
    for the user and ``retry_after`` is in seconds when the policy knows it
    (budget windows), else None.
    """

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.blocked_by = decision.blocked_by or "unknown"
        self.kind = blocked_kind(decision)
        self.message = decision.message or f"Request blocked by {self.blocked_by}"
        self.retry_after = decision.retry_after_s
        text = f"{self.message} (policy {decision.policy.name}: {self.kind} {self.blocked_by}"
        if self.retry_after is not None:
            text += f"; retry after {self.retry_after:g}s"
        super().__init__(text + ")")


class OutputBlockedError(PolicydError):
    """An output guardrail blocked the model's answer.

    The call happened and was paid for (the spend is recorded); ``verdict``
    says which guardrail fired and why, ``info`` describes the call.
    """

    def __init__(self, decision: Decision, verdict: OutputVerdict, info: CallInfo | None) -> None:
        self.decision = decision
        self.verdict = verdict
        self.info = info
        self.blocked_by = verdict.blocked_by or "unknown"
        self.message = verdict.message or f"Response blocked by guardrail {self.blocked_by}"
        super().__init__(
            f"{self.message} (policy {decision.policy.name}: output guardrail {self.blocked_by})"
        )


class PolicyUsageError(PolicydError, TypeError):
    """The integration was called or configured wrongly (a programming error)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a call: which model, how long, and the error if it failed."""

    model: str
    latency_s: float
    error: str | None = None
    cause: str | None = None  # the retry.on cause the error counts as, if any


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What policyd did on one call; ``call_info(response)`` returns it."""

    decision: Decision
    model: str | None  # the model id that answered (None when every attempt failed)
    attempts: tuple[Attempt, ...]
    cache_hit: bool
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    output: tuple[OutputVerdict, ...] = ()  # one per choice checked

    def prompt(self, name: str) -> str | None:
        """The text of prompt ``name`` that the decision chose, or None."""
        choice = self.decision.prompts.get(name)
        return choice.text if choice is not None else None


# -- requests -----------------------------------------------------------------------------


def check_kwargs(kwargs: Mapping[str, Any]) -> None:
    for name in kwargs:
        if name in POLICY_OWNED:
            raise PolicyUsageError(
                f"{name}= is decided by the policy ({POLICY_OWNED[name]}); remove the argument "
                "or change the policy"
            )


def build_request(
    messages: Sequence[Mapping[str, Any]],
    context: Mapping[str, Any] | None,
    kwargs: Mapping[str, Any],
    model_hint: str | None,
) -> dict[str, Any]:
    """The request mapping the engine decides on: context attributes plus the chat fields.

    The context cannot set what policyd computes (``messages``, ``input_tokens``,
    ``input_chars``, ``model``): a prompt's size is measured, never taken on trust."""
    if context is not None and not isinstance(context, Mapping):
        raise PolicyUsageError(
            f"context= must be a mapping of request attributes, not {type(context).__name__}"
        )
    request: dict[str, Any] = {k: v for k, v in (context or {}).items() if k not in COMPUTED}
    request["messages"] = list(messages)
    for name in REQUEST_FIELDS:
        if kwargs.get(name) is not None:
            request[name] = kwargs[name]
    if model_hint is not None:
        request["model"] = model_hint
    return request


def messages_for(
    decision: Decision, original: Sequence[Mapping[str, Any]], system_prompt: str | None
) -> list[dict[str, Any]]:
    """What LiteLLM receives: the redacted messages when a guardrail redacted, plus the prompt."""
    source = decision.messages if decision.messages is not None else original
    out = [dict(m) for m in source]
    if system_prompt is not None:
        choice = decision.prompts.get(system_prompt)
        if choice is None:
            known = ", ".join(sorted(decision.prompts)) or "none"
            raise PolicyUsageError(
                f"system_prompt={system_prompt!r}: policy {decision.policy.name} chose no such "
                f"prompt for this request (prompts chosen: {known})"
            )
        out.insert(0, {"role": "system", "content": choice.text})
    return out


def blocked_kind(decision: Decision) -> str:
    """guardrail | budget | routing: which stage blocked, from the decision's trace."""
    for entry in decision.trace:
        if entry.outcome == "block":
            return {"guardrails": "guardrail", "budgets": "budget"}.get(entry.stage, entry.stage)
    if any(b.name == decision.blocked_by for b in decision.budgets):
        return "budget"
    return "guardrail"


# -- models and deployments -----------------------------------------------------------------


def deployment_params(info: ModelInfo) -> dict[str, Any]:
    """LiteLLM ``litellm_params`` for one policy model: its model string, and its price
    when the policy's differs from LiteLLM's price map.

    Passing the price makes LiteLLM's own ``response_cost`` use what the policy says,
    so recorded spend and budget reservations agree. It is left out when LiteLLM
    already prices the model the same: LiteLLM's per-call cost lookup is several
    times slower for a deployment with its own price.
    """
    params: dict[str, Any] = {"model": info.litellm}
    price = (info.input_micros_per_mtok, info.output_micros_per_mtok)
    if price[0] is not None and price[1] is not None and price != _map_price(info.litellm):
        params["input_cost_per_token"] = price[0] / 1e12
        params["output_cost_per_token"] = price[1] / 1e12
    return params


def _map_price(litellm_model: str) -> tuple[int | None, int | None]:
    """LiteLLM's price for a model in micro-dollars per million tokens, as policyd keeps it."""
    entry = litellm_entry(litellm_model) or {}
    return tuple(  # type: ignore[return-value]
        int((Decimal(str(v)) * 10**12).to_integral_value())
        if isinstance(v := entry.get(field), int | float) and not isinstance(v, bool)
        else None
        for field in ("input_cost_per_token", "output_cost_per_token")
    )


def cache_on_by_default() -> bool:
    """Whether ``litellm.cache`` caches calls that do not opt in (the app's own cache)."""
    import litellm

    cache = litellm.cache
    return cache is not None and getattr(cache, "mode", None) != "default_off"


def chain_of(decision: Decision) -> tuple[str, ...]:
    assert decision.model is not None
    return (decision.model, *decision.fallbacks)


def try_order(decision: Decision) -> list[str]:
    """The model of each try: the chain in order, wrapping round while attempts remain."""
    chain = chain_of(decision)
    retry = decision.retry or NO_RETRY
    return [chain[i % len(chain)] for i in range(retry.attempts)]


# -- errors ---------------------------------------------------------------------------------


def classify(exc: BaseException) -> str | None:
    """The ``retry.on`` cause an LLM call's exception counts as, or None."""
    import litellm
    import openai

    if isinstance(exc, TimeoutError | openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, litellm.ContextWindowExceededError):
        return "context_window"
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.RateLimitError) or status == 429:
        return "rate_limit"
    if status == 408:
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error"
    if isinstance(exc, openai.InternalServerError) or (isinstance(status, int) and status >= 500):
        return "server_error"
    return None


def retriable(cause: str | None, retry: RetryPolicy) -> bool:
    return "any" in retry.on or (cause is not None and cause in retry.on)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- responses ------------------------------------------------------------------------------


def hidden_params(response: Any) -> dict[str, Any]:
    hidden = getattr(response, "_hidden_params", None)
    if not isinstance(hidden, dict):
        hidden = {}
        with contextlib.suppress(AttributeError):
            response._hidden_params = hidden
    return hidden


def usage_tokens(usage: Any) -> tuple[int | None, int | None]:
    if usage is None:
        return None, None
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def as_cost(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def check_choices(
    engine: Any, decision: Decision, response: Any
) -> tuple[tuple[OutputVerdict, ...], OutputVerdict | None]:
    """Run the output guardrails on every choice's text, redacting in place.

    Returns every verdict and the first blocking one (or None).
    """
    verdicts = []
    blocking = None
    for choice in getattr(response, "choices", None) or ():
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if message is None or not isinstance(text, str):
            continue
        verdict = engine.check_output(decision, text)
        verdicts.append(verdict)
        if not verdict.allowed:
            blocking = blocking or verdict
        elif verdict.text != text:
            message.content = verdict.text
    return tuple(verdicts), blocking


def has_output_guardrails(engine: Any, decision: Decision) -> bool:
    """Whether the policy revision that made ``decision`` has output guardrails (the one
    ``engine.check_output`` and ``engine.output_checker`` use)."""
    compiled = decision.revision
    if compiled is None:
        compiled = engine.compiled.policies.get(decision.policy.name)
    guards = getattr(getattr(compiled, "output_guardrails", None), "guards", None)
    return bool(guards)


def report_attempt_failure(engine: Any, decision: Decision, model: str, error: str) -> None:
    """Tell the policy's cooldowns that one try of ``model`` failed, without settling budgets."""
    engine.record_attempt(decision, model=model, error=error)
