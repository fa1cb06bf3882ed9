"""Request checks and token counting, exactly: each declared type, each error's field.

Written against mutants of policyd/request.py that survived the rest of the suite
(tools/mutation.py). Errors name the request field and never echo its value.
"""

from __future__ import annotations

import time
from collections import OrderedDict, UserDict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policyd.errors import RequestError
from policyd.request import ESTIMATE, MAX_REQUEST_TOKENS, RequestShape, TokenCounter, count_text

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


class Number(int):
    pass


def prepare(request: Any, declarations: dict[str, Any] | None = None) -> dict[str, Any]:
    # a shape per call: generating the preparation is itself under test
    return RequestShape(DECLS if declarations is None else declarations, TokenCounter()).prepare(
        request
    )


def error(request: Any, declarations: dict[str, Any] | None = None) -> RequestError:
    with pytest.raises(RequestError) as raised:
        prepare(request, declarations)
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
    out = prepare(request)
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
    out = prepare({"tenant": None, "user": {"id": None}, "messages": None})
    assert out["messages"] == [] and (out["input_chars"], out["input_tokens"]) == (0, 0)


@pytest.mark.parametrize(
    ("provided", "used"),
    [(0, 0), (12, 12), (-1, 5), (True, 5), (3.0, 5), ("9", 5), (None, 5)],
)
def test_input_tokens_given_by_the_app_are_used_when_a_non_negative_int(
    provided: Any, used: int
) -> None:
    out = prepare({"messages": [{"content": "abcd"}], "input_tokens": provided})
    assert out["input_tokens"] == used


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        # mappings other than dict take the general checkers: same words, same fields
        ({"tenant": UserDict({"id": 7})}, "tenant.id", "must be a string, not an integer"),
        ({"tenant": OrderedDict(tier=["x"])}, "tenant.tier", "must be a string, not a list"),
        ({"tags": ("a", 2)}, "tags[1]", "must be a string, not an integer"),
        ({"scores": (1, "2")}, "scores[1]", "must be an integer, not a string"),
        ({"weights": UserDict({"a": "x"})}, "weights.a", "must be a number, not a string"),
        ({"weights": {"Key9Z": "x"}}, "weights[key #0]", "must be a number, not a string"),
        ({"lists": {"a": (1, Number(2), "x")}}, "lists.a[2]", "must be an integer, not a string"),
        ({"lists": {"a": 1}}, "lists.a", "must be a list, not an integer"),
        ({"user": {"age": Number(3), "id": 5}}, "user.id", "must be a string, not an integer"),
        ({"flag": "yes"}, "flag", "must be true or false, not a string"),
        # messages: any other mapping, roles, content parts
        (
            {"messages": [OrderedDict(role=5, content="x")]},
            "messages[0].role",
            "must be a string, not an integer",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": 5, "content": "b"}]},
            "messages[1].role",
            "must be a string, not an integer",
        ),
        (
            {"messages": [{"content": [{"text": "a"}, "loose"]}]},
            "messages[0].content[1]",
            "must be a content part (a mapping), not a string",
        ),
        (
            {"messages": [{"content": [{"type": "image_url"}, {"text": 3}]}]},
            "messages[0].content[1].text",
            "must be a string, not an integer",
        ),
        (
            {"messages": [OrderedDict(content=UserDict())]},
            "messages[0].content",
            "must be a string or a list of parts, not a mapping",
        ),
        ({"messages": 5}, "messages", "must be a list of messages, not an integer"),
    ],
)
def test_each_wrong_type_names_its_field_on_the_general_path(
    request_: Any, field: str, message: str
) -> None:
    raised = error(request_)
    assert raised.field == field
    assert str(raised) == f"request.{field}: {message}"


def test_other_mappings_sequences_and_subclasses_are_accepted_and_counted() -> None:
    request = {
        "tenant": UserDict({"id": "acme", "tier": None}),
        "user": OrderedDict(id="u", age=Number(3)),
        "tags": ("a", "b"),
        "weights": UserDict({"a": 1.5, "b": Number(2)}),
        "nested": {"a": UserDict({"b": 1})},
        "lists": {"a": (1, 2)},
        "messages": [
            OrderedDict(role="user", content="abcd"),
            {"role": None, "content": [{"type": "text", "text": "abcdefgh"}, {"text": None}]},
            {"content": None},
        ],
    }
    out = prepare(request)
    assert out["messages"] == request["messages"]
    assert (out["input_chars"], out["input_tokens"]) == (12, (1 + 4) + (2 + 4) + 4)


