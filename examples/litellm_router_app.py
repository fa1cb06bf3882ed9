"""A support assistant whose every LLM call follows the support-bot policy, via PolicyRouter.

Run: python examples/litellm_router_app.py   (offline: deployments answer with LiteLLM's
mock_response, and gpt-4o-mini is rate limited so that you can watch the fallback)

Drop ``model_params`` and set OPENAI_API_KEY / ANTHROPIC_API_KEY to call real providers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline price map

if importlib.util.find_spec("litellm") is None:
    sys.exit("this example needs LiteLLM: pip install 'policyd[litellm]' (or -e '.[litellm]')")

from policyd import Engine
from policyd.integrations.litellm import (
    PolicyBlockedError,
    PolicyRouter,
    call_info,
)

POLICIES = Path(__file__).resolve().parent.parent / "policies"

MOCKS = {  # LiteLLM parameters per model id of the policy: here, canned answers
    "gpt-4o-mini": {"mock_response": "litellm.RateLimitError"},
    "claude-haiku": {"mock_response": "Go to Settings > Security > Reset password."},
    "claude-sonnet": {"mock_response": "Your loop never updates `i`; add `i += 1`."},
    "gpt-4o": {"mock_response": "Your loop never updates `i`."},
}


def describe(response: object) -> str:
    info = call_info(response)
    tries = " -> ".join(
        f"{a.model}{' (' + a.cause + ')' if a.cause else ''}" for a in info.attempts
    )
    cost = f"${info.cost_usd:.6f}" if info.cost_usd is not None else "unknown"
    hit = ", cache hit" if info.cache_hit else ""
    return f"tier {info.decision.tier}: {tries}; cost {cost}{hit}"


async def main() -> None:
    engine = Engine.from_path(POLICIES)
    router = PolicyRouter(engine, "support-bot", model_params=MOCKS, system_prompt="support-system")
    pro = {"tenant": {"id": "acme", "tier": "pro"}, "user": {"id": "u-42"}, "tags": []}

    # 1. Default tier: gpt-4o-mini is rate limited, the policy's fallback answers.
    question = [{"role": "user", "content": "How do I reset my password?"}]
    answer = await router.acompletion(question, context=pro)
    print("1.", answer.choices[0].message.content, "|", describe(answer))
    print("   system prompt:", call_info(answer).decision.prompts["support-system"].version)

    # 2. Enterprise code questions go to the premium tier.
    enterprise = {**pro, "tenant": {"id": "bigco", "tier": "enterprise"}, "tags": ["code"]}
    loop = [{"role": "user", "content": "My export script loops forever."}]
    answer = await router.acompletion(loop, context=enterprise)
    print("2.", answer.choices[0].message.content, "|", describe(answer))

    # 3. FAQ answers are cached per tenant: the second identical call costs nothing.
    faq = {**pro, "feature": "faq"}
    for attempt in (1, 2):
        answer = await router.acompletion(question, context=faq, temperature=0.0)
        print(f"3.{attempt}", describe(answer))
        await asyncio.sleep(0.05)  # LiteLLM writes its cache in the background

    # 4. Blocked requests never reach a model.
    free = {**pro, "tenant": {"id": "t9", "tier": "free"}, "tags": ["code"]}
    try:
        await router.acompletion(loop, context=free)
    except PolicyBlockedError as exc:
        print(f"4. refused ({exc.kind} {exc.blocked_by}): {exc.message}")

    # 5. Streaming: chunks as LiteLLM sends them; the call is recorded when the stream ends.
    stream = await router.acompletion(loop, context=enterprise, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    print("5.", text, "|", describe(stream))

    # 6. Everything above was recorded: budgets settled, cooldowns fed, events emitted.
    print("6. policy revision", engine.status().revision, "- done")


if __name__ == "__main__":
    asyncio.run(main())
