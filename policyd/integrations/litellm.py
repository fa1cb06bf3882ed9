"""PolicyRouter: LiteLLM calls that do what the policy decided.

Per call it decides; refuses a blocked request before anything reaches
LiteLLM; sends the (redacted) messages to the decided model; walks the decided
fallback chain itself on the errors ``routing.retry.on`` names; applies the
cache directive through LiteLLM's cache; checks the answer with the output
guardrails; and records the outcome (tokens, LiteLLM's ``response_cost``,
latency, error) so budgets settle and cooldowns learn.

The ``litellm.Router`` underneath has one deployment per model id of the
policy (``model_name`` = the id), with the policy's price passed on so that
LiteLLM's cost is the policy's. LiteLLM's own retries, fallbacks and cooldowns
are off: try ``i`` (0-based) goes to model ``i mod len(chain)`` of the chain
``[decision.model, *decision.fallbacks]``, for ``retry.attempts`` tries in all,
waiting ``retry.delay_s(i)`` before each retry; ``routing.timeout`` bounds each
try. Importing this module imports litellm; ``import policyd`` never does.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import litellm

from policyd.decision import Decision
from policyd.integrations._litellm_stream import (
    DEFAULT_OVERLAP,
    AsyncPolicyStream,
    PolicyStream,
    StreamState,
    anext_chunk,
    next_chunk,
)
from policyd.integrations._litellm_support import (
    NO_RETRY,
    Attempt,
    CallInfo,
    OutputBlockedError,
    PolicyBlockedError,
    PolicyUsageError,
    as_cost,
    build_request,
    cache_on_by_default,
    check_choices,
    check_kwargs,
    classify,
    deployment_params,
    describe,
    has_output_guardrails,
    hidden_params,
    messages_for,
    report_attempt_failure,
    retriable,
    try_order,
    usage_tokens,
)
from policyd.stages.flow import Flow, Io, adrive, drive

__all__ = [
    "AsyncPolicyStream",
    "Attempt",
    "CallInfo",
    "OutputBlockedError",
    "PolicyBlockedError",
    "PolicyRouter",
    "PolicyStream",
    "PolicyUsageError",
    "call_info",
    "install_cache",
]

_UNSET: Any = object()
_NO_MODEL = "not called: the policy decided no model"


def _no_model(decision: Decision) -> str:
    return (
        f"policy {decision.policy.name} decided no model (it has no routing section); "
        "add routing to the policy, or call LiteLLM yourself with engine.decide()"
    )


def call_info(response: Any) -> CallInfo:
    """What policyd did on the call that produced ``response`` (or a finished stream)."""
    info = hidden_params(response).get("policyd")
    if not isinstance(info, CallInfo):
        raise PolicyUsageError(
            "this response did not come from a PolicyRouter call (or its stream has not ended yet)"
        )
    return info


def install_cache(cache: Any) -> bool:
    """Make ``litellm.cache`` able to carry out cache directives; False when caching is off.

    ``"memory"`` installs an in-process cache unless the app already set one;
    ``"redis://..."`` a Redis cache; a ``litellm.Cache`` is used as given; ``None``
    turns caching off. Caches installed here are opt-in (``default_off``): only
    calls that a cache rule matched use them.
    """
    from litellm.caching.caching import Cache, CacheMode
    from litellm.types.caching import LiteLLMCacheType

    if cache is None or cache is False:
        return False
    if isinstance(cache, Cache):
        litellm.cache = cache
        return True
    if cache == "memory":
        if litellm.cache is None:
            litellm.cache = Cache(type=LiteLLMCacheType.LOCAL, mode=CacheMode.default_off)
        return True
    if isinstance(cache, str) and cache.startswith(("redis://", "rediss://", "unix://")):
        litellm.cache = Cache(type=LiteLLMCacheType.REDIS, url=cache, mode=CacheMode.default_off)
        return True
    raise PolicyUsageError(
        f"cache={cache!r}: use 'memory', a redis:// URL, a litellm.Cache, or None"
    )


class PolicyRouter:
    """OpenAI-style ``completion``/``acompletion`` whose every call follows a policy.

    ``engine`` is a :class:`policyd.Engine`; ``policy`` names the policy (optional
    when the bundle has one). ``model_params`` adds LiteLLM parameters per model id
    (``api_base``, ``api_key``, ``mock_response``...), ``litellm_params`` to every
    deployment; ``router_options`` go to ``litellm.Router``. ``system_prompt``
    names a policy prompt to insert as the first (system) message of every call.
    ``stream_overlap`` is the longest match (in characters) an output guardrail is sure
    to catch across the chunks of a stream: each guardrail that looks for matches holds
    back the last ``stream_overlap + 64`` characters of a stream until later text clears
    them (several such guardrails add up).
    """

    def __init__(
        self,
        engine: Any,
        policy: str | None = None,
        *,
        system_prompt: str | None = None,
        cache: Any = "memory",
        model_params: Mapping[str, Mapping[str, Any]] | None = None,
        litellm_params: Mapping[str, Any] | None = None,
        router_options: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
        stream_overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        if isinstance(stream_overlap, bool) or not isinstance(stream_overlap, int):
            raise PolicyUsageError("stream_overlap= must be a whole number of characters")
        if stream_overlap < 1:
            raise PolicyUsageError(f"stream_overlap={stream_overlap}: use 1 or more characters")
        self.engine = engine
        self.stream_overlap = stream_overlap
        self.policy = engine.compiled.policy(policy).name
        self.system_prompt = system_prompt
        self._model_params = {k: dict(v) for k, v in (model_params or {}).items()}
        self._common_params = dict(litellm_params or {})
        self._router_options = dict(router_options or {})
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._router: Any = None
        self._router_key: Any = None
        self.caching = install_cache(cache)
        _ = self.router  # built now, so that a wrong model_params name fails here

    # -- the litellm.Router ------------------------------------------------------------------

    @property
    def router(self) -> Any:
        """The ``litellm.Router`` for the policy revision serving now."""
        compiled = self.engine.compiled.policy(self.policy)
        key = tuple(sorted(compiled.models.items()))
        if key == self._router_key:
            return self._router
        with self._lock:
            if key != self._router_key:
                self._router = self._build_router(compiled.models)
                self._router_key = key
            return self._router

    def _build_router(self, models: Mapping[str, Any]) -> Any:
        unknown = sorted(set(self._model_params) - set(models))
        if unknown:
            raise PolicyUsageError(
                f"model_params names {', '.join(unknown)}, not a model of policy "
                f"{self.policy} (its models: {', '.join(sorted(models))})"
            )
        model_list = []
        for model_id, info in sorted(models.items()):
            params = deployment_params(info)
            params.update(self._common_params)
            params.update(self._model_params.get(model_id, {}))
            model_list.append({"model_name": model_id, "litellm_params": params})
        options = {**self._router_options, "num_retries": 0, "disable_cooldowns": True}
        return litellm.Router(model_list=model_list, **options)

    # -- calls ---------------------------------------------------------------------------------

    def completion(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        context: Mapping[str, Any] | None = None,
        stream: bool = False,
        system_prompt: str | None = _UNSET,
        model: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Decide, then call LiteLLM as decided; returns its ``ModelResponse`` (or a stream).

        Raises :class:`PolicyBlockedError` when the policy blocks (nothing is sent),
        :class:`OutputBlockedError` when an output guardrail blocks the answer, and
        LiteLLM's exception of the last try when every try fails.
        """
        args = (messages, context, stream, system_prompt, model, kwargs)
        return drive(self._flow(PolicyStream, *args))

    async def acompletion(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        context: Mapping[str, Any] | None = None,
        stream: bool = False,
        system_prompt: str | None = _UNSET,
        model: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Async :meth:`completion`; the decision's timeout is enforced on every try."""
        args = (messages, context, stream, system_prompt, model, kwargs)
        return await adrive(self._flow(AsyncPolicyStream, *args))

    def _flow(
        self,
        opened: type[PolicyStream | AsyncPolicyStream],
        messages: Sequence[Mapping[str, Any]],
        context: Mapping[str, Any] | None,
        stream: bool,
        system_prompt: str | None,
        model: str | None,
        kwargs: dict[str, Any],
    ) -> Flow[Any]:
        """One call, sync or async (``opened`` is the stream class the driver returns):
        decide, walk the tries, record. Every wait, LiteLLM call and record is yielded."""
        check_kwargs(kwargs)
        request = build_request(messages, context, kwargs, model)
        decide = functools.partial(self.engine.decide, policy=self.policy)
        adecide = functools.partial(self.engine.adecide, policy=self.policy)
        decision = yield Io(decide, adecide, (request,))
        if not decision.allowed:
            raise PolicyBlockedError(decision)
        if decision.model is None:
            yield Io(self._record, self._arecord, (decision, {"error": _NO_MODEL}))
            raise PolicyUsageError(_no_model(decision))
        is_async = opened is AsyncPolicyStream
        call = _Call(self, decision, messages, system_prompt, stream, kwargs, is_async)
        for i, target in enumerate(call.order):
            if i:
                yield Io(time.sleep, asyncio.sleep, (call.delay(i),))
            started = time.perf_counter()
            try:
                response, first = yield Io(call.attempt, call.aattempt, (target,))
            except BaseException as exc:
                if call.failed(target, exc, started):
                    continue
                yield Io(self._record, self._arecord, (decision, call.outcome(target, exc)))
                _reraise(exc, call)
            if stream:  # recorded once the stream is over
                settle = functools.partial(self._settle_stream, call, target, response, started)
                return opened(
                    decision, target, response, first, self._stream_state(decision), settle
                )
            info, blocking = call.finish(target, response, started)
            yield Io(self._record, self._arecord, (decision, call.recorded(info)))
            if blocking is not None:
                raise OutputBlockedError(decision, blocking, info)
            return response
        raise AssertionError("unreachable: a retry policy has at least one attempt")

    def _record(self, decision: Decision, fields: Mapping[str, Any]) -> None:
        self.engine.record(decision, **fields)

    async def _arecord(self, decision: Decision, fields: Mapping[str, Any]) -> None:
        await self.engine.arecord(decision, **fields)

    def _stream_state(self, decision: Decision) -> StreamState:
        """A stream's state: its text checked as it streams when the policy has output
        guardrails."""
        if not has_output_guardrails(self.engine, decision):
            return StreamState()
        return StreamState(
            functools.partial(self.engine.output_checker, decision, overlap=self.stream_overlap)
        )

    def _settle_stream(
        self,
        call: _Call,
        target: str,
        response: Any,
        started: float,
        state: StreamState,
        error: BaseException | None,
    ) -> Flow[CallInfo]:
        """Record a stream that is over (a flow: the stream's driver records blocking or
        awaited)."""
        info, fields = call.stream_outcome(target, response, state, error, started)
        yield Io(self._record, self._arecord, (call.decision, fields))
        return info


class _Call:
    """The state of one call across its tries: what to send, what happened."""

    def __init__(
        self,
        owner: PolicyRouter,
        decision: Decision,
        messages: Sequence[Mapping[str, Any]],
        system_prompt: str | None,
        stream: bool,
        kwargs: Mapping[str, Any],
        is_async: bool,
    ) -> None:
        self.owner = owner
        self.decision = decision
        self.stream = stream
        self.retry = decision.retry or NO_RETRY
        self.order = try_order(decision)
        self.router = owner.router
        self.attempts: list[Attempt] = []
        prompt = owner.system_prompt if system_prompt is _UNSET else system_prompt
        sent = dict(kwargs)
        sent["messages"] = messages_for(decision, messages, prompt)
        if decision.timeout_s is not None and not is_async:  # async: asyncio.timeout, which
            sent["timeout"] = decision.timeout_s  # keeps LiteLLM's pooled clients (faster)
        if stream:
            sent["stream"] = True
            sent.setdefault("stream_options", {"include_usage": True})
        directive = decision.cache
        if owner.caching and directive is not None and directive.ttl_s > 0 and directive.key:
            sent["caching"] = True
            sent["cache"] = {
                "use-cache": True,
                "ttl": directive.ttl_s,
                "namespace": directive.namespace,
            }
            sent["cache_key"] = f"{directive.namespace}:{directive.key}"
        elif cache_on_by_default():  # the app's own cache would cache what the policy won't
            sent["cache"] = {"no-cache": True, "no-store": True}
        self.kwargs = sent

    def attempt(self, model: str) -> tuple[Any, Any]:
        """One try: LiteLLM's answer, and a stream's first chunk (so that an error before
        any output still counts as a failed try)."""
        response = self.router.completion(model=model, **self.kwargs)
        return response, next_chunk(response) if self.stream else None

    async def aattempt(self, model: str) -> tuple[Any, Any]:
        """:meth:`attempt` awaited, within the decision's timeout."""
        async with asyncio.timeout(self.decision.timeout_s):
            response = await self.router.acompletion(model=model, **self.kwargs)
            return response, await anext_chunk(response) if self.stream else None

    def delay(self, attempt: int) -> float:
        return self.retry.delay_s(attempt, self.owner._rng.random())

    def failed(self, model: str, exc: BaseException, started: float) -> bool:
        """Note a failed try; True when the walk goes on (the failure feeds cooldowns)."""
        if not isinstance(exc, Exception):  # cancelled, interrupted: never retried
            return False
        cause = classify(exc)
        latency = time.perf_counter() - started
        self.attempts.append(Attempt(model, latency, describe(exc), cause))
        if len(self.attempts) >= len(self.order) or not retriable(cause, self.retry):
            return False
        report_attempt_failure(self.owner.engine, self.decision, model, describe(exc))
        return True

    def outcome(self, model: str, exc: BaseException) -> dict[str, Any]:
        latency = self.attempts[-1].latency_s if self.attempts else None
        return {"error": describe(exc), "latency_s": latency, "model": model,
                "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}  # fmt: skip

    def finish(self, model: str, response: Any, started: float) -> tuple[CallInfo, Any]:
        latency = time.perf_counter() - started
        self.attempts.append(Attempt(model, latency))
        hidden = hidden_params(response)
        hit = hidden.get("cache_hit") is True
        tokens_in, tokens_out = (0, 0) if hit else usage_tokens(getattr(response, "usage", None))
        cost = 0.0 if hit else as_cost(hidden.get("response_cost"))
        verdicts, blocking = check_choices(self.owner.engine, self.decision, response)
        info = CallInfo(
            self.decision, model, tuple(self.attempts), hit, cost, tokens_in, tokens_out, verdicts
        )
        hidden["policyd"] = info
        return info, blocking

    def recorded(self, info: CallInfo) -> dict[str, Any]:
        return {
            "input_tokens": info.input_tokens,
            "output_tokens": info.output_tokens,
            "cost_usd": info.cost_usd,
            "latency_s": info.attempts[-1].latency_s,
            "model": info.model,
        }

    def stream_outcome(
        self,
        model: str,
        response: Any,
        state: StreamState,
        error: BaseException | None,
        started: float,
    ) -> tuple[CallInfo, dict[str, Any]]:
        latency = time.perf_counter() - started
        hidden = hidden_params(response)
        hit = hidden.get("cache_hit") is True
        tokens_in, tokens_out = (0, 0) if hit else usage_tokens(state.usage)
        cost = 0.0 if hit else as_cost(getattr(state.usage, "cost", None))
        self.attempts.append(Attempt(model, latency, describe(error) if error else None))
        info = CallInfo(
            self.decision,
            model,
            tuple(self.attempts),
            hit,
            cost,
            tokens_in,
            tokens_out,
            state.verdicts,
        )
        hidden["policyd"] = info
        fields = self.recorded(info)
        if error is not None:
            fields["error"] = describe(error)
        return info, fields


def _reraise(exc: BaseException, call: _Call) -> NoReturn:
    """Raise the last try's error with a note on the tries; our own timeout as litellm.Timeout."""
    if len(call.attempts) > 1 or (call.attempts and call.attempts[-1].cause is not None):
        tried = ", ".join(f"{a.model} ({a.error})" for a in call.attempts)
        exc.add_note(
            f"policyd: policy {call.decision.policy.name} tried {tried}; "
            f"retry allows {call.retry.attempts} attempt(s) on {', '.join(call.retry.on)}"
        )
    if isinstance(exc, TimeoutError) and not isinstance(exc, litellm.Timeout):
        timeout = call.decision.timeout_s
        replacement = litellm.Timeout(
            message=f"no answer within the policy's timeout of {timeout:g}s",
            model=call.attempts[-1].model if call.attempts else "?",
            llm_provider="policyd",
        )
        for note in getattr(exc, "__notes__", ()):
            replacement.add_note(note)
        raise replacement from exc
    raise exc
