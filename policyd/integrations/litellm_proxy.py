"""LiteLLM proxy hook: a policy bundle decides every chat request the proxy serves.

Configure it in the proxy's ``config.yaml`` as a guardrail::

    guardrails:
      - guardrail_name: policyd
        litellm_params:
          guardrail: policyd.integrations.litellm_proxy.PolicydGuardrail
          mode: [pre_call, post_call]
          default_on: true
          policy_path: ./policies        # or the POLICYD_PATH environment variable
          policy: support-bot            # optional when the bundle has one policy
          store: redis://localhost:6379/0  # optional: budgets shared with other instances

Before the call it decides: a blocked request gets HTTP 429 (budget, with
``Retry-After``) or 400 (guardrail) and never reaches a model; otherwise the
request's ``model`` becomes the decided model id (the proxy's ``model_list``
must name the policy's model ids — ``policyd export litellm`` writes it), its
messages the redacted ones, and ``fallbacks``/``num_retries``/``timeout`` and
the cache controls are set from the decision. After the call the output
guardrails run — on a stream, chunk by chunk, releasing text as soon as it is
safe (see :mod:`policyd.integrations._litellm_stream`) — and the outcome is
recorded: LiteLLM's ``response_cost`` and tokens on success, the error when the
request finally fails. A blocked stream stops the model and is recorded by the
hook itself (usage when the answer had ended, else the reservation stands).

Request attributes for the policy come from ``policyd_context`` in the request
body (or in its ``metadata``); ``request.metadata`` carries the caller's key
identity (``team_id``, ``user_id``, ``key_alias``, ``end_user``). Unlike
:class:`~policyd.integrations.litellm.PolicyRouter`, retries and fallbacks here
are LiteLLM's: the chain ``[model, *fallbacks]`` is tried once each, up to
``retry.attempts`` tries (extra tries go to the decided model first), on
whatever errors LiteLLM falls back on; backoff and ``retry.on`` are not applied.
"""

from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.types.guardrails import GuardrailEventHooks

from policyd.decision import Decision
from policyd.errors import ConfigError, PolicydError
from policyd.integrations._litellm_stream import (
    DEFAULT_OVERLAP,
    Blocked,
    StreamState,
    aclose_source,
    adrain,
)
from policyd.integrations._litellm_support import (
    NO_RETRY,
    PolicyBlockedError,
    as_cost,
    build_request,
    cache_on_by_default,
    chain_of,
    check_choices,
    describe,
    has_output_guardrails,
    messages_for,
    usage_tokens,
)
from policyd.verdict import OutputVerdict

__all__ = ["PolicydGuardrail"]

_KEY = "policyd_decision_id"
_CONTEXT = "policyd_context"
_CHAT_CALLS = frozenset({"completion", "acompletion"})
_MAX_PENDING = 10_000  # decisions awaiting their outcome; the oldest are dropped beyond this


