"""Past the proxy hook's in-flight bound, a dropped decision's answer is refused, not passed.

The hook keeps each decision until its call ends, in a bounded table (the oldest dropped).
Before, an answer whose decision had been dropped skipped the output guardrails: a caller
holding enough requests open got the answers of the oldest ones unchecked.
"""

from __future__ import annotations

from types import SimpleNamespace

import litellm
import pytest
from fastapi import HTTPException
from test_litellm_stream_release import CARD, HELLO, context, engine  # noqa: F401

from policyd import Engine
from policyd.integrations import litellm_proxy
from policyd.integrations.litellm_proxy import PolicydGuardrail

USER = SimpleNamespace(team_id=None, user_id="u1", key_alias=None)


async def decided(hook: PolicydGuardrail, tenant: str) -> dict:
    data = {"model": "any", "messages": HELLO, "policyd_context": context(tenant)}
    return await hook.async_pre_call_hook(USER, None, data, "acompletion")


async def test_an_answer_whose_decision_was_dropped_is_refused(
    engine: Engine,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(litellm_proxy, "_MAX_PENDING", 2)  # instead of 10,000 open requests
    hook = PolicydGuardrail(engine=engine, policy="redactor")
    oldest = await decided(hook, "a")
    for tenant in ("b", "c"):
        await decided(hook, tenant)
    answer = await litellm.acompletion(
        model="openai/gpt-4o-mini", messages=HELLO, mock_response=f"card {CARD}"
    )
    with pytest.raises(HTTPException) as refused:  # before: returned with the card in it
        await hook.async_post_call_success_hook(oldest, USER, answer)
    assert refused.value.status_code == 503
    assert "policyd_output_unchecked" in str(refused.value.detail)

    stream = await litellm.acompletion(
        model="openai/gpt-4o-mini", messages=HELLO, mock_response=f"card {CARD}", stream=True
    )
    chunks = hook.async_post_call_streaming_iterator_hook(USER, stream, oldest)
    with pytest.raises(HTTPException):  # before: streamed through unchecked
        await anext(chunks)


async def test_a_request_the_hook_never_decided_is_untouched(engine: Engine) -> None:  # noqa: F811
    hook = PolicydGuardrail(engine=engine, policy="redactor")
    answer = await litellm.acompletion(
        model="openai/gpt-4o-mini", messages=HELLO, mock_response="plain"
    )
    data = {"model": "any", "messages": HELLO}
    assert await hook.async_post_call_success_hook(data, USER, answer) is answer
