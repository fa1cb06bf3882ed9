"""scan_values: what no stage can handle is refused, naming the field and never its value.

Written against mutants of policyd/request.py (tools/mutation.py): each bound is tested
on both sides, each refusal by its exact words and field.
"""

from __future__ import annotations

import inspect
import sys
from collections import UserDict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policyd.errors import RequestError
from policyd.request import MAX_DEPTH, MAX_VALUES, key_step, scan_values

JSON_VALUE = "must be a JSON value (string, number, boolean, null, list or mapping), not object"
SURROGATE = "is not valid Unicode text (it contains a lone surrogate)"
INT64 = "integer does not fit 64 bits"


class Text(str):
    pass


class Number(int):
    pass


def refused(request: Any) -> tuple[str | None, str]:
    with pytest.raises(RequestError) as raised:
        scan_values(request)
    return raised.value.field, str(raised.value)


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        ({"a": {"b": [1, object()]}}, "a.b[1]", JSON_VALUE),
        ({"a": [object()]}, "a[0]", JSON_VALUE),
        ({"jane@example.com": object()}, "[key #0]", JSON_VALUE),
        ({"ok": 1, "a": UserDict({"x": 1, "Secret9Key": object()})}, "a[key #1]", JSON_VALUE),
        ({"a": 2**63}, "a", INT64),
        ({"a": -(2**63) - 1}, "a", INT64),
        ({"a": [0, 2**63]}, "a[1]", INT64),
        ({"a": Number(2**63)}, "a", INT64),
        ({"a": [Number(-(2**63) - 1)]}, "a[0]", INT64),
        ({"a": "ok \ud800"}, "a", SURROGATE),
        ({"a": ["é", "\udfff"]}, "a[1]", SURROGATE),
        ({"a": Text("\ud800")}, "a", SURROGATE),
        ({"a": (Text("\ud800"),)}, "a[0]", SURROGATE),
        ({"a": {1: "x"}}, "a", "has a key that is an integer, not a string"),
        ({"a": {"\ud800": 1}}, "a", "has a key that is not valid Unicode text (a lone surrogate)"),
    ],
)
def test_a_refused_value_is_named_by_its_field(request_: Any, field: str, message: str) -> None:
    assert refused(request_) == (field, f"request.{field}: {message}")


def test_every_json_value_and_declared_scalar_is_accepted() -> None:
    scan_values(
        {
            "s": "é ok",
            "é": Text("t"),
            "ints": [2**63 - 1, -(2**63), Number(5), True],
            "n": -(2**63),
            "m": 2**63 - 1,
            "k": Number(7),
            "bounds": [Number(2**63 - 1), Number(-(2**63))],
            "floats": [1.5, None, False],
            "when": datetime(2026, 1, 1, tzinfo=UTC),
            "ttl": [timedelta(seconds=1), b"x"],
            "maps": [UserDict({"a": (1, "x")}), {"b": []}],
        }
    )


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def test_nesting_is_bounded_and_a_cycle_is_refused() -> None:
    scan_values(nested(MAX_DEPTH))
    field, message = refused(nested(MAX_DEPTH + 1))
    assert field == ".".join(["a"] * MAX_DEPTH)
    assert message.endswith(f": is nested more than {MAX_DEPTH} levels deep (or refers to itself)")
    loop: list[Any] = []
    loop.append(loop)
    field, _ = refused({"a": loop})
    assert field == "a" + "[0]" * (MAX_DEPTH - 1)


def test_the_number_of_values_is_bounded() -> None:
    scan_values({"a": [0] * (MAX_VALUES - 1)})  # the key "a" is one value
    assert refused({"a": [0] * MAX_VALUES}) == (
        "a",
        f"request.a: the request holds more than {MAX_VALUES:,} values",
    )
    # 1 key, a list of n lists, n values in them: the last list is one too many
    assert refused({"a": [[0]] * (MAX_VALUES // 2)})[0] == f"a[{MAX_VALUES // 2 - 1}]"


@pytest.mark.parametrize(
    ("key", "step"),
    [
        ("max_tokens", ".max_tokens"),
        ("x-request-id", ".x-request-id"),
        ("gpt4o", ".gpt4o"),
        ("ABC", ".ABC"),
        ("v1234", ".v1234"),
        ("v12345", "[key #1]"),  # many digits: an id
        ("Gpt4", "[key #1]"),  # capitals with digits: a token
        ("a" * 40, "." + "a" * 40),
        ("a" * 41, "[key #1]"),
        ("9lives", "[key #1]"),
        ("jane@example.com", "[key #1]"),
        ("two words", "[key #1]"),
    ],
)
def test_a_key_is_named_only_when_it_is_a_field_name(key: str, step: str) -> None:
    assert key_step({"first": 0, key: 1, "last": 2}, key) == step


class Hiding(dict[Any, Any]):
    """A mapping whose iteration shows none of its keys."""

    def __iter__(self) -> Any:
        return iter(())


def test_a_key_that_is_no_string_is_named_by_position() -> None:
    assert key_step({"a": 0, "b": 1, 7: 2}, 7) == "[key #2]"
    assert key_step({"a": 0, (1, 2): 1}, tuple([1, 2])) == "[key #1]"  # equal, another object
    nan = float("nan")  # the same object, though not equal to itself
    assert key_step({"a": 0, nan: 1}, nan) == "[key #1]"
    # a mapping that hides its keys from iteration: a position all the same, no crash
    assert key_step(Hiding({"a": 0, "Secret9Key": 1}), "Secret9Key") == "[key #0]"


def test_a_deep_structure_below_a_low_recursion_limit_is_refused_not_crashed() -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 30)  # an embedding app's low limit
    try:
        with pytest.raises(RequestError) as raised:
            scan_values(nested(MAX_DEPTH))
    finally:
        sys.setrecursionlimit(limit)
    assert raised.value.field is None
    assert str(raised.value) == f"is nested more than {MAX_DEPTH} levels deep"
