"""Invariants of the pieces PolicyRouter is built from: the try order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from policyd.decision import Decision, PolicyRef, RetryPolicy
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
