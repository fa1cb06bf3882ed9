"""The engine builds a Decision without its frozen __init__: the object must be the same.

``build_decision`` (what ``finish`` uses) fills the slots another way; a caller must not
be able to tell the difference from ``Decision(...)``: same class, attributes, equality,
repr, immutability, ``dataclasses`` support and ``to_dict()``.
"""

from __future__ import annotations

import dataclasses
import pickle
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd.decision import (
    CacheDirective,
    Decision,
    PolicyRef,
    PromptChoice,
    RetryPolicy,
    TraceEntry,
    build_decision,
)
from policyd.stages.base import DecisionState, finish

NAMES = [f.name for f in dataclasses.fields(Decision)]
TEXT = st.none() | st.text(max_size=8)
STRINGS = st.lists(st.text(max_size=6), max_size=3).map(tuple)


def _values() -> st.SearchStrategy[tuple[Any, ...]]:
    """Every field of a Decision, in field order."""
    return st.tuples(
        st.booleans(),
        TEXT,
        TEXT,
        TEXT,
        TEXT,
        TEXT,
        STRINGS,
        st.none() | st.just(RetryPolicy(2, "none", 0.0, 0.0, "none", ("timeout",))),
        st.none() | st.floats(0, 100),
        st.none() | st.builds(CacheDirective, st.floats(0, 9), TEXT, TEXT, st.text(max_size=4)),
        st.just(MappingProxyType({})) | st.just({"system": PromptChoice("v1", "r", "t")}),
        st.just(()),
        STRINGS,
        st.lists(
            st.builds(TraceEntry, st.text(max_size=4), TEXT, st.text(max_size=4)), max_size=3
        ).map(tuple),
        st.builds(PolicyRef, st.text(max_size=4), TEXT, st.text(max_size=4)),
        st.none() | st.sampled_from(["used_up", "too_large", "guardrail"]),  # reason
        st.text(max_size=8),
        st.none() | st.just(({"role": "user", "content": "x"},)),
        st.booleans(),
        st.none() | st.floats(0, 100),
        STRINGS,
        st.text(max_size=6),
        st.just({"any": "request"}),
        st.none() | st.just(object()),
        st.none() | st.just(object()),
    )


def _hash(decision: Decision) -> int | str:
    try:
        return hash(decision)
    except TypeError as exc:  # a decision holding a mapping is unhashable, either way
        return str(exc)


@settings(max_examples=40)
@given(_values())
def test_built_decision_is_the_one_the_constructor_makes(values: tuple[Any, ...]) -> None:
    assert len(values) == len(NAMES)
    built = build_decision(*values)
    made = Decision(*values)
    assert type(built) is Decision
    for name, value in zip(NAMES, values, strict=True):
        assert getattr(built, name) is value
    assert built == made
    assert made == built
    assert repr(built) == repr(made)
    assert _hash(built) == _hash(made)
    assert built.to_dict() == made.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.model = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del built.tier  # type: ignore[misc]
    assert dataclasses.replace(built, tier="x") == dataclasses.replace(made, tier="x")
    assert dataclasses.fields(built) == dataclasses.fields(made)


def test_a_built_decision_pickles_like_a_constructed_one() -> None:
    ref = PolicyRef("p", "1", "sha256:0")
    values = (True, None, None, "m", "l", "t", ("f",), None, 1.0, None, {}, (), (), (), ref)
    built = build_decision(*values, None, "id", None, False, None, (), "estimate", {}, None, None)
    assert pickle.loads(pickle.dumps(built)) == Decision(*values, id="id", token_counter="estimate")


def _state(blocked: bool) -> DecisionState:
    state = DecisionState({"messages": []}, None, "0" * 32, "estimate:chars/4")  # type: ignore[arg-type]
    state.tier, state.model, state.litellm_model = "t", "m", "openai/m"
    state.fallbacks, state.litellm_fallbacks = ("f",), ("openai/f",)
    state.retry = RetryPolicy(2, "none", 0.0, 0.0, "none", ("timeout",))
    state.timeout_s = 30.0
    state.cache = CacheDirective(60.0, "k", "ns", "rule")
    state.prompts["system"] = PromptChoice("v1", None, "text")
    state.messages = [{"role": "user", "content": "hi"}]
    state.redacted = True
    state.reservation = object()
    state.warn("guardrails", "g", "careful")
    if blocked:
        state.block("guardrails", "stop", "no", retry_after_s=3.0, reason="guardrail")
    return state


def _old_finish(state: DecisionState, ref: Any, revision: Any) -> Decision:
    """finish() as it was before build_decision: the keyword constructor."""
    allowed = state.blocked_by is None
    return Decision(
        allowed=allowed,
        blocked_by=state.blocked_by,
        message=state.message,
        model=state.model if allowed else None,
        litellm_model=state.litellm_model if allowed else None,
        tier=state.tier if allowed else None,
        fallbacks=state.fallbacks if allowed else (),
        retry=state.retry if allowed else None,
        timeout_s=state.timeout_s if allowed else None,
        cache=state.cache if allowed else None,
        prompts=MappingProxyType(state.prompts) if allowed else MappingProxyType({}),
        budgets=tuple(state.budgets),
        warnings=tuple(state.warnings),
        trace=tuple(state.trace),
        policy=ref,
        reason=state.reason,
        id=state.decision_id,
        messages=tuple(state.messages) if state.messages is not None else None,
        redacted=state.redacted,
        retry_after_s=state.retry_after_s,
        litellm_fallbacks=state.litellm_fallbacks if allowed else (),
        token_counter=state.token_counter,
        request=state.request,
        reservation=state.reservation,
        revision=revision,
    )


@pytest.mark.parametrize("blocked", [False, True])
def test_finish_gives_every_field_as_before(blocked: bool) -> None:
    ref, revision = PolicyRef("p", None, "sha256:0"), object()
    state = _state(blocked)
    new, old = finish(state, ref, revision), _old_finish(state, ref, revision)
    assert new == old and new.to_dict() == old.to_dict()
    for name in NAMES:  # compare=False fields too
        assert getattr(new, name) == getattr(old, name), name
    assert new.request is state.request and new.revision is revision
    assert new.reservation is state.reservation
