"""Invariants of the pieces PolicyRouter is built from: the try order and stream rewriting."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from policyd.decision import Decision, PolicyRef, RetryPolicy
from policyd.integrations._litellm_stream import StreamState
from policyd.integrations._litellm_support import try_order

MODEL = st.sampled_from(["a", "b", "c", "d", "e"])


def decision(model: str, fallbacks: tuple[str, ...], attempts: int) -> Decision:
    retry = RetryPolicy(attempts, "none", 0.0, 0.0, "none", ("rate_limit",))
    return Decision(
        allowed=True, blocked_by=None, message=None, model=model, litellm_model=model,
        tier="t", fallbacks=fallbacks, retry=retry, timeout_s=None, cache=None, prompts={},
        budgets=(), warnings=(), trace=(), policy=PolicyRef("p", None, "sha256:0"),
    )  # fmt: skip


@given(MODEL, st.lists(MODEL, unique=True, max_size=4), st.integers(1, 20))
def test_tries_walk_the_chain_in_order_and_number_exactly_attempts(
    model: str, rest: list[str], attempts: int
) -> None:
    fallbacks = tuple(m for m in rest if m != model)
    order = try_order(decision(model, fallbacks, attempts))
    chain = (model, *fallbacks)
    assert len(order) == attempts
    assert order[0] == model
    assert order[: len(chain)] == list(chain)[:attempts]  # every fallback before any repeat
    assert all(order[i] == chain[i % len(chain)] for i in range(attempts))


class _Delta:
    def __init__(self, content: str | None) -> None:
        self.content = content


class _Choice:
    def __init__(self, index: int, content: str | None) -> None:
        self.index = index
        self.delta = _Delta(content)


class _Chunk:
    def __init__(self, choices: list[_Choice]) -> None:
        self.choices = choices
        self.usage = None


class _Redactor:
    """Stands in for the engine: replaces a word, or blocks on another."""

    def check_output(self, decision: Any, text: str) -> Any:
        from policyd.stages.output import OutputVerdict

        if "forbidden" in text:
            return OutputVerdict(False, text, "g", "no")
        return OutputVerdict(True, text.replace("secret", "[X]"))


@given(
    st.lists(st.sampled_from(["a", "b ", "secret", " ", "sec", "ret", "xyz"]), max_size=12),
    st.lists(st.sampled_from(["c", "secret", " d"]), max_size=6),
)
def test_rewritten_chunks_spell_each_choices_checked_text(
    parts0: list[str], parts1: list[str]
) -> None:
    chunks = [_Chunk([_Choice(0, p)]) for p in parts0]
    chunks += [_Chunk([_Choice(1, p)]) for p in parts1]
    chunks.append(_Chunk([_Choice(0, None), _Choice(1, None)]))  # a finish chunk
    state = StreamState(buffered=True)
    for chunk in chunks:
        state.see(chunk)

    assert state.check(_Redactor(), None) is None

    for index, parts in ((0, parts0), (1, parts1)):
        released = "".join(
            c.delta.content or "" for chunk in state.chunks for c in chunk.choices
            if c.index == index
        )  # fmt: skip
        assert released == "".join(parts).replace("secret", "[X]")
    assert len(state.chunks) == len(chunks)  # chunk boundaries and finish chunks are kept


def test_a_blocked_stream_keeps_its_chunks_untouched() -> None:
    state = StreamState(buffered=True)
    for part in ("a forbidden ", "secret"):
        state.see(_Chunk([_Choice(0, part)]))
    verdict = state.check(_Redactor(), None)
    assert verdict is not None and verdict.blocked_by == "g"
    assert [c.choices[0].delta.content for c in state.chunks] == ["a forbidden ", "secret"]