@pytest.mark.parametrize("name", ["max_tokens", "input_tokens"])
def test_token_counts_above_the_bound_are_refused(name: str) -> None:
    for value in (MAX_REQUEST_TOKENS, Number(MAX_REQUEST_TOKENS)):
        assert prepare({name: value})[name] == value
    for value in (MAX_REQUEST_TOKENS + 1, Number(MAX_REQUEST_TOKENS + 1)):
        raised = error({name: value})
        assert raised.field == name
        assert raised.hint == "no model takes more"
        assert str(raised) == (
            f"request.{name}: must be at most {MAX_REQUEST_TOKENS:,} tokens (no model takes more)"
        )


def test_a_tokenizer_counts_the_prepared_messages() -> None:
    pytest.importorskip("tiktoken")
    shape = RequestShape({"tenant": {"id": "string"}}, TokenCounter("tiktoken"))
    out = shape.prepare({"messages": [{"role": "user", "content": "hello world"}]})
    assert (out["input_chars"], out["input_tokens"]) == (11, 2 + 4)
    with pytest.raises(RequestError):  # checks come before counting
        shape.prepare({"messages": [{"content": "hello"}], "tenant": {"id": 1}})


def test_records_nested_deeper_than_inlined_are_still_checked() -> None:
    decl: Any = {"leaf": "int", "tags": "list<string>"}
    for _ in range(10):
        decl = {"in": decl}
    declarations = {"deep": decl}
    good: Any = {"leaf": 1, "tags": ["a"]}
    bad: Any = {"leaf": "x"}
    for _ in range(10):
        good, bad = {"in": good}, {"in": bad}
    assert prepare({"deep": good}, declarations)["deep"] == good
    # inlined 8 records deep (_v1.._v8), the general checker below: bounded generated code
    source = RequestShape(declarations, TokenCounter()).python_source
    assert "_v8 = _v7.get('in')" in source and "_v9" not in source
    raised = error({"deep": bad}, declarations)
    assert raised.field == "deep" + ".in" * 10 + ".leaf"
    assert str(raised).endswith(": must be an integer, not a string")


def test_declared_types_of_every_kind_accept_their_values() -> None:
    declarations = {
        "n": "uint",
        "ratio": "double",
        "ratios": "list< double >",
        "flags": "list<bool>",
        "rows": "list<map<string, int>>",
        "loose": "map<string, dyn>",
        "bare": "map<string>",
        "tight": "map<string,int>",
        "name": " string ",
        "any": "dyn",
        "messages": "list<map<string, dyn>>",
        "input_tokens": "int",
    }
    request = {
        "n": 3,
        "ratio": 2,
        "ratios": [1.5, 2],
        "flags": [True, False],
        "rows": [{"a": 1}],
        "loose": {"a": [1, "x"]},
        "bare": OrderedDict(a="x"),
        "name": "n",
        "any": [1, {"b": None}],
    }
    assert {k: v for k, v in prepare(request, declarations).items() if k in request} == request
    for request_, field, message in [
        ({"ratios": [1.5, "x"]}, "ratios[1]", "must be a number, not a string"),
        ({"flags": [True, 1]}, "flags[1]", "must be true or false, not an integer"),
        ({"rows": [{"a": "x"}]}, "rows[0].a", "must be an integer, not a string"),
        ({"rows": ["x"]}, "rows[0]", "must be a mapping, not a string"),
        ({"loose": ["x"]}, "loose", "must be a mapping, not a list"),
        ({"bare": "x"}, "bare", "must be a mapping, not a string"),
        ({"tight": {"a": "x"}}, "tight.a", "must be an integer, not a string"),
        ({"name": 1}, "name", "must be a string, not an integer"),
        ({"n": 1.5}, "n", "must be an integer, not a number"),
        ({"ratio": "x"}, "ratio", "must be a number, not a string"),
    ]:
        raised = error(request_, declarations)
        assert (raised.field, str(raised)) == (field, f"request.{field}: {message}")


