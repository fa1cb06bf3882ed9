"""LiteLLM proxy hook: a policy bundle decides every request the proxy serves.

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
          # watch: true                  # the default: a changed bundle goes live (logged)
          # identity: {tenant.id: team_id, tags: tags}   # attributes LiteLLM authenticates
          # refuse_context: [tenant]     # a caller may not send these in policyd_context
          # unsupported_call_types: refuse   # or allow: other routes pass unchecked (logged)

Enforced routes (:mod:`policyd.integrations._proxy_routes`): chat completions,
Responses, Anthropic messages, text completions and embeddings; a request on any
other route is refused (HTTP 403 naming the route) unless ``unsupported_call_types:
allow``. Before the call it decides: a blocked request gets HTTP 429 (budget, with
``Retry-After``) or 400 (guardrail) and never reaches a model; otherwise the route's
text becomes the redacted text, the request's ``model`` the decided model id (not on
embeddings; the proxy's ``model_list`` must name the policy's model ids — ``policyd
export litellm`` writes it), and ``fallbacks``/``num_retries``/``timeout`` and the
cache controls are set from the decision. After the call the output guardrails run
on the answer's text — on a chat stream chunk by chunk, releasing text as soon as it
is safe (see :mod:`policyd.integrations._litellm_stream`) — and the outcome is
recorded: LiteLLM's ``response_cost`` and tokens on success, the error when the
request finally fails. A blocked stream stops the model and is recorded by the hook
itself (usage when the answer had ended, else the reservation stands).

Request attributes: see :mod:`policyd.integrations._proxy_context` (what the caller's
``policyd_context`` may set, and what comes from LiteLLM's authenticated identity).
What the hook did is in LiteLLM's logging: :mod:`policyd.integrations._proxy_report`.
Attempts are exactly the decision's: ``fallbacks`` lists try 2..n (try *i* goes to
model *i mod len(chain)*, as in PolicyRouter) and ``num_retries`` is 0, so LiteLLM
calls each listed model once; unlike PolicyRouter, it falls back on whatever errors
LiteLLM falls back on — backoff and ``retry.on`` are not applied.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from litellm.constants import RETURN_RAW_MODEL_NAME_METADATA_KEY
from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.litellm_core_utils.core_helpers import get_or_create_metadata_bucket
from litellm.types.guardrails import GuardrailEventHooks

from policyd.decision import Decision
from policyd.errors import ConfigError
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
    cache_on_by_default,
    chain_of,
    describe,
    has_output_guardrails,
    messages_for,
    usage_tokens,
)
from policyd.integrations._proxy_context import ContextRefused, ContextRules
from policyd.integrations._proxy_errors import (
    Refusal,
    StreamBlockedError,
    bad_request,
    output_blocked,
    output_unchecked,
)
from policyd.integrations._proxy_errors import blocked as blocked_error
from policyd.integrations._proxy_report import (
    SUMMARY_KEY,
    add_output,
    output_counts,
    record_guardrail,
    redaction_counts,
    summary,
)
from policyd.integrations._proxy_routes import (
    ROUTED,
    ROUTES,
    STREAM_CHECKED,
    RouteInputError,
    answer_slots,
    read_input,
    route_of,
)
from policyd.integrations._proxy_support import (
    CONTEXT_KEY,
    DECISION_KEY,
    allowed_call_types,
    count_retries,
    decision_id,
    log_to_stderr,
    model_group,
    pop_context,
    request_path,
    seconds,
)
from policyd.verdict import OutputVerdict

__all__ = ["PolicydGuardrail", "StreamBlockedError"]

log = logging.getLogger("policyd")

_MAX_PENDING = 10_000  # decisions awaiting their outcome; the oldest are dropped beyond this
_ENFORCED = ", ".join(sorted({path for _, path in ROUTES.values()}))


class PolicydGuardrail(CustomGuardrail):
    """Pre-call decision, post-call output guardrails and spend recording for the proxy."""

    def __init__(
        self,
        policy_path: str | None = None,
        policy: str | None = None,
        store: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        watch: bool = True,
        system_prompt: str | None = None,
        engine: Any = None,
        stream_overlap: int = DEFAULT_OVERLAP,
        identity: Mapping[str, str] | None = None,
        refuse_context: list[str] | None = None,
        unsupported_call_types: str | list[str] = "refuse",
        log_level: str | None = "INFO",
        **kwargs: Any,
    ) -> None:
        if isinstance(stream_overlap, bool) or not isinstance(stream_overlap, int):
            raise ConfigError("policyd guardrail: stream_overlap must be a whole number")
        if stream_overlap < 1:
            raise ConfigError(f"policyd guardrail: stream_overlap={stream_overlap}; use 1 or more")
        self.context_rules = ContextRules.parse(identity, refuse_context)
        self.allow_call_types = allowed_call_types(unsupported_call_types)
        kwargs.setdefault("guardrail_name", "policyd")
        kwargs.setdefault(
            "event_hook", [GuardrailEventHooks.pre_call, GuardrailEventHooks.post_call]
        )
        kwargs.setdefault("default_on", True)
        super().__init__(**kwargs)
        if engine is None:  # the proxy builds it from its config: its log goes to stderr
            from policyd.engine import Engine

            log_to_stderr(log_level)

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
            log.info(
                "policyd: serving %s from %s (revision %s; hot reload %s)",
                engine.compiled.policy(policy).name,
                path,
                engine.compiled.digest[:12],
                "on" if watch else "off (watch: false)",
            )
        self.engine = engine
        self.policy = engine.compiled.policy(policy).name
        self.system_prompt = system_prompt
        self.stream_overlap = stream_overlap
        self._pending: OrderedDict[str, Decision] = OrderedDict()
        self._tries: dict[str, int] = {}  # upstream calls made per pending decision
        self._passed: set[str] = set()
        if self.allow_call_types:
            log.warning(
                "policyd: unsupported_call_types: allow: requests on routes other than %s "
                "reach models without the policy",
                _ENFORCED,
            )

    def should_run_guardrail(self, data: Any, event_type: GuardrailEventHooks) -> bool:
        """A policy cannot be switched off per request: pre- and post-call always run
        (MCP tool calls included, so they are refused like any route policyd cannot check)."""
        return event_type in (
            GuardrailEventHooks.pre_call,
            GuardrailEventHooks.pre_mcp_call,
            GuardrailEventHooks.post_call,
        )

    # -- before the call -------------------------------------------------------------------

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        started = time.time()
        route = route_of(call_type)
        if route is None:
            return self._unsupported(str(call_type), data)
        name, path = route
        _, bucket = get_or_create_metadata_bucket(data)
        context = pop_context(data, bucket)
        if context is not None and not isinstance(context, Mapping):
            raise bad_request(f"{CONTEXT_KEY} must be an object")
        try:
            text = read_input(name, data)
            attributes = self.context_rules.build(context, user_api_key_dict, data)
        except (RouteInputError, ContextRefused) as exc:
            raise bad_request(str(exc)) from None
        if data.get("stream") and name not in STREAM_CHECKED and self._checks_output():
            raise bad_request(
                f"stream: policy {self.policy} checks answers, which policyd can do on a "
                f"stream only on /v1/chat/completions; ask {path} without stream"
            )
        request = {**attributes, "messages": text.messages}
        if data.get("model") is not None:
            request["model"] = data["model"]
        if text.max_tokens is not None:
            request["max_tokens"] = text.max_tokens
        if data.get("temperature") is not None:
            request["temperature"] = data["temperature"]
        try:
            decision = await self.engine.adecide(request, policy=self.policy)
        except ValueError as exc:  # RequestError: a field of the wrong type
            raise bad_request(str(exc)) from None
        blocked = None if decision.allowed else PolicyBlockedError(decision)
        report = summary(decision, path, blocked.kind if blocked else None)
        bucket[DECISION_KEY] = decision.id
        bucket[SUMMARY_KEY] = report
        if blocked is not None:
            self._record("pre_call", data, report, True, redaction_counts(decision), started)
            raise blocked_error(blocked)
        if name == "chat":
            data["messages"] = messages_for(decision, data["messages"], self.system_prompt)
        elif decision.messages is not None:
            text.write_back(decision.messages)
        if decision.model is not None and name in ROUTED:  # no routing: the caller's model
            data["model"] = decision.model
            # exactly the decided attempts: the tries a short chain leaves over are retries of
            # the decided model; each fallback is tried once (num_retries 0 on it, or LiteLLM
            # would retry it as often as the first model)
            retry = decision.retry or NO_RETRY
            chain = chain_of(decision)
            data["fallbacks"] = [{"model": m, "num_retries": 0} for m in chain[1 : retry.attempts]]
            data["num_retries"] = max(0, retry.attempts - len(chain))
            # the answer's `model` says which model served, not the name the client asked for
            bucket[RETURN_RAW_MODEL_NAME_METADATA_KEY] = True
        if decision.timeout_s is not None:
            data["timeout"] = decision.timeout_s
        directive = decision.cache
        if directive is not None and directive.ttl_s > 0 and directive.key:
            data["cache"] = {"use-cache": True, "ttl": directive.ttl_s,
                             "namespace": directive.namespace}  # fmt: skip
            data["cache_key"] = f"{directive.namespace}:{directive.key}"
        elif cache_on_by_default():
            data["cache"] = {"no-cache": True, "no-store": True}
        masked = redaction_counts(decision)
        self._record("pre_call", data, report, bool(masked), masked, started)
        self._remember(decision)
        return data

    def _checks_output(self) -> bool:
        compiled = self.engine.compiled.policies.get(self.policy)
        return bool(getattr(getattr(compiled, "output_guardrails", None), "guards", None))

    def _unsupported(self, call_type: str, data: dict[str, Any]) -> dict[str, Any]:
        path = request_path(data)
        if "*" in self.allow_call_types or call_type in self.allow_call_types:
            if call_type not in self._passed:
                self._passed.add(call_type)
                log.warning(
                    "policyd: %s (call type %s) passed without the policy "
                    "(unsupported_call_types allows it)",
                    path or "a request",
                    call_type,
                )
            return data
        where = f"{path} (call type {call_type})" if path else f"call type {call_type}"
        message = (
            f"policyd: {where} is not a route policy {self.policy} can enforce, so it is "
            f"refused; use {_ENFORCED}, or set unsupported_call_types: allow (or a list of "
            "call types) in the policyd guardrail's litellm_params to let it through unchecked"
        )
        raise Refusal(403, {"message": message, "type": "policyd_unsupported_route",
                            "call_type": call_type})  # fmt: skip

    def _record(
        self,
        event: str,
        data: dict[str, Any],
        report: dict[str, Any],
        intervened: bool,
        masked: dict[str, int],
        started: float,
    ) -> None:
        try:
            record_guardrail(self, data, event=event, report=dict(report), intervened=intervened,
                             masked=masked, started=started, ended=time.time())  # fmt: skip
        except Exception:  # logging must never fail a request
            log.debug("policyd: could not add guardrail logging information", exc_info=True)

    # -- after the call ----------------------------------------------------------------------

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        decision = self._decision(data)
        if decision is None:
            if self._forgotten(data):
                raise output_unchecked()
            return response
        started = time.time()
        verdicts: list[OutputVerdict] = []
        blocking = None
        for container, key, _ in answer_slots(response):
            text = container[key]
            verdict = self.engine.check_output(decision, text)
            verdicts.append(verdict)
            if not verdict.allowed:
                blocking = blocking or verdict
            elif verdict.text != text:
                container[key] = verdict.text
        _, bucket = get_or_create_metadata_bucket(data)
        report = add_output(dict(bucket.get(SUMMARY_KEY) or summary(decision, "")), verdicts)
        bucket[SUMMARY_KEY] = report
        masked = output_counts(verdicts)
        self._record("post_call", data, report, blocking is not None or bool(masked), masked,
                     started)  # fmt: skip
        if blocking is not None:
            raise output_blocked(blocking, started=False)
        count_retries(response, self._tries.get(decision.id))
        return response

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        """Count each upstream call LiteLLM makes for a decision (its retries included)."""
        key = decision_id(kwargs) if isinstance(kwargs, Mapping) else None
        if key is not None and key in self._pending:
            self._tries[key] = self._tries.get(key, 0) + 1

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        decision = self._decision(request_data)
        if decision is None and self._forgotten(request_data):
            await aclose_source(response)
            raise output_unchecked()
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
            raise output_blocked(blocked.verdict, started=sent) from None
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
            model=model_group(request_data) or decision.model,
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
            latency_s=seconds(start_time, end_time),
            model=model_group(kwargs) or decision.model,
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
            dropped, _ = self._pending.popitem(last=False)
            self._tries.pop(dropped, None)
            log.warning(
                "policyd: over %d requests in flight: dropped decision %s (its answer will "
                "be refused if the policy checks output, and its spend is not recorded)",
                _MAX_PENDING,
                dropped,
            )

    def _forgotten(self, data: Mapping[str, Any]) -> bool:
        """A request this hook decided (its decision id is on it) whose decision was
        dropped, under a policy with output guardrails: fail closed, never pass it."""
        if decision_id(data) is None:
            return False
        compiled = self.engine.compiled.policies.get(self.policy)
        return bool(getattr(getattr(compiled, "output_guardrails", None), "guards", None))

    def _decision(self, data: Mapping[str, Any]) -> Decision | None:
        key = decision_id(data)
        return self._pending.get(key) if key else None

    def _take(self, data: Mapping[str, Any]) -> Decision | None:
        key = decision_id(data)
        if not key:
            return None
        self._tries.pop(key, None)
        return self._pending.pop(key, None)
