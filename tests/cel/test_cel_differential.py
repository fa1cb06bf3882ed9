"""Differential testing against cel-python: generated expressions, same answers.

A hypothesis strategy builds well-typed CEL expressions from a grammar over the
features policy conditions use (arithmetic with overflow, comparisons, &&/||/!
with errors inside, ?:, in, has, size, string functions, matches, macros,
conversions, timestamps and durations) plus activations for their variables. The
compiled result (value, or the fact of an error) must equal cel-python's.

The generator avoids the constructs where cel-python departs from the CEL
specification; those departures are listed in ``DEPARTURES`` below, each with
what the specification says (and policyd does) and what cel-python does.
"""

from __future__ import annotations

import functools
import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cel_conformance import same
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policyd import cel
from policyd.cel.fallback import from_cel, to_cel

DECLS = {
    "i": "int",
    "j": "int",
    "d": "double",
    "s": "string",
    "t": "string",
    "b": "bool",
    "l": "list<int>",
    "ls": "list<string>",
    "m": "map<string, int>",
    "ts": "timestamp",
}
ERROR = "<error>"

# ---------------------------------------------------------------------------- grammar

_INT_LITERALS = ["0", "1", "2", "3", "-1", "7", "9223372036854775807", "-9223372036854775807"]
_STRINGS = ['""', '"a"', '"ab"', '"é"', '"🐱"', '"Abc"', "'b'", '"a\\u00e9"']
_DOUBLES = ["0.0", "0.5", "1.0", "-2.5", "1e3", "3.25"]
_PATTERNS = ['"a"', '"^a"', '"b$"', '"[0-9]+"', '"é|🐱"', '"^$"', '"(a|b)+"']
_DURATIONS = ['"1h"', '"30m"', '"90s"', '"1.5s"', '"-2h"', '"0s"', '"1h30m"']
_TIMESTAMPS = ['"2024-01-01T00:00:00Z"', '"2026-06-30T12:30:00+02:00"', '"1999-12-31T23:59:59Z"']


@functools.cache
def _int(depth: int, local: bool = False) -> st.SearchStrategy[str]:
    leaves = [*_INT_LITERALS, "i", "j", "size(s)", "size(l)", "size(m)", "size(ls)"]
    if local:
        leaves += ["v", "v", "v"]
    leaf = st.sampled_from(leaves)
    if depth <= 0:
        return leaf
    sub = _int(depth - 1, local)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "%"]), sub).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        ),
        sub.map(lambda e: f"-({e})"),
        st.tuples(_bool(depth - 1, local), sub, sub).map(lambda p: f"({p[0]} ? {p[1]} : {p[2]})"),
        st.sampled_from(["0", "1", "2", "j * j"]).map(lambda k: f"l[{k}]"),
        st.sampled_from(['"a"', '"b"', '"zz"']).map(lambda k: f"m[{k}]"),
        _double(depth - 1, small=True).map(lambda e: f"int({e})"),
        st.sampled_from(_TIMESTAMPS).map(lambda x: f"int(timestamp({x}))"),
    )


@functools.cache
def _double(depth: int, small: bool = False) -> st.SearchStrategy[str]:
    """Doubles; ``small`` ones stay far from the int64 range edge (see DEPARTURES)."""
    leaf = st.sampled_from([*_DOUBLES, "d"])
    if depth <= 0:
        return leaf
    sub = _double(depth - 1, small)
    options = [
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        ),
        st.tuples(sub, st.sampled_from(["0.5", "4.0", "-2.0"])).map(lambda p: f"({p[0]} / {p[1]})"),
    ]
    if not small:
        options.append(_int(depth - 1).map(lambda e: f"double({e})"))
    return st.one_of(*options)


@functools.cache
def _string(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from([*_STRINGS, "s", "t"])
    if depth <= 0:
        return leaf
    sub = _string(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, sub).map(lambda p: f"({p[0]} + {p[1]})"),
        _int(depth - 1).map(lambda e: f"string({e})"),
        st.tuples(_bool(depth - 1), sub, sub).map(lambda p: f"({p[0]} ? {p[1]} : {p[2]})"),
        st.sampled_from(["0", "1", "size(t)"]).map(lambda k: f"ls[{k}]"),
    )


@functools.cache
def _safe_predicate() -> st.SearchStrategy[str]:
    """Macro bodies that cannot fail (cel-python lets errors escape exists_one/map/filter)."""
    return st.tuples(
        st.sampled_from(["v", "(v % 2)", "(v + 1)", "-v"]),
        st.sampled_from(["==", "!=", "<", ">=", ">"]),
        st.sampled_from(["0", "1", "2", "-1"]),
    ).map(lambda p: f"{p[0]} {p[1]} {p[2]}")


