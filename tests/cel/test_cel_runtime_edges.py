"""The run-time helpers on operands the checker cannot type (``dyn``): exact answers.

Written against mutants of policyd/cel/runtime.py that survived the rest of the suite
(tools/mutation.py): arithmetic on dyn lists, durations and timestamps, the 64-bit
integer range at both ends (INT64 minimum included), truncating division and modulus,
IEEE division by zero, list indexes, map literals, and the exact error texts (which
never echo a value from the request).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policyd import cel
from policyd.cel import runtime

DECLS = {"a": "dyn", "b": "dyn"}
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MIN = -(2**63)
MAX = 2**63 - 1


class Err:
    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"Err({self.message!r})"


def run(source: str, a: Any = None, b: Any = None) -> Any:
    try:
        return cel.compile(source, DECLS).evaluate({"a": a, "b": b})
    except cel.EvaluationError as exc:
        return Err(exc.message)


def same(got: Any, expected: Any) -> bool:
    if isinstance(expected, Err):
        return isinstance(got, Err) and got.message == expected.message
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(got, float) and math.isnan(got)
    return type(got) is type(expected) and got == expected


OVERFLOW = Err("integer overflow")
BAD_INDEX = Err("invalid list index: a double that is not an integer")

CASES: list[tuple[str, Any, Any, Any]] = [
    # (source, a, b, expected): a and b reach the helpers as dyn
    ("a + b", [1, "x"], [2.0], [1, "x", 2.0]),
    ("a + b", [], [], []),
    ("a + b", "ab", "cd", "abcd"),
    ("a + b", b"a", b"b", b"ab"),
    ("a + b", 1.5, 2.25, 3.75),
    ("a + b", MAX - 1, 1, MAX),
    ("a + b", MAX, 1, OVERFLOW),
    ("a + b", MIN, -1, OVERFLOW),
    ("a + b", timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=3)),
    ("a + b", T0, timedelta(hours=1), T0 + timedelta(hours=1)),
    ("a + b", timedelta(hours=1), T0, T0 + timedelta(hours=1)),
    ("a + b", 1, "a", Err("no such overload: '+' applied to (int, string)")),
    ("a + b", 1, 1.0, Err("no such overload: '+' applied to (int, double)")),
    ("a + b", [1], 1, Err("no such overload: '+' applied to (list, int)")),
    ("a + b", T0, T0, Err("no such overload: '+' applied to (timestamp, timestamp)")),
    ("a + b", 1, timedelta(1), Err("no such overload: '+' applied to (int, duration)")),
    ("a + b", timedelta(1), 1, Err("no such overload: '+' applied to (duration, int)")),
    ("a + b", 1, T0, Err("no such overload: '+' applied to (int, timestamp)")),
    ("a - b", 1, timedelta(1), Err("no such overload: '-' applied to (int, duration)")),
    ("a - b", 5, 7, -2),
    ("a - b", MIN + 1, 1, MIN),
    ("a - b", MIN, 1, OVERFLOW),
    ("a - b", MAX, -1, OVERFLOW),
    ("a - b", 0.5, 2.0, -1.5),
    ("a - b", timedelta(seconds=1), timedelta(seconds=3), timedelta(seconds=-2)),
    ("a - b", T0, T0 - timedelta(minutes=5), timedelta(minutes=5)),
    ("a - b", T0, timedelta(hours=1), T0 - timedelta(hours=1)),
    ("a - b", timedelta(1), T0, Err("no such overload: '-' applied to (duration, timestamp)")),
    ("a - b", [1], [1], Err("no such overload: '-' applied to (list, list)")),
    ("a - b", "a", "a", Err("no such overload: '-' applied to (string, string)")),
    ("a * b", 6, -7, -42),
    ("a * b", 2**32, 2**31, OVERFLOW),
    ("a * b", MIN, -1, OVERFLOW),
    ("a * b", 1.5, 2.0, 3.0),
    ("a * b", 2, 2.0, Err("no such overload: '*' applied to (int, double)")),
    ("a / b", 7, 2, 3),
    ("a / b", -7, 2, -3),
    ("a / b", 7, -2, -3),
    ("a / b", -7, -2, 3),
    ("a / b", MIN, 1, MIN),
    ("a / b", MIN, -1, OVERFLOW),
    ("a / b", 1, 0, Err("division by zero")),
    ("a / b", 1.0, 4.0, 0.25),
    ("a / b", 1.0, 0.0, math.inf),
    ("a / b", -1.0, 0.0, -math.inf),
    ("a / b", 1.0, -0.0, -math.inf),
    ("a / b", 0.0, 0.0, math.nan),
    ("a / b", math.nan, 0.0, math.nan),
    ("a / b", 1, 1.0, Err("no such overload: '/' applied to (int, double)")),
    ("a % b", 7, 3, 1),
    ("a % b", -7, 3, -1),
    ("a % b", 7, -3, 1),
    ("a % b", -7, -3, -1),
    ("a % b", MIN, -1, 0),
    ("a % b", 1, 0, Err("modulus by zero")),
    ("a % b", 7.0, 3.0, Err("no such overload: '%' applied to (double, double)")),
    ("-a", MAX, None, -MAX),
    ("-a", MIN, None, OVERFLOW),
    ("-a", 2.5, None, -2.5),
    ("-a", "x", None, Err("no such overload: '-' applied to (string)")),
    ("a[b]", [10, 20], 1, 20),
    ("a[b]", [10, 20], 1.0, 20),
    ("a[b]", [10, 20], 0, 10),
    ("a[b]", [10, 20], 2, Err("index out of range")),
    ("a[b]", [10, 20], -1, Err("index out of range")),
    ("a[b]", [10, 20], 0.5, Err("invalid list index: a double that is not an integer")),
    ("a[b]", [10, 20], math.inf, Err("invalid list index: a double that is not an integer")),
    ("a[b]", [10, 20], math.nan, Err("invalid list index: a double that is not an integer")),
    ("a[b]", [10, 20], "0", Err("no such overload: '[]' applied to (list, string)")),
    ("a[b]", {"k": 1}, "k", 1),
    ("a[b]", {"k": 1}, "z", Err("no such key")),
    ("a[b]", "abc", 0, Err("no such overload: '[]' applied to (string, int)")),
    ("a.k", {"k": 2}, None, 2),
    ("a.k", 3, None, Err("type 'int' does not support field selection")),
    ("has(a.k)", {"k": 2}, None, True),
    ("has(a.k)", {}, None, False),
    ("has(a.k)", 3, None, Err("has() does not apply to type 'int'")),
    ("a && b", True, True, True),
    ("a && b", True, False, False),
    ("a || b", False, False, False),
    ("a || b", False, True, True),
    ("a && b", 1, False, False),  # false wins over an error, in either position
    ("a && b", False, 1, False),
    ("a || b", 1, True, True),
    ("a && b", 1, True, Err("no matching overload: expected bool, got int")),
    ("a && b", 1, "x", Err("no matching overload: expected bool, got int")),  # the first
    ("a || b", "x", False, Err("no matching overload: expected bool, got string")),
    ("a[b]", {1: "x"}, 1, "x"),
    ("a[b]", {True: "x"}, True, "x"),
    ("a[b]", {False: "x"}, 0, Err("no such key")),
    ("a in b", 0, {False: "x"}, False),
    ("a in b", [1], {"k": 1}, False),
    ("a < b", 1, 2, True),
    ("a < b", 2, 2, False),
    ("a <= b", 2, 2, True),
    ("a <= b", 3, 2, False),
    ("a > b", 3, 2, True),
    ("a > b", 2, 2, False),
    ("a >= b", 2, 2, True),
    ("a >= b", 1, 2, False),
    ("a <= b", 1, 1.5, True),
    ("a >= b", 2.5, 2, True),
    ("a <= b", "a", "b", True),
    ("a >= b", T0, T0, True),
    ("a < b", 1, "a", Err("no such overload: '<' applied to (int, string)")),
    ("a <= b", 1, "a", Err("no such overload: '<=' applied to (int, string)")),
    ("a > b", 1, "a", Err("no such overload: '>' applied to (int, string)")),
    ("a >= b", 1, "a", Err("no such overload: '>=' applied to (int, string)")),
    ("a == b", 1, 1.0, True),
    ("a != b", 1, 1, False),
    ("a != b", 1, 2, True),
    ("a != b", "1", 1, True),
    ("!a", True, None, False),
    ("!a", False, None, True),
    ("!a", 1, None, Err("no matching overload: expected bool, got int")),
    ("a in b", "k", {"k": 1}, True),
    ("a in b", "z", {"k": 1}, False),
    ("a in b", 1.0, {1: "x"}, True),
    ("a in b", True, {1: "x"}, False),
    ("a in b", 1, [1.0, 2], True),
    ("a in b", 3, [1.0, 2], False),
    ("a in b", 1, "1", Err("no such overload: 'in' applied to (int, string)")),
    ("a.all(x, x > 0)", [1, 2], None, True),
    ("a.all(x, x > 1)", [1, 2], None, False),
    ("a.exists(k, k == 'b')", {"a": 1, "b": 2}, None, True),
    ("a.exists(k, k == 'c')", {"a": 1, "b": 2}, None, False),
    ("a.all(x, x > 0)", 3, None, Err("cannot iterate over int")),
    ("a.exists(x, 1 / x == 1)", [0, 1], None, True),  # true absorbs the other's error
    ("a.exists(x, 1 / x == 1)", [0, 2], None, Err("division by zero")),
    ("a.exists(x, 1 / x == 1)", [2, 3], None, False),
    ("a['z']", {"k": 1}, None, Err("no such key: 'z'")),  # named: the policy's own text
    ("size(a)", "héllo", None, 5),
    ("size(a)", {"x": 1, "y": 2}, None, 2),
    ("size(a)", b"ab", None, 2),
    ("size(a)", 3, None, Err("no such overload: 'size' applied to (int)")),
    ("{a: 1, b: 2}", "k", "k", Err("Failed with repeated key in map literal (string)")),
    ("{a: 0, b: 2}", "k", "k", Err("Failed with repeated key in map literal (string)")),
    ("{a: 1, b: 2}", "x", "y", {"x": 1, "y": 2}),
    ("{a: 1}", 1.5, None, Err("unsupported key type 'double' in map literal")),
]


@pytest.mark.parametrize(("source", "a", "b", "expected"), CASES, ids=[repr(c) for c in CASES])
def test_dyn_operands(source: str, a: Any, b: Any, expected: Any) -> None:
    got = run(source, a, b)
    assert same(got, expected), f"{source} with a={a!r}, b={b!r}: {got!r}, expected {expected!r}"


def test_the_int64_range_is_inclusive_at_both_ends() -> None:
    assert runtime.check_int(MIN) == MIN
    assert runtime.check_int(MAX) == MAX
    for outside in (MIN - 1, MAX + 1):
        with pytest.raises(cel.EvaluationError) as raised:
            runtime.check_int(outside)
        assert raised.value.message == "integer overflow"
    assert run("-9223372036854775808") == MIN
    assert run("a == -9223372036854775808", MIN) is True


def test_a_map_literal_keeps_true_and_1_apart() -> None:
    got = run("{a: 1, b: 2}", True, 1)
    assert isinstance(got, Err) and got.message == (
        "map literal mixes a bool key with an equal int key; "
        "policyd maps cannot hold both true/false and 1/0 as keys"
    )


def test_macro_iterations_are_bounded_inclusively() -> None:
    from policyd.cel.codegen import MAX_ITERATIONS

    # two macros in one expression share one iteration budget
    half = MAX_ITERATIONS // 2
    source = "a.all(x, true) && b.all(y, true)"
    assert run(source, [0] * half, [0] * (MAX_ITERATIONS - half)) is True
    too_many = run(source, [0] * half, [0] * (MAX_ITERATIONS - half + 1))
    assert isinstance(too_many, Err)
    assert too_many.message == "evaluation cost limit exceeded (too many macro iterations)"


def test_the_slow_path_negates_through_the_same_helper() -> None:
    from policyd.cel.fallback import CelpyProgram

    program = CelpyProgram("!a", frozenset({"a"}))
    assert program.evaluate({"a": True}) is False
    assert program.evaluate({"a": False}) is True
    with pytest.raises(cel.EvaluationError):
        program.evaluate({"a": 1})


def test_and_or_helpers_refuse_non_bool_values() -> None:
    """The helpers' own contract, for callers that do not wrap operands in as_bool."""

    def fail() -> Any:
        raise cel.EvaluationError("boom")

    assert runtime.and_(lambda: True, lambda: True) is True
    assert runtime.or_(lambda: False, lambda: False) is False
    assert runtime.and_(fail, lambda: False) is False
    assert runtime.or_(lambda: 1, lambda: True) is True
    for helper, op in ((runtime.and_, "&&"), (runtime.or_, "||")):
        with pytest.raises(cel.EvaluationError) as raised:
            helper(lambda: 1, lambda: "x")
        assert raised.value.message == f"no such overload: '{op}' applied to (int)"
        with pytest.raises(cel.EvaluationError) as raised:
            helper(fail, lambda: 1)
        assert raised.value.message == "boom"


@pytest.mark.parametrize(
    ("source", "a", "b"),
    [
        ("a[b]", ["secret-1"], 7),
        ("a[b]", {"secret-2": 1}, "secret-3"),
        ("{a: 1, b: 2}", "secret-4", "secret-4"),
    ],
)
def test_error_texts_never_quote_an_operand(source: str, a: Any, b: Any) -> None:
    got = run(source, a, b)
    assert isinstance(got, Err)
    assert "secret" not in got.message and "7" not in got.message  # #11: no request value