class PolicydGuardrail(CustomGuardrail):
    """Pre-call decision, post-call output guardrails and spend recording for the proxy."""

    def __init__(
        self,
        policy_path: str | None = None,
        policy: str | None = None,
        store: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        watch: bool = False,
        system_prompt: str | None = None,
        engine: Any = None,
        stream_overlap: int = DEFAULT_OVERLAP,
        **kwargs: Any,
    ) -> None:
        if isinstance(stream_overlap, bool) or not isinstance(stream_overlap, int):
            raise ConfigError("policyd guardrail: stream_overlap must be a whole number")
        if stream_overlap < 1:
            raise ConfigError(f"policyd guardrail: stream_overlap={stream_overlap}; use 1 or more")
        kwargs.setdefault("guardrail_name", "policyd")
        kwargs.setdefault(
            "event_hook", [GuardrailEventHooks.pre_call, GuardrailEventHooks.post_call]
        )
        kwargs.setdefault("default_on", True)
        super().__init__(**kwargs)
        if engine is None:
            from policyd.engine import Engine

            path = policy_path or os.environ.get("POLICYD_PATH")
            if not path:
                raise ConfigError(
                    "policyd guardrail: set policy_path in the guardrail's litellm_params "
                    "(or the POLICYD_PATH environment variable) to the policy bundle"
                )
            engine = Engine.from_path(
                path,
                store=store or os.environ.get("POLICYD_STORE"),
                watch=watch,
                **dict(store_options or {}),
            )
        self.engine = engine
        self.policy = engine.compiled.policy(policy).name
        self.system_prompt = system_prompt
        self.stream_overlap = stream_overlap
        self._pending: OrderedDict[str, Decision] = OrderedDict()

    def should_run_guardrail(self, data: Any, event_type: GuardrailEventHooks) -> bool:
        """A policy cannot be switched off per request: pre- and post-call always run."""
        return event_type in (GuardrailEventHooks.pre_call, GuardrailEventHooks.post_call)

    # -- before the call -------------------------------------------------------------------

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        if call_type not in _CHAT_CALLS or not isinstance(data.get("messages"), list):
            return data
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        context = data.pop(_CONTEXT, None) or metadata.pop(_CONTEXT, None)
        if context is not None and not isinstance(context, Mapping):
            raise HTTPException(400, {"error": {"message": f"{_CONTEXT} must be an object",
                                                "type": "policyd_bad_request"}})  # fmt: skip
        request = build_request(data["messages"], context, {}, data.get("model"))
        for name in ("max_tokens", "temperature"):
            if data.get(name) is not None:
                request[name] = data[name]
        request["metadata"] = _identity(user_api_key_dict, data)
        try:
            decision = await self.engine.adecide(request, policy=self.policy)
        except ValueError as exc:  # RequestError: a field of the wrong type
            error = {"message": str(exc), "type": "policyd_bad_request"}
            raise HTTPException(400, {"error": error}) from None
        if not decision.allowed:
            raise _blocked(PolicyBlockedError(decision))
        data["messages"] = messages_for(decision, data["messages"], self.system_prompt)
        if decision.model is not None:  # a policy without routing leaves the model to the caller
            data["model"] = decision.model
            retry = decision.retry or NO_RETRY
            chain = chain_of(decision)
            data["fallbacks"] = list(chain[1 : retry.attempts])
            data["num_retries"] = max(0, retry.attempts - len(chain))
        if decision.timeout_s is not None:
            data["timeout"] = decision.timeout_s
        directive = decision.cache
        if directive is not None and directive.ttl_s > 0 and directive.key:
            data["cache"] = {"use-cache": True, "ttl": directive.ttl_s,
                             "namespace": directive.namespace}  # fmt: skip
            data["cache_key"] = f"{directive.namespace}:{directive.key}"
        elif cache_on_by_default():
            data["cache"] = {"no-cache": True, "no-store": True}
        metadata[_KEY] = decision.id
        self._remember(decision)
        return data

    # -- after the call ----------------------------------------------------------------------

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        decision = self._decision(data)
        if decision is None:
            return response
        _, blocking = check_choices(self.engine, decision, response)
        if blocking is not None:
            raise _output_blocked(blocking, started=False)
        return response

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        decision = self._decision(request_data)
        if decision is None or not has_output_guardrails(self.engine, decision):
            async for chunk in response:
                yield chunk
            return
        state = StreamState(
            functools.partial(self.engine.output_checker, decision, overlap=self.stream_overlap)
        )
        sent = exhausted = False
        try:
            async for chunk in response:
                for out in await state.astep(chunk):
                    sent = True
                    yield out
            exhausted = True
            for out in await state.aend():
                sent = True
                yield out
        except Blocked as blocked:
            if blocked.finished and not exhausted:  # the answer is over: read its usage
                exhausted = await adrain(response, state)
            if not exhausted:
                exhausted = True
                await aclose_source(response)  # stop the model
            await self._record_blocked(request_data, state)
            raise _output_blocked(blocked.verdict, started=sent) from None
        finally:
            if not exhausted:  # the client went away, or an error: stop the model too
                await aclose_source(response)

    async def _record_blocked(self, request_data: dict[str, Any], state: StreamState) -> None:
        """Record a stream an output guardrail stopped: it worked, and is paid for (the
        failure hook that follows must not count it as the model's error)."""
        decision = self._take(request_data)
        if decision is None:
            return
        tokens_in, tokens_out = usage_tokens(state.usage)
        await self.engine.arecord(
            decision,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=as_cost(getattr(state.usage, "cost", None)),
            model=_model_group(request_data) or decision.model,
        )

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        decision = self._take(kwargs)
        if decision is None:
            return
        hit = kwargs.get("cache_hit") is True
        tokens_in, tokens_out = (
            (0, 0) if hit else usage_tokens(getattr(response_obj, "usage", None))
        )
        await self.engine.arecord(
            decision,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=0.0 if hit else as_cost(kwargs.get("response_cost")),
            latency_s=_seconds(start_time, end_time),
            model=_model_group(kwargs) or decision.model,
        )

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> None:
        decision = self._take(request_data)
        if decision is not None:
            await self.engine.arecord(
                decision, error=describe(original_exception), input_tokens=0, output_tokens=0,
                cost_usd=0.0,
            )  # fmt: skip

    # -- bookkeeping ---------------------------------------------------------------------------

    def _remember(self, decision: Decision) -> None:
        self._pending[decision.id] = decision
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)

    def _decision(self, data: Mapping[str, Any]) -> Decision | None:
        decision_id = _decision_id(data)
        return self._pending.get(decision_id) if decision_id else None

    def _take(self, data: Mapping[str, Any]) -> Decision | None:
        decision_id = _decision_id(data)
        return self._pending.pop(decision_id, None) if decision_id else None


