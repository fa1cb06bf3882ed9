"""Output guardrails on answers and streams; streamed calls fall back, record and settle."""

from __future__ import annotations

from typing import Any

import pytest
from llm_setup import ALL_OK, CONTEXT, HELLO, answers

from policyd.integrations.litellm import (
    AsyncPolicyStream,
    OutputBlockedError,
    PolicyRouter,
    PolicyStream,
    call_info,
)

EXTRACT = {**CONTEXT, "feature": "extract"}


def budget_spent(engine: Any, tenant: str = "acme") -> float:
    decision = engine.decide(
        {"tenant": {"id": tenant, "tier": "pro"}, "user": {"id": "probe"}, "messages": []},
        policy="llm-app",
    )
    engine.record(decision, input_tokens=0, output_tokens=0, cost_usd=0.0)
    return next(b.spent_usd for b in decision.budgets if b.name == "tenant-daily")


async def test_an_answer_that_passes_the_output_guardrails_is_returned(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=answers(**{"fast-a": '{"name": "Ada"}'}))
    response = await router.acompletion(HELLO, context=EXTRACT)
    (verdict,) = call_info(response).output
    assert verdict.allowed and response.choices[0].message.content == '{"name": "Ada"}'


async def test_a_blocked_answer_raises_but_its_cost_is_recorded(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=answers(**{"fast-a": "Ada, I think"}))
    with pytest.raises(OutputBlockedError) as raised:
        await router.acompletion(HELLO, context=EXTRACT)
    error = raised.value
    assert error.blocked_by == "extract-json"
    assert error.message == "The answer was not the JSON we asked for"
    assert error.info is not None and error.info.cost_usd and error.info.cost_usd > 0
    assert round(budget_spent(engine) * 1e6) == round(error.info.cost_usd * 1e6)


def test_sync_calls_check_the_output_too(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=answers(**{"fast-a": "no json"}))
    with pytest.raises(OutputBlockedError, match="not the JSON"):
        router.completion(HELLO, context=EXTRACT)


async def test_output_redaction_replaces_the_answer_text(engine: Any) -> None:
    router = PolicyRouter(
        engine, "llm-app", model_params=answers(**{"fast-a": "Mail bob@example.org today"})
    )
    response = await router.acompletion(HELLO, context=CONTEXT)
    text = response.choices[0].message.content
    assert "bob@example.org" not in text, "the pii-out guardrail should redact the e-mail"
    assert text.startswith("Mail ") and text.endswith(" today")


async def test_a_stream_without_output_guardrails_passes_through_and_records(
    engine: Any,
) -> None:
    router = PolicyRouter(engine, "lean", model_params=answers(**{"lean-a": "streamed text"}))
    stream = await router.acompletion(HELLO, stream=True)
    assert isinstance(stream, AsyncPolicyStream) and stream.model == "lean-a"
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed text"
    info = stream.info
    assert info is not None and call_info(stream) is info
    assert info.output == ()  # nothing to check: passed straight through
    usage = chunks[-1].usage
    assert (info.input_tokens, info.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert info.cost_usd == pytest.approx(usage.cost)


async def test_a_stream_falls_back_when_its_first_model_fails(engine: Any, sent: Any) -> None:
    params = answers(**{"lean-a": "litellm.RateLimitError", "lean-b": "from b"})
    router = PolicyRouter(engine, "lean", model_params=params)
    stream = await router.acompletion(HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "from b"
    assert stream.model == "lean-b" and sent.models == ["gpt-4o-mini", "gpt-4o"]
    assert [a.cause for a in stream.info.attempts] == ["rate_limit", None]


async def test_a_guarded_stream_is_checked_whole_before_any_chunk(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=answers(**{"fast-a": "not json at all"}))
    stream = await router.acompletion(HELLO, context=EXTRACT, stream=True)
    with pytest.raises(OutputBlockedError):
        await stream.__anext__()  # blocked before a single chunk was released
    assert stream.info is not None and stream.info.cost_usd and stream.info.cost_usd > 0
    assert round(budget_spent(engine) * 1e6) == round(stream.info.cost_usd * 1e6)


async def test_a_guarded_stream_that_passes_is_replayed_unchanged(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=answers(**{"fast-a": '{"name": "Ada"}'}))
    stream = await router.acompletion(HELLO, context=EXTRACT, stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 2  # still chunked
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == '{"name": "Ada"}'
    assert [v.allowed for v in stream.info.output] == [True]


async def test_a_streamed_answer_is_redacted_by_the_output_guardrails(engine: Any) -> None:
    router = PolicyRouter(
        engine, "llm-app", model_params=answers(**{"fast-a": "Mail bob@example.org today"})
    )
    stream = await router.acompletion(HELLO, context=CONTEXT, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "bob@example.org" not in text, "the pii-out guardrail should redact the e-mail"
    assert text.startswith("Mail ")


def test_sync_streams_record_when_they_end(engine: Any) -> None:
    router = PolicyRouter(engine, "llm-app", model_params=ALL_OK)
    stream = router.completion(HELLO, context=CONTEXT, stream=True)
    assert isinstance(stream, PolicyStream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "from fast-a"
    assert stream.info is not None and stream.info.cost_usd
    assert round(budget_spent(engine) * 1e6) == round(stream.info.cost_usd * 1e6)


async def test_a_stream_closed_early_still_settles(engine: Any) -> None:
    router = PolicyRouter(engine, "lean", model_params=answers(**{"lean-a": "a long answer here"}))
    stream = await router.acompletion(HELLO, stream=True)
    await stream.__anext__()
    await stream.aclose()
    assert stream.info is not None and stream.info.model == "lean-a"


def test_a_sync_stream_closed_early_still_settles(engine: Any) -> None:
    router = PolicyRouter(engine, "lean", model_params=answers(**{"lean-a": "a long answer here"}))
    stream = router.completion(HELLO, stream=True)
    next(stream)
    stream.close()
    assert stream.info is not None and stream.info.model == "lean-a"
    with pytest.raises(StopIteration):
        next(stream)
