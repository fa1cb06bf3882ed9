"""Guarded streams release text as the output guardrails clear it, never the unsafe text.

Streams come from LiteLLM's own ``mock_response`` streaming (three characters a chunk);
a spy around the router's LiteLLM call counts the chunks taken from the upstream stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd import Engine
from policyd.integrations._litellm_stream import StreamState
from policyd.integrations.litellm import OutputBlockedError, PolicyRouter

BUNDLE = """\
apiVersion: policyd/v1
kind: Policy
metadata: {name: redactor, version: "1"}
context:
  tenant: {id: string}
models:
  m: {litellm: openai/gpt-4o-mini, price: {input_per_mtok: 1.0, output_per_mtok: 1.0}}
tiers:
  main: {targets: [{model: m}]}
routing: {default: main}
guardrails:
  output:
    - name: pii-out
      pii: [credit_card, secret, email]
      action: redact
budgets:
  - {name: daily, key: request.tenant.id, window: calendar_day, limit: {usd: 100.0}}
---
apiVersion: policyd/v1
kind: Policy
metadata: {name: blocker, version: "1"}
context:
  tenant: {id: string}
models:
  m: {litellm: openai/gpt-4o-mini, price: {input_per_mtok: 1.0, output_per_mtok: 1.0}}
tiers:
  main: {targets: [{model: m}]}
routing: {default: main}
guardrails:
  output:
    - name: pii-out
      pii: [credit_card, secret, email]
      action: redact
    - name: no-launch
      deny_patterns: ['launch code \\d+']
      action: block
      message: That answer is not allowed
budgets:
  - {name: daily, key: request.tenant.id, window: calendar_day, limit: {usd: 100.0}}
"""
HELLO = [{"role": "user", "content": "hello"}]
CARD = "4111 1111 1111 1111"
SECRET = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
FILLER = "All is well on this fine day, and the answer goes on. "
# Each matching guardrail holds back OVERLAP + 64 characters, so text comes out long before
# these streams end; every match in them (the longest: SECRET, 72) is shorter than OVERLAP.
OVERLAP = 256


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "policies.yaml").write_text(BUNDLE, encoding="utf-8")
    with Engine.from_path(tmp_path) as eng:
        yield eng


def context(tenant: str = "acme") -> dict[str, Any]:
    return {"tenant": {"id": tenant}}


class Counted:
    """The upstream LiteLLM stream, counting the chunks taken from it (a spy, not a mock)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.taken = 0
        self.ended = False
        self.closed = False
        self._hidden_params = inner._hidden_params

    @property
    def completion_stream(self) -> Any:  # how a sync LiteLLM stream is stopped
        return SimpleNamespace(close=self._close)

    def _close(self) -> None:
        self.closed = True
        self.inner.completion_stream.close()

    def __iter__(self) -> Counted:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self.inner)
        except StopIteration:
            self.ended = True
            raise
        self.taken += 1
        return chunk

    def __aiter__(self) -> Counted:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self.inner.__anext__()
        except StopAsyncIteration:
            self.ended = True
            raise
        self.taken += 1
        return chunk

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


def spied(router: PolicyRouter, monkeypatch: pytest.MonkeyPatch) -> list[Counted]:
    """Wrap the router's LiteLLM streams in :class:`Counted`; the list fills per call."""
    streams: list[Counted] = []
    real, areal = router.router.completion, router.router.acompletion

    def completion(**kwargs: Any) -> Any:
        streams.append(Counted(real(**kwargs)))
        return streams[-1]

    async def acompletion(**kwargs: Any) -> Any:
        streams.append(Counted(await areal(**kwargs)))
        return streams[-1]

    monkeypatch.setattr(router.router, "completion", completion)
    monkeypatch.setattr(router.router, "acompletion", acompletion)
    return streams


def router_for(engine: Engine, policy: str, answer: str, **options: Any) -> PolicyRouter:
    options.setdefault("stream_overlap", OVERLAP)
    return PolicyRouter(engine, policy, model_params={"m": {"mock_response": answer}}, **options)


def text_of(chunk: Any) -> str:
    return "".join(c.delta.content or "" for c in chunk.choices or ())


def budget_spent(engine: Engine, tenant: str, policy: str = "blocker") -> float:
    decision = engine.decide({**context(tenant), "messages": []}, policy=policy)
    engine.record(decision, input_tokens=0, output_tokens=0, cost_usd=0.0)
    spent = next(b.spent_usd for b in decision.budgets if b.name == "daily")
    assert spent is not None
    return spent