GOLDEN = """\
def prepare(request):
    if request.__class__ is not dict and not isinstance(request, _Mapping):
        _not_a_request(request)
    _scan_values(request)
    out = dict(request)
    get = out.get
    messages = get('messages')
    if messages is None:
        messages = []
    elif messages.__class__ is not list:
        messages = _as_list(messages)
    chars = tokens = i = 0
    for message in messages:
        if message.__class__ is dict:
            content = message.get('content')
            if content.__class__ is str:
                role = message.get('role')
                if role is None or role.__class__ is str:
                    n = len(content)
                    chars += n
                    tokens += (n + 3) // 4 + 4
                    i += 1
                    continue
        _check_message(message, i)
        n = _content_chars(message)
        chars += n
        tokens += (n + 3) // 4 + 4
        i += 1
    out['messages'] = messages
    _v0 = get('max_tokens')
    if _v0 is not None and (_v0.__class__ is not int or _v0 > 1000000000):
        _check_tokens(out, 'max_tokens')
    _v0 = get('input_tokens')
    if _v0 is not None and (_v0.__class__ is not int or _v0 > 1000000000):
        _check_tokens(out, 'input_tokens')
    _v0 = get('tenant')
    if _v0 is not None:
        if _v0.__class__ is dict:
            _v1 = _v0.get('id')
            if _v1 is not None:
                if _v1.__class__ is not _k2:
                    _k1(_v1, 'tenant.id')
            _v1 = _v0.get('limits')
            if _v1 is not None:
                if _v1.__class__ is dict:
                    _v2 = _v1.get('rpm')
                    if _v2 is not None:
                        if _v2.__class__ is not _k5:
                            _k4(_v2, 'tenant.limits.rpm')
                    pass
                else:
                    _k3(_v1, 'tenant.limits')
            pass
        else:
            _k0(_v0, 'tenant')
    _v0 = get('tags')
    if _v0 is not None:
        if _v0.__class__ is list:
            for _e in _v0:
                if _e.__class__ is not _k7:
                    _k6(_v0, 'tags')
                    break
        else:
            _k6(_v0, 'tags')
    _v0 = get('rows')
    if _v0 is not None:
        _k8(_v0, 'rows')
    _v0 = get('meta')
    if _v0 is not None:
        if _v0.__class__ is not dict:
            _k9(_v0, 'meta')
    _v0 = get('weights')
    if _v0 is not None:
        _k10(_v0, 'weights')
    _v0 = get('ratio')
    if _v0 is not None:
        if _v0.__class__ is not _k12 and _v0.__class__ is not _k13:
            _k11(_v0, 'ratio')
    _v0 = get('any')
    if _v0 is not None:
        pass
    out['input_chars'] = chars
    provided = get('input_tokens')
    if (
        provided.__class__ is not int
        and (not isinstance(provided, int) or isinstance(provided, bool))
    ) or provided < 0:
        out['input_tokens'] = tokens
    return out
"""


def test_exact_types_are_checked_in_a_line_and_anything_else_by_the_general_checker() -> None:
    # the generated preparation (docs/performance.md, #4): the common message counted in
    # a line; a value of exactly its declared type costs a class test, a dict record has
    # its fields inlined, a list<string> one class test per item; the general checkers
    # (_kN, _check_message, _check_tokens) are called only for anything else
    declarations = {
        "tenant": {"id": "string", "limits": {"rpm": "int"}},
        "tags": "list<string>",
        "rows": "list<map<string, int>>",
        "meta": "map<string, dyn>",
        "weights": "map<string, double>",
        "ratio": "double",
        "any": "dyn",
        "messages": "list<map<string, dyn>>",
        "input_chars": "int",
    }
    shape = RequestShape(declarations, TokenCounter())
    assert shape.python_source == GOLDEN
    # a traceback through it says it is the generated code
    assert shape.prepare.__code__.co_filename == "<policyd request shape>"


def test_a_large_map_with_keys_that_are_data_is_checked_in_linear_time() -> None:
    # each key's position comes with it: looking every key up again took minutes here
    shape = RequestShape({"scores": "map<string, int>"}, TokenCounter())
    scores = {f"user{i}@example.com": i for i in range(60_000)}
    started = time.perf_counter()
    assert shape.prepare({"scores": scores})["scores"] is scores
    assert time.perf_counter() - started < 3.0
    scores["Key9Z"] = "x"
    assert error({"scores": scores}, {"scores": "map<string, int>"}).field == "scores[key #60000]"