@functools.cache
def _list(depth: int) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["l", "[1, 2, 3]", "[]", "[i, j]"])
    if depth <= 0:
        return leaf
    sub = _list(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, sub).map(lambda p: f"({p[0]} + {p[1]})"),
        st.tuples(sub, st.sampled_from(["v * 2", "v + 1", "-v", "v % 3"])).map(
            lambda p: f"{p[0]}.map(v, {p[1]})"
        ),
        st.tuples(sub, _safe_predicate()).map(lambda p: f"{p[0]}.filter(v, {p[1]})"),
    )


@functools.cache
def _bool(depth: int, local: bool = False) -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["true", "false", "b", "has(m.a)", "has(m.zz)"])
    if depth <= 0:
        return leaf
    ints, strings = _int(depth - 1, local), _string(depth - 1)
    sub = _bool(depth - 1, local)
    cmp = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    return st.one_of(
        leaf,
        st.tuples(ints, cmp, ints).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
        st.tuples(strings, cmp, strings).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
        st.tuples(_double(depth - 1), st.sampled_from(["==", "<", ">="]), _double(depth - 1)).map(
            lambda p: f"({p[0]} {p[1]} {p[2]})"
        ),
        st.tuples(sub, st.sampled_from(["&&", "||"]), sub).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
        sub.map(lambda e: f"!({e})"),
        st.tuples(sub, sub, sub).map(lambda p: f"({p[0]} ? {p[1]} : {p[2]})"),
        st.tuples(ints, _list(depth - 1)).map(lambda p: f"({p[0]} in {p[1]})"),
        strings.map(lambda e: f"({e} in ls)"),
        strings.map(lambda e: f"({e} in m)"),
        st.tuples(strings, st.sampled_from(["startsWith", "endsWith"]), strings).map(
            lambda p: f"{p[0]}.{p[1]}({p[2]})"
        ),
        st.tuples(_string(0), strings).map(lambda p: f"{p[0]}.contains({p[1]})"),
        st.tuples(strings, st.sampled_from(_PATTERNS)).map(lambda p: f"{p[0]}.matches({p[1]})"),
        st.tuples(_list(depth - 1), st.sampled_from(["all", "exists"]), _bool(depth - 1, True)).map(
            lambda p: f"{p[0]}.{p[1]}(v, {p[2]})"
        ),
        st.tuples(_list(depth - 1), _safe_predicate()).map(
            lambda p: f"{p[0]}.exists_one(v, {p[1]})"
        ),
        st.tuples(st.sampled_from(_DURATIONS), cmp, st.sampled_from(_DURATIONS)).map(
            lambda p: f"duration({p[0]}) {p[1]} duration({p[2]})"
        ),
        st.tuples(st.sampled_from(_DURATIONS), cmp, st.sampled_from(_TIMESTAMPS)).map(
            lambda p: f"ts + duration({p[0]}) {p[1]} timestamp({p[2]})"
        ),
        st.tuples(st.sampled_from(_TIMESTAMPS), cmp, st.sampled_from(_DURATIONS)).map(
            lambda p: f"ts - timestamp({p[0]}) {p[1]} duration({p[2]})"
        ),
    )


@functools.cache
def _expressions() -> st.SearchStrategy[str]:
    return st.one_of(_bool(3), _int(3), _string(2), _list(2), _double(2))


_TEXT = st.text(alphabet="abAé🐱0", max_size=4)
_ACTIVATIONS = st.fixed_dictionaries(
    {
        "i": st.one_of(st.integers(-4, 4), st.sampled_from([2**63 - 1, -(2**63)])),
        "j": st.integers(-3, 3),
        "d": st.sampled_from([0.0, -1.5, 2.25, 1e10]),
        "s": _TEXT,
        "t": _TEXT,
        "b": st.booleans(),
        "l": st.lists(st.integers(-3, 3), max_size=4),
        "ls": st.lists(_TEXT, max_size=3),
        "m": st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(-2, 2), max_size=3),
        "ts": st.sampled_from(
            [datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 6, 30, 10, 30, 15, tzinfo=UTC)]
        ),
    }
)

# ---------------------------------------------------------------------------- engines


def _policyd(source: str, activation: dict[str, Any]) -> Any:
    expr = cel.compile(source, DECLS)
    try:
        return expr.evaluate(activation)
    except cel.EvaluationError:
        return ERROR


_CELPY_ENV: Any = None