def count_records(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Note each record()/arecord() call (and still make it)."""
    calls: list[str] = []
    record, arecord = engine.record, engine.arecord

    def spy(decision: Any, **kwargs: Any) -> None:
        calls.append("record")
        record(decision, **kwargs)

    async def aspy(decision: Any, **kwargs: Any) -> None:
        calls.append("arecord")
        await arecord(decision, **kwargs)

    monkeypatch.setattr(engine, "record", spy)
    monkeypatch.setattr(engine, "arecord", aspy)
    return calls


# -- (1) early release -------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [OVERLAP, 4096])
async def test_text_comes_out_long_before_the_upstream_ends(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, overlap: int
) -> None:
    answer = (FILLER * 200)[: overlap + 64 + 600]
    router = router_for(engine, "redactor", answer, stream_overlap=overlap)
    upstream = spied(router, monkeypatch)
    stream = await router.acompletion(HELLO, context=context(), stream=True)
    yielded: list[str] = []
    taken_at_first = None
    async for chunk in stream:
        if text_of(chunk) and taken_at_first is None:
            taken_at_first = upstream[0].taken
            assert stream.info is None, "the call is recorded only when the stream ends"
            assert not upstream[0].ended
        yielded.append(text_of(chunk))
    total = upstream[0].taken
    assert taken_at_first is not None and upstream[0].ended
    # nothing is held back beyond what a later match could still reach (overlap + 64)
    assert taken_at_first * 3 <= overlap + 64 + 3
    assert total - taken_at_first >= 150, (taken_at_first, total)
    assert "".join(yielded) == answer
    assert answer.startswith(next(t for t in yielded if t))


def test_sync_streams_release_early_too(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = FILLER * 12
    router = router_for(engine, "redactor", answer)
    upstream = spied(router, monkeypatch)
    stream = router.completion(HELLO, context=context(), stream=True)
    first = next(c for c in stream if text_of(c))
    assert answer.startswith(text_of(first)) and not upstream[0].ended
    rest = "".join(text_of(c) for c in stream)
    assert text_of(first) + rest == answer and upstream[0].ended

    stream = router.completion(HELLO, context=context(), stream=True)
    next(c for c in stream if text_of(c))
    stream.close()  # stopping early stops LiteLLM's stream and records the call
    assert upstream[1].closed and not upstream[1].ended and stream.info is not None


# -- (2) redaction across chunk boundaries ----------------------------------------------------


@pytest.mark.parametrize("shift", [0, 1, 2])  # every way a 3-character chunking can cut them
@pytest.mark.parametrize("sync", [False, True])
async def test_a_card_and_a_secret_split_across_chunks_never_come_out(
    engine: Engine, shift: int, sync: bool
) -> None:
    answer = "x" * shift + f"Pay with {CARD} using key {SECRET} please. " + FILLER * 4
    router = router_for(engine, "redactor", answer)
    if sync:
        stream: Any = router.completion(HELLO, context=context(), stream=True)
        texts = [text_of(c) for c in stream]
    else:
        stream = await router.acompletion(HELLO, context=context(), stream=True)
        texts = [text_of(c) async for c in stream]
    joined = "".join(texts)
    assert "[CREDIT_CARD]" in joined and "[SECRET]" in joined
    assert re.search(r"\d{4}", joined) is None and "sk-proj" not in joined
    assert not any("1111" in t or "Ab3d" in t for t in texts)
    assert joined == engine.check_output(stream.decision, answer).text


# -- (3) a block stops the stream ---------------------------------------------------------------


async def test_a_block_stops_the_stream_and_the_upstream(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = FILLER * 16 + "the launch code 4242 is " + FILLER * 40
    router = router_for(engine, "blocker", answer)
    upstream = spied(router, monkeypatch)
    stream = await router.acompletion(HELLO, context=context(), stream=True)
    yielded: list[str] = []
    with pytest.raises(OutputBlockedError) as raised:
        async for chunk in stream:
            yielded.append(text_of(chunk))
    assert raised.value.blocked_by == "no-launch"
    assert raised.value.message == "That answer is not allowed"
    assert "".join(yielded), "text before the violation came out first"
    assert "launch" not in "".join(yielded) and "4242" not in "".join(yielded)
    assert upstream[0].closed and not upstream[0].ended
    assert upstream[0].taken * 3 < len(answer) // 2  # stopped soon after the match
    assert raised.value.info is stream.info is not None
    assert [v.allowed for v in stream.info.output] == [False]


def test_a_sync_block_stops_the_stream_and_the_upstream(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = "launch code 7 " + FILLER * 30
    router = router_for(engine, "blocker", answer)
    upstream = spied(router, monkeypatch)
    stream = router.completion(HELLO, context=context(), stream=True)
    with pytest.raises(OutputBlockedError, match="not allowed"):
        next(stream)  # the violation is visible before anything was safe to release
    assert upstream[0].closed and not upstream[0].ended
    with pytest.raises(StopIteration):
        next(upstream[0].inner)  # LiteLLM's stream really is closed


# -- (4) the joined text is check_output's ------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "short",
        f"{CARD}",
        f"mail bob@example.org or {CARD}" + FILLER * 5,
        FILLER * 5 + f"key {SECRET}",
        (FILLER + "ann@example.com ") * 8,
    ],
)
async def test_the_joined_stream_is_what_check_output_gives(engine: Engine, answer: str) -> None:
    router = router_for(engine, "redactor", answer)
    stream = await router.acompletion(HELLO, context=context(), stream=True)
    joined = "".join([text_of(c) async for c in stream])
    assert joined == engine.check_output(stream.decision, answer).text


class _Delta:
    def __init__(self, content: str | None) -> None:
        self.content = content
        self.role: str | None = None


class _Choice:
    def __init__(self, index: int, content: str | None, finish: str | None = None) -> None:
        self.index = index
        self.delta = _Delta(content)
        self.finish_reason = finish


class _Chunk:
    def __init__(self, choices: list[_Choice], usage: Any = None) -> None:
        self.choices = choices
        self.usage = usage


# Answers made of words, so that no match runs across two of them; chunk cuts fall anywhere.
WORDS = st.sampled_from(["a", "ok,", CARD, "bob@example.org", SECRET[:48], "lorem ipsum", "\n"])
ANSWER = st.lists(WORDS, max_size=25).map(" ".join)
CUTS = st.lists(st.integers(1, 40), max_size=60)


def cut(text: str, sizes: list[int]) -> list[str]:
    parts, at = [], 0
    for size in sizes:
        if at < len(text):
            parts.append(text[at : at + size])
            at += size
    return [*parts, text[at:]] if at < len(text) else parts


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ANSWER, ANSWER, CUTS, CUTS, st.booleans())
def test_each_choice_of_a_stream_spells_its_checked_text(
    engine: Engine, text0: str, text1: str, cuts0: list[int], cuts1: list[int], finish: bool
) -> None:
    """The released pieces of each choice join up to check_output's text, however the
    answer is chunked; each choice's first piece carries its role; usage comes last."""
    decision = engine.decide({**context(), "messages": HELLO}, policy="redactor")
    state = StreamState(lambda: engine.output_checker(decision, overlap=64))
    parts0, parts1 = cut(text0, cuts0), cut(text1, cuts1)
    chunks = [_Chunk([_Choice(0, p), _Choice(1, q)]) for p, q in zip(parts0, parts1, strict=False)]
    chunks += [_Chunk([_Choice(0, p)]) for p in parts0[len(parts1) :]]
    chunks += [_Chunk([_Choice(1, q)]) for q in parts1[len(parts0) :]]
    for index in (0, 1):  # as from LiteLLM: the role on each choice's first chunk only
        first = next((c for k in chunks for c in k.choices if c.index == index), None)
        if first is not None:
            first.delta.role = "assistant"
    if finish:
        chunks.append(_Chunk([_Choice(0, None, "stop"), _Choice(1, None, "stop")]))
    usage = SimpleNamespace(prompt_tokens=1, completion_tokens=2, cost=0.5)
    chunks.append(_Chunk([], usage))
    sent = [[c.delta.content for c in k.choices] for k in chunks]

    out = [o for chunk in chunks for o in state.step(chunk)] + state.end()

    for index, text in ((0, text0), (1, text1)):
        mine = [c for o in out for c in o.choices if c.index == index]
        released = "".join(c.delta.content or "" for c in mine)
        assert released == engine.check_output(decision, text).text
        assert [c.delta.role for c in mine if c.delta.role] == (["assistant"] if text else [])
        if text:
            assert mine[0].delta.role == "assistant"  # a skipped chunk's role moved on
    assert out[-1].usage is usage and state.usage is usage
    assert [[c.delta.content for c in k.choices] for k in chunks] == sent  # copies, not edits


# -- (5) spend is recorded once -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["to the end", "closed early", "blocked"])
async def test_a_guarded_stream_records_its_spend_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    tenant = f"t-{how.replace(' ', '-')}"
    answer = ("launch code 1 " if how == "blocked" else "") + FILLER * 20
    router = router_for(engine, "blocker", answer)
    upstream = spied(router, monkeypatch)
    calls = count_records(engine, monkeypatch)
    stream = await router.acompletion(HELLO, context=context(tenant), stream=True)
    if how == "to the end":
        chunks = [c async for c in stream]
        assert chunks[-1].usage is not None
    elif how == "closed early":
        async for chunk in stream:
            if text_of(chunk):
                break
        await stream.aclose()
    else:
        with pytest.raises(OutputBlockedError):
            async for _ in stream:
                pass
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()  # over: nothing more, and no second record
    assert calls == ["arecord"]
    assert upstream[0].ended or upstream[0].closed  # never left open
    info = stream.info
    assert info is not None and info.model == "m"
    if how == "to the end":  # usage came: tokens and LiteLLM's cost are the recorded spend
        assert info.cost_usd and info.output_tokens
        assert round(budget_spent(engine, tenant) * 1e6) == round(info.cost_usd * 1e6)
    else:  # the upstream was stopped before its usage: the reservation stands as the spend
        assert info.cost_usd is None
        reserved = next(b.reserved_usd for b in stream.decision.budgets if b.name == "daily")
        assert budget_spent(engine, tenant) == pytest.approx(reserved)


async def test_a_block_when_the_answer_ends_reads_the_usage_first(engine: Engine) -> None:
    # the deny pattern can still grow at the very end: it is judged when the answer ends,
    # after which the model has stopped and the usage chunk is all that is left to read
    router = router_for(engine, "blocker", FILLER + "launch code 12")
    stream = await router.acompletion(HELLO, context=context("ender"), stream=True)
    with pytest.raises(OutputBlockedError) as raised:
        async for _ in stream:
            pass
    info = raised.value.info
    assert info is not None and info.cost_usd and info.output_tokens
    assert round(budget_spent(engine, "ender") * 1e6) == round(info.cost_usd * 1e6)


# -- the proxy hook --------------------------------------------------------------------------


async def proxy_stream(engine: Engine, policy: str, answer: str) -> tuple[Any, Any, dict]:
    import litellm

    from policyd.integrations.litellm_proxy import PolicydGuardrail

    hook = PolicydGuardrail(engine=engine, policy=policy, stream_overlap=OVERLAP)
    user = SimpleNamespace(team_id=None, user_id="u1", key_alias=None)
    data = {"model": "any", "messages": HELLO, "policyd_context": context("proxy")}
    data = await hook.async_pre_call_hook(user, None, data, "acompletion")
    upstream = Counted(
        await litellm.acompletion(
            model="openai/gpt-4o-mini", messages=data["messages"], mock_response=answer,
            stream=True, stream_options={"include_usage": True},
        )
    )  # fmt: skip
    return hook.async_post_call_streaming_iterator_hook(user, upstream, data), upstream, data


async def test_the_proxy_hook_releases_redacted_text_as_it_streams(engine: Engine) -> None:
    answer = f"Card {CARD} ok. " + FILLER * 12
    chunks, upstream, _ = await proxy_stream(engine, "redactor", answer)
    texts: list[str] = []
    async for chunk in chunks:
        if text_of(chunk) and not texts:
            assert not upstream.ended  # released before the answer was over
        texts.append(text_of(chunk))
    assert "".join(texts) == answer.replace(CARD, "[CREDIT_CARD]")
    assert not any("1111" in t for t in texts)


async def test_the_proxy_hook_ends_a_started_stream_with_an_error_event(engine: Engine) -> None:
    from fastapi import HTTPException

    from policyd.integrations.litellm_proxy import StreamBlockedError

    answer = FILLER * 16 + "launch code 99 " + FILLER * 30
    chunks, upstream, _data = await proxy_stream(engine, "blocker", answer)
    texts: list[str] = []
    with pytest.raises(StreamBlockedError) as raised:  # the proxy sends it as an SSE error
        async for chunk in chunks:
            texts.append(text_of(chunk))
    assert texts and "launch" not in "".join(texts)
    assert raised.value.status_code == 400 and "not allowed" in raised.value.message
    assert upstream.closed and not upstream.ended
    assert budget_spent(engine, "proxy") > 0  # recorded by the hook: the reservation

    early, upstream, _ = await proxy_stream(engine, "blocker", "launch code 1 " + FILLER * 20)
    with pytest.raises(HTTPException) as before:  # nothing sent yet: a plain HTTP 400
        await anext(early)
    assert before.value.status_code == 400 and "no-launch" in str(before.value.detail)
