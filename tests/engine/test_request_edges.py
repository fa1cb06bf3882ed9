"""Request checks and token counting, exactly: each declared type, each error's field.

Written against mutants of policyd/request.py that survived the rest of the suite
(tools/mutation.py). Errors name the request field and never echo its value.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policyd.errors import RequestError
from policyd.request import ESTIMATE, RequestShape, TokenCounter, count_text

DECLS: dict[str, Any] = {
    "tenant": {"id": "string", "tier": "string"},
    "user": {"id": "string", "age": "int"},
    "tags": "list<string>",
    "scores": "list<int>",
    "weights": "map<string, double>",
    "nested": "map<string, map<string, int>>",
    "lists": "map<string, list<int>>",
    "flag": "bool",
    "at": "timestamp",
    "ttl": "duration",
    "blob": "bytes",
    "anything": "dyn",
    "messages": "list<map<string, dyn>>",  # never checked here: messages have their own check
}
SHAPE = RequestShape(DECLS, TokenCounter())


def error(request: Any) -> RequestError:
    with pytest.raises(RequestError) as raised:
        SHAPE.prepare(request)
    return raised.value


def test_count_text_is_four_characters_a_token_plus_four_per_message() -> None:
    assert count_text([]) == (0, 0)
    assert count_text([{"content": ""}]) == (0, 4)
    assert count_text([{"content": "abcd"}]) == (4, 5)
    assert count_text([{"content": "abcde"}]) == (5, 6)
    assert count_text([{"content": None}, {"role": "user"}]) == (0, 8)
    parts = [{"type": "text", "text": "abc"}, {"type": "image_url"}, "loose", {"text": 5}]
    assert count_text([{"content": parts}, {"content": "xy"}]) == (5, 5 + 5)


def test_token_counters() -> None:
    counter = TokenCounter()
    assert counter.name == ESTIMATE == "estimate:chars/4"
    assert counter.count([{"content": "abcdefgh"}]) == (8, 6)
    with pytest.raises(ValueError) as raised:
        TokenCounter("words")
    assert str(raised.value) == "unknown token counter 'words': use 'estimate' or 'tiktoken'"


def test_tiktoken_counts_real_tokens_per_message() -> None:
    pytest.importorskip("tiktoken")
    counter = TokenCounter("tiktoken")
    assert counter.name == "tiktoken:cl100k_base"
    chars, tokens = counter.count([{"content": "hello world"}])
    assert (chars, tokens) == (11, 2 + 4)
    parts = [{"text": "hello"}, {"text": "world"}, {"image": "x"}]
    assert counter.count([{"content": parts}, {"content": None}]) == (10, 2 + 4 + 4)


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        ({"tenant": "acme"}, "tenant", "must be a mapping, not a string"),
        ({"tenant": {"id": 7}}, "tenant.id", "must be a string, not an integer"),
        ({"user": {"age": True}}, "user.age", "must be an integer, not a boolean"),
        ({"user": {"age": 1.5}}, "user.age", "must be an integer, not a number"),
        ({"tags": "a,b"}, "tags", "must be a list, not a string"),
        ({"tags": ["a", 2]}, "tags[1]", "must be a string, not an integer"),
        ({"scores": [1, True]}, "scores[1]", "must be an integer, not a boolean"),
        ({"weights": [1]}, "weights", "must be a mapping, not a list"),
        ({"weights": {"a": "x"}}, "weights.a", "must be a number, not a string"),
        ({"weights": {"a": False}}, "weights.a", "must be a number, not a boolean"),
        ({"nested": {"a": {"b": "x"}}}, "nested.a.b", "must be an integer, not a string"),
        ({"nested": {"a": 1}}, "nested.a", "must be a mapping, not an integer"),
        ({"lists": {"a": [1, "x"]}}, "lists.a[1]", "must be an integer, not a string"),
        ({"flag": 1}, "flag", "must be true or false, not an integer"),
        ({"at": "2026-11-24"}, "at", "must be a timestamp (datetime), not a string"),
        ({"ttl": 30}, "ttl", "must be a duration (timedelta), not an integer"),
        ({"blob": "x"}, "blob", "must be bytes, not a string"),
        ({"messages": "hi"}, "messages", "must be a list of messages, not a string"),
        ({"messages": ["hi"]}, "messages[0]", "must be a mapping with role and content"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"content": 3}]},
            "messages[1].content",
            "must be a string or a list of parts, not an integer",
        ),
    ],
)
def test_each_wrong_type_names_its_field(request_: Any, field: str, message: str) -> None:
    raised = error(request_)
    assert raised.field == field
    assert str(raised) == f"request.{field}: {message}"


def test_a_request_that_is_not_a_mapping() -> None:
    raised = error(["messages"])
    assert raised.field is None
    assert str(raised) == (
        "a request must be a mapping (dict), not a list "
        "(pass e.g. {'messages': [...], 'user': {'id': 'u1'}})"
    )


def test_well_typed_values_pass_including_subclasses_and_mappings() -> None:
    class Label(str):
        pass

    request = {
        "tenant": OrderedDict(id=Label("acme")),
        # undeclared fields: not type-checked (any JSON value; a non-JSON object is refused
        # by scan_values for every field, #11: test_non_json_values_are_refused_anywhere)
        "user": {"id": "u", "age": 30, "extra": [1, "x", None]},
        "tags": ("a", Label("b")),
        "scores": [1, 2],
        "weights": {"a": 1, "b": 0.5},  # an int is a number
        "nested": {"a": {"b": 1}},
        "lists": {"a": [1, 2]},
        "flag": False,
        "at": datetime(2026, 11, 24, tzinfo=UTC),
        "ttl": timedelta(seconds=5),
        "blob": b"x",
        "anything": {"k": [1.5, "v"]},
        "tenant_missing_fields": None,
        "messages": ({"role": "user", "content": "abcd"},),
    }
    out = SHAPE.prepare(request)
    assert out["messages"] == [{"role": "user", "content": "abcd"}]
    assert (out["input_chars"], out["input_tokens"]) == (4, 5)
    assert out is not request and "input_tokens" not in request


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"user": {"id": "u", "extra": object()}}, "user.extra"),
        ({"anything": object()}, "anything"),
    ],
)
def test_non_json_values_are_refused_anywhere(request_: Any, field: str) -> None:
    raised = error(request_)
    assert raised.field == field and "must be a JSON value" in str(raised)


def test_null_values_and_no_messages_are_accepted() -> None:
    out = SHAPE.prepare({"tenant": None, "user": {"id": None}, "messages": None})
    assert out["messages"] == [] and (out["input_chars"], out["input_tokens"]) == (0, 0)


@pytest.mark.parametrize(
    ("provided", "used"),
    [(0, 0), (12, 12), (-1, 5), (True, 5), (3.0, 5), ("9", 5), (None, 5)],
)
def test_input_tokens_given_by_the_app_are_used_when_a_non_negative_int(
    provided: Any, used: int
) -> None:
    out = SHAPE.prepare({"messages": [{"content": "abcd"}], "input_tokens": provided})
    assert out["input_tokens"] == used
