"""The generated request preparation decides exactly like the general one it replaced.

``RequestShape.prepare`` is generated per policy (exact types checked in a line, the
general checkers called for anything else). The oracle below is the preparation as it
was written before, from the same building blocks: on generated requests, well formed
and not, both must accept with the same prepared copy (keys in the same order) or both
refuse with the same message, field and hint.
"""

from __future__ import annotations

from collections import OrderedDict, UserDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyd.errors import RequestError
from policyd.request import (
    RequestShape,
    TokenCounter,
    _check_message,
    _check_tokens,
    _kind,
    _type_checker,
    scan_values,
)


class Oracle:
    """RequestShape.prepare as it was before it was generated."""

    def __init__(self, declarations: Mapping[str, Any], counter: TokenCounter) -> None:
        self._checks = tuple(
            (name, _type_checker(decl))
            for name, decl in declarations.items()
            if name not in ("messages", "input_tokens", "input_chars")
        )
        self._counter = counter

    def prepare(self, request: Any) -> dict[str, Any]:
        if request.__class__ is not dict and not isinstance(request, Mapping):
            raise RequestError(
                f"a request must be a mapping (dict), not {_kind(request)}",
                hint="pass e.g. {'messages': [...], 'user': {'id': 'u1'}}",
            )
        scan_values(request)
        out = dict(request)
        messages = out.get("messages")
        if messages is None:
            messages = []
        elif messages.__class__ is not list:
            if not isinstance(messages, list | tuple):
                raise RequestError(f"must be a list of messages, not {_kind(messages)}", "messages")
            messages = list(messages)
        for i, message in enumerate(messages):
            _check_message(message, i)
        out["messages"] = messages
        _check_tokens(out, "max_tokens")
        _check_tokens(out, "input_tokens")
        for name, check in self._checks:
            value = out.get(name)
            if value is not None:
                check(value, name)
        chars, tokens = self._counter.count(messages)
        out["input_chars"] = chars
        provided = out.get("input_tokens")
        if (
            provided.__class__ is not int
            and (not isinstance(provided, int) or isinstance(provided, bool))
        ) or provided < 0:
            out["input_tokens"] = tokens
        return out


BUILTIN = {
    "id": "string",
    "model": "string",
    "messages": "list<map<string, dyn>>",
    "max_tokens": "int",
    "temperature": "double",
    "metadata": "map<string, dyn>",
    "input_tokens": "int",
    "input_chars": "int",
}
DECLARATIONS: dict[str, dict[str, Any]] = {
    "routing-heavy": {
        **BUILTIN,
        "tenant": {"id": "string", "plan": "string", "region": "string"},
        "user": {"id": "string", "country": "string", "beta": "bool"},
        "feature": "string",
        "tags": "list<string>",
        "priority": "int",
    },
    "every-type": {
        **BUILTIN,
        "tenant": {"id": "string", "limits": {"rpm": "int", "share": "double"}, "on": "bool"},
        "scores": "list<int>",
        "ratios": "list< double >",
        "flags": "list<bool>",
        "rows": "list<map<string, int>>",
        "weights": "map<string, double>",
        "nested": "map<string, map<string, int>>",
        "loose": "map<string, dyn>",
        "bare": "map<string>",
        "count": "uint",
        "at": "timestamp",
        "ttl": "duration",
        "blob": "bytes",
        "anything": "dyn",
        "name": " string ",
    },
}


class Text(str):
    pass


class Number(int):
    pass


class Moment(datetime):
    pass