def _celpy(source: str, activation: dict[str, Any]) -> Any:
    global _CELPY_ENV
    import celpy
    from celpy.evaluation import CELEvalError

    if _CELPY_ENV is None:
        saved = sys.getrecursionlimit()
        try:
            _CELPY_ENV = celpy.Environment()
        finally:
            sys.setrecursionlimit(saved)
    program = _CELPY_ENV.program(_CELPY_ENV.compile(source))
    try:
        return from_cel(program.evaluate({k: to_cel(v) for k, v in activation.items()}))
    except CELEvalError:
        return ERROR


def _agree(ours: Any, theirs: Any) -> bool:
    if ours is ERROR or theirs is ERROR:
        return ours is theirs
    return same(ours, theirs)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(source=st.deferred(lambda: _expressions()), activation=_ACTIVATIONS)
def test_compiled_equals_cel_python(source: str, activation: dict[str, Any]) -> None:
    try:
        cel.compile(source, DECLS)
    except cel.CompileError as exc:
        # Nested macros over list variables can exceed the static cost limit: policyd
        # rejects them at load time by design (PD306), cel-python has no limit.
        assume(exc.code != "PD306")
        raise
    ours = _policyd(source, activation)
    theirs = _celpy(source, activation)
    assert _agree(ours, theirs), (
        f"{source!r} with {activation}: policyd {ours!r}, cel-python {theirs!r}"
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.deferred(lambda: _bool(3)), activation=_ACTIVATIONS)
def test_fast_and_absorbing_paths_agree(source: str, activation: dict[str, Any]) -> None:
    """The generated function's two variants (see codegen) give one answer."""
    from policyd.cel import analysis, codegen
    from policyd.cel.checker import Checker
    from policyd.cel.expression import _declarations
    from policyd.cel.syntax import parse

    try:
        cel.compile(source, DECLS)
    except cel.CompileError as exc:  # nested macros over lists can exceed the cost limit
        assume(exc.code != "PD306")
        raise
    tree = Checker(source, _declarations(DECLS)).visit(parse(source))
    python, consts = codegen.generate(tree, absorbing_needed=True, budget=False)
    namespace = {**codegen.namespace(), **consts}
    exec(compile(python, "<test>", "exec"), namespace)
    try:
        slow = namespace["_slow"](activation)
    except cel.EvaluationError:
        slow = ERROR
    assert _agree(_policyd(source, activation), slow)
    assert analysis.cost(tree) > 0


# ---------------------------------------------------------------------------- departures

NOW = {"x": timedelta(seconds=123, microseconds=321456)}

# (expression, what the CEL specification gives and policyd returns, what cel-python 0.5 does)
DEPARTURES: list[tuple[str, Any, str]] = [
    ("dyn(1) == 1.0", True, "error: no matching overload (no cross-type numeric equality)"),
    ('dyn("1") == 1', False, "error: no matching overload"),
    ("dyn(true) == 1", False, "true: bool is an int subclass"),
    ("dyn([1]) == [1.0]", True, "error: no matching overload"),
    ("dyn(1) < 1.5", True, "error: no matching overload (no cross-type ordering)"),
    ("0.0 / 0.0 == 0.0 / 0.0", False, "true: x / 0.0 is +inf, even 0.0 / 0.0"),
    ("-1.0 / 0.0", -math.inf, "+inf"),
    ("string(true)", "true", "'True' (Python's str)"),
    ('string(duration("1.5s"))', "1.5s", "'1s'"),
    ("[1, 2][-1]", ERROR, "2: Python's negative indexing"),
    ("[0].exists_one(x, 1 / x > 0) || true", True, "error: the error escapes the macro"),
    ("dyn('text') && true", ERROR, "'text': a non-bool operand passes through"),
    ("int(-9223372036854775808.0)", ERROR, "-9223372036854775808: range check too wide"),
    ('timestamp("9999-01-01T00:00:00Z") - timestamp("0001-01-01T00:00:00Z")', ERROR, "a duration"),
    ("x.getMilliseconds()", 321, "123321: total milliseconds, not the 0-999 part"),
    ("[7, 8][dyn(1.0)]", 8, "error: a double index is not accepted"),
    ('("a" + "b").contains("b")', True, "error: a concatenated string loses its contains()"),
]


@pytest.mark.parametrize(
    ("source", "spec", "celpy_does"), DEPARTURES, ids=[d[0] for d in DEPARTURES]
)
def test_documented_departures_from_cel_python(source: str, spec: Any, celpy_does: str) -> None:
    decls = {"x": "duration"}
    expr = cel.compile(source, decls)
    try:
        ours = expr.evaluate(NOW)
    except cel.EvaluationError:
        ours = ERROR
    assert _agree(ours, spec), f"policyd gave {ours!r}, the specification says {spec!r}"
    theirs = _celpy(source, NOW)
    assert not _agree(theirs, spec), f"cel-python now agrees ({celpy_does}); drop this entry"