def _decision_id(data: Mapping[str, Any]) -> str | None:
    sources = [data.get("metadata"), data.get("litellm_metadata")]
    params = data.get("litellm_params")
    if isinstance(params, Mapping):
        sources += [params.get("metadata"), params.get("litellm_metadata")]
    for source in sources:
        if isinstance(source, Mapping) and isinstance(source.get(_KEY), str):
            return str(source[_KEY])
    return None


def _model_group(kwargs: Mapping[str, Any]) -> str | None:
    params = kwargs.get("litellm_params")
    for source in (kwargs.get("metadata"), params.get("metadata") if isinstance(params, Mapping)
                   else None):  # fmt: skip
        if isinstance(source, Mapping) and isinstance(source.get("model_group"), str):
            return str(source["model_group"])
    return None


def _identity(user_api_key_dict: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "team_id": getattr(user_api_key_dict, "team_id", None),
        "user_id": getattr(user_api_key_dict, "user_id", None),
        "key_alias": getattr(user_api_key_dict, "key_alias", None),
        "end_user": data.get("user"),
    }


def _seconds(start: Any, end: Any) -> float | None:
    try:
        return float((end - start).total_seconds())
    except (TypeError, AttributeError):
        return None


class StreamBlockedError(PolicydError):
    """An output guardrail stopped a stream after some of it was sent: the proxy turns this
    into an SSE error event (``message``, ``type``, ``code``) ending the stream (an
    HTTPException raised at that point would cut the stream off without a word)."""

    def __init__(self, message: str, blocked_by: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.type = "policyd_output_blocked"
        self.param = None
        self.status_code = 400
        self.blocked_by = blocked_by


def _output_blocked(verdict: OutputVerdict, *, started: bool) -> Exception:
    """The error for an answer an output guardrail blocked: an HTTP 400 before anything
    was sent, an SSE error event once the stream has started."""
    message = verdict.message or f"Response blocked by {verdict.blocked_by}"
    if started:
        return StreamBlockedError(f"{message} (output guardrail {verdict.blocked_by})",
                                  verdict.blocked_by)  # fmt: skip
    return HTTPException(400, {"error": {"message": message, "type": "policyd_output_blocked",
                                         "blocked_by": verdict.blocked_by}})  # fmt: skip


def _blocked(exc: PolicyBlockedError) -> HTTPException:
    status = 429 if exc.kind == "budget" else 400
    headers = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    detail = {"error": {"message": exc.message, "type": "policyd_blocked",
                        "blocked_by": exc.blocked_by, "kind": exc.kind,
                        "retry_after": exc.retry_after}}  # fmt: skip
    return HTTPException(status, detail, headers=headers)
