"""Redacted copies of the messages (policyd.stages.guardrail_texts.replaced): what they hold,
that the request's own messages are never changed, and that making them is linear.

A request whose one message carries tens of thousands of content parts, each with an
email address, must not turn redaction into a copy of the parts list per part (quadratic:
60,000 parts took ~20 s of CPU). Counted, not timed: how many list items are copied.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from engine_bundles import CATALOG, policy
from hypothesis import given, settings
from hypothesis import strategies as st

from policyd import Engine
from policyd.stages import guardrail_texts
from policyd.stages.guardrail_texts import replaced


class _AnyList(type):
    """``isinstance(x, CountingList)`` holds for every list, as ``isinstance(x, list)``."""

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, builtins.list)


class CountingList(list[Any], metaclass=_AnyList):
    """``list`` as the module under test sees it: counts the items of every list it copies."""

    copied = 0

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        CountingList.copied += len(self)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> type[CountingList]:
    """Every ``list(...)`` copy made by policyd.stages.guardrail_texts is counted."""
    monkeypatch.setattr(guardrail_texts, "list", CountingList, raising=False)
    CountingList.copied = 0
    return CountingList


def _reference(messages: list[Any], changes: dict[tuple[int, int | None], str]) -> list[Any]:
    """The obvious (quadratic) way: a copy of the message and its parts per change."""
    out = list(messages)
    for (i, j), text in changes.items():
        message = dict(out[i])
        if j is None:
            message["content"] = text
        else:
            parts = list(message["content"])
            parts[j] = {**parts[j], "text": text}
            message["content"] = parts
        out[i] = message
    return out


TEXT_PART = st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=5))
OTHER_PART = st.just({"type": "image_url", "image_url": {"url": "https://x/y.png"}})
MESSAGE = st.one_of(
    st.builds(lambda c: {"role": "user", "content": c, "name": "n"}, st.text(max_size=5)),
    st.builds(
        lambda c: {"role": "tool", "content": c},
        st.lists(st.one_of(TEXT_PART, OTHER_PART), max_size=6),
    ),
)


@st.composite
def messages_and_changes(draw: st.DrawFn) -> tuple[list[Any], dict[Any, str]]:
    messages = draw(st.lists(MESSAGE, max_size=5))
    places: list[tuple[int, int | None]] = []
    for i, message in enumerate(messages):
        if isinstance(message["content"], str):
            places.append((i, None))
        else:
            places.extend((i, j) for j in range(len(message["content"])))
    chosen = draw(st.lists(st.sampled_from(places), unique=True) if places else st.just([]))
    return messages, {where: draw(st.text(max_size=4)) for where in chosen}


@settings(max_examples=300)
@given(messages_and_changes())
def test_replaced_matches_the_obvious_copy_and_leaves_the_request_alone(
    case: tuple[list[Any], dict[Any, str]],
) -> None:
    messages, changes = case
    before = copy.deepcopy(messages)
    out = replaced(messages, changes)
    assert out == _reference(messages, changes)
    assert messages == before  # the caller's messages, parts and part dicts unchanged
    for i, message in enumerate(out):
        if any(where[0] == i for where in changes):
            assert message is not messages[i]
        else:
            assert message is messages[i]  # untouched messages are shared, not copied


def test_replacing_every_part_of_one_message_copies_its_parts_once(
    counted: type[CountingList],
) -> None:
    n = 5000
    parts = [{"type": "text", "text": f"p{k}"} for k in range(n)]
    messages = [{"role": "user", "content": parts}]
    out = replaced(messages, {(0, j): f"r{j}" for j in range(n)})
    # the messages list (1 item) and the parts list (n items) once each, not once per part
    assert counted.copied == 1 + n
    assert [p["text"] for p in out[0]["content"]] == [f"r{j}" for j in range(n)]
    assert [p["text"] for p in parts] == [f"p{k}" for k in range(n)]


BODY = """
tiers:
  one: {strategy: ordered, targets: [{model: huge}]}
routing: {default: one}
guardrails:
  input:
    - name: mail
      pii: [email]
      action: redact
"""


def test_a_request_with_thousands_of_redacted_parts_is_redacted_once_per_part(
    tmp_path: Path, counted: type[CountingList]
) -> None:
    """End to end: the engine's redaction of a hostile many-part message copies each part
    list once (the generated function and the staged path share this code)."""
    (tmp_path / "models.yaml").write_text(CATALOG)
    (tmp_path / "p.yaml").write_text(policy(BODY, name="many-parts"))
    engine = Engine.from_path(tmp_path)
    n = 3000
    parts = [{"type": "text", "text": f"to a{k}@example.com"} for k in range(n)]
    request = {"messages": [{"role": "user", "content": parts}]}
    counted.copied = 0
    decision = engine.decide(request, policy="many-parts")
    assert decision.allowed and decision.redacted and decision.messages is not None
    content = decision.messages[0]["content"]
    assert len(content) == n and all(p["text"] == "to [EMAIL]" for p in content)
    assert counted.copied == 1 + n  # a copy per replaced part would be n * n items
    assert "a1@example.com" not in str(decision.to_dict())