NAMES = st.sampled_from(
    ["id", "plan", "region", "country", "beta", "limits", "rpm", "share", "on", "x", "k-1"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.sampled_from(["\ud800", "é", Text("t"), Number(3), b"by", timedelta(seconds=5)])
    | st.just(datetime(2026, 1, 1, tzinfo=UTC))
    | st.just(Moment(2026, 1, 1, tzinfo=UTC))
    | st.just(object())
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(NAMES, children, max_size=3)
        | st.dictionaries(NAMES, children, max_size=2).map(OrderedDict)
        | st.dictionaries(NAMES, children, max_size=2).map(UserDict)
    )


def well_typed(decl: Any) -> st.SearchStrategy[Any]:
    """Values of the declared type (subclasses included), now and then an ill-typed one."""
    if isinstance(decl, dict):
        fields = {name: well_typed(sub) for name, sub in decl.items()}
        return st.fixed_dictionaries({}, optional=fields) | VALUES
    text = decl.strip()
    if text.startswith("list<"):
        return st.lists(well_typed(text[5:-1]), max_size=3) | st.just(())
    if text.startswith("map<"):
        value = text[4:-1].split(",", 1)[-1] if "," in text else "dyn"
        return st.dictionaries(NAMES, well_typed(value), max_size=2)
    return {
        "string": st.text(max_size=4) | st.just(Text("s")),
        "int": st.integers(-(2**63), 2**63 - 1) | st.just(Number(4)),
        "uint": st.integers(0, 9),
        "double": st.floats(allow_nan=False) | st.integers(-9, 9),
        "bool": st.booleans(),
        "timestamp": st.just(Moment(2026, 1, 1, tzinfo=UTC)),
        "duration": st.just(timedelta(minutes=1)),
        "bytes": st.just(b"b"),
    }.get(text, VALUES)


VALUES = st.recursive(SCALARS, _containers, max_leaves=6)
MISSING = object()
ROLE = st.sampled_from(["user", "system", "user", 5, None, Text("user"), MISSING])
CONTENT = st.sampled_from(
    [
        "text",
        "a longer text of the message",
        "",
        Text("text"),
        None,
        3,
        MISSING,
        "\udfff",
        [{"type": "text", "text": "ab"}, {"type": "image_url"}],
        [{"text": 3}],
        ["loose"],
        ({"text": "in a tuple"},),
    ]
)


def _message(role: Any, content: Any, kind: type) -> Any:
    parts = {"role": role, "content": content}
    return kind({k: v for k, v in parts.items() if v is not MISSING})


MESSAGE = st.builds(_message, ROLE, CONTENT, st.sampled_from([dict, dict, dict, OrderedDict]))
NOT_A_MESSAGE = st.sampled_from([5, "text", None, ["x"], UserDict({"content": "x"})])
MESSAGES = (
    st.lists(MESSAGE, max_size=4)
    | st.lists(MESSAGE, max_size=2).map(tuple)
    | st.lists(MESSAGE | NOT_A_MESSAGE, max_size=3)
)
TOKENS = st.none() | st.integers(-5, 2 * 10**9) | st.sampled_from([True, 2.5, "9", Number(7)])
FIELDS = st.sampled_from(
    [
        "id", "model", "max_tokens", "temperature", "metadata", "input_tokens", "input_chars",
        "tenant", "user", "feature", "tags", "priority", "scores", "ratios", "flags", "rows",
        "weights", "nested", "loose", "bare", "count", "at", "ttl", "blob", "anything",
        "name", "undeclared",
    ]
)  # fmt: skip


@st.composite
def requests(draw: st.DrawFn, declarations: dict[str, Any]) -> Any:
    """Requests with some fields well typed and some not; now and then no mapping at all,
    messages that are no list, a key that is no string."""
    if draw(st.integers(0, 19)) == 13:
        return draw(SCALARS | st.lists(SCALARS, max_size=2))
    request: dict[Any, Any] = {}
    if draw(st.booleans()):
        request["messages"] = draw(SCALARS if draw(st.integers(0, 9)) == 7 else MESSAGES)
    for name in ("max_tokens", "input_tokens"):
        if draw(st.booleans()):
            request[name] = draw(TOKENS)
    for name in draw(st.lists(FIELDS, max_size=6)):
        decl = declarations.get(name)
        typed = decl is not None and draw(st.integers(0, 3)) > 0
        request[name] = draw(well_typed(decl) if typed else VALUES)
    if draw(st.integers(0, 19)) == 13:
        request[draw(st.sampled_from([1, None, ("t",)]))] = "x"
    if draw(st.integers(0, 9)) == 7:
        return UserDict(request)
    return request


def outcome(prepare: Any, request: Any) -> Any:
    try:
        out = prepare(request)
    except RequestError as exc:
        return ("refused", str(exc), exc.field, exc.hint)
    return ("prepared", list(out.items()))


@pytest.mark.parametrize("policy", sorted(DECLARATIONS))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_preparation_refuses_and_accepts_like_the_general_one(
    policy: str, data: st.DataObject
) -> None:
    declarations = DECLARATIONS[policy]
    request = data.draw(requests(declarations))
    counter = TokenCounter()
    new = RequestShape(declarations, counter).prepare
    old = Oracle(declarations, counter).prepare
    assert outcome(new, request) == outcome(old, request)


def test_the_common_request_takes_the_inline_path_and_counts_the_same() -> None:
    declarations = DECLARATIONS["routing-heavy"]
    request = {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "tenant": {"id": "t1", "plan": "pro", "region": "eu"},
        "user": {"id": "u1", "country": "DE", "beta": True},
        "tags": ["a", "b"],
        "priority": 3,
        "max_tokens": 100,
    }
    counter = TokenCounter()
    new = RequestShape(declarations, counter).prepare(request)
    assert new == Oracle(declarations, counter).prepare(request)
    assert (new["input_chars"], new["input_tokens"]) == (10, 2 + 4 + 1 + 4)
