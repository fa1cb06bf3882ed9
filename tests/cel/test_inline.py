"""policyd.cel.inline: an expression's generated code embedded elsewhere answers alike.

The fused decide function (policyd.fused) embeds each condition's fast form and writes
CEL's absorbing ``&&``/``||`` out as statements. Here: random and/or trees over operands
that are true, false, raise, or are not bools give, as statements, exactly what
``runtime.and_``/``runtime.or_`` give (the value, or the same first error); and inlined
expressions evaluate like their functions on requests with missing and mistyped values.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policyd import cel
from policyd.cel import runtime
from policyd.cel.inline import absorbing_lines, inline

# operand code over a request ``r``: true, false, a KeyError, a TypeError, not a bool
_LEAVES = ["True", "False", "r['missing']", "r['text'] + 1", "r['number']", "r['flag']"]
_REQUEST = {"text": "s", "number": 3, "flag": True}

_FORMS: st.SearchStrategy[tuple[str, Any]] = st.recursive(
    st.sampled_from(_LEAVES).map(lambda code: ("", code)),
    lambda inner: st.tuples(
        st.sampled_from(["&&", "||"]), st.lists(inner, min_size=2, max_size=3).map(tuple)
    ),
    max_leaves=8,
)


def _reference(form: tuple[str, Any]) -> Any:
    op, operands = form
    if op == "":
        return lambda: eval(operands, {"r": _REQUEST})
    parts = [_reference(o) for o in operands]
    combine = runtime.and_ if op == "&&" else runtime.or_
    return lambda: combine(*parts)


def _outcome(run: Any) -> tuple[str, Any]:
    try:
        return "value", run()
    except runtime.ERRORS as exc:
        return "error", (type(exc), str(exc))


@settings(max_examples=400, deadline=None)
@given(form=_FORMS.filter(lambda f: f[0] != ""))
def test_statements_absorb_errors_as_the_runtime_does(form: tuple[str, Any]) -> None:
    body = "".join(f"    {line}\n" for line in absorbing_lines(form, "_o"))
    source = f"def f(r):\n{body}    return _o_v, _o_e\n"
    ns: dict[str, Any] = {"_E": runtime.ERRORS, "_no_overload": runtime.no_overload}
    exec(compile(source, "<test>", "exec"), ns)
    value, error = ns["f"](_REQUEST)
    ours = ("value", value) if error is None else ("error", (type(error), str(error)))
    assert ours == _outcome(_reference(form))


DECLARED = {"request": {"a": "int", "b": "bool", "s": "string", "tags": "list<string>"}}
SOURCES = [
    "request.a > 3 && request.b",
    "request.b || request.a > 3 || request.s == 'x'",
    "(request.a > 3 || 'x' in request.tags) && !request.s.startsWith('y')",
    "request.s == 'x' && size(request.tags) > 1",
    "request.a + 1 > 2",
]
_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "a": st.integers(0, 6),
        "b": st.booleans(),
        "s": st.sampled_from(["x", "yes", ""]),
        "tags": st.lists(st.sampled_from(["x", "y"]), max_size=3),
    },
)


@settings(max_examples=300, deadline=None)
@given(request=_VALUES, index=st.integers(0, len(SOURCES) - 1))
def test_an_inlined_expression_evaluates_like_its_function(
    request: dict[str, Any], index: int
) -> None:
    expr = cel.compile(SOURCES[index], DECLARED)
    ns: dict[str, Any] = {"_E": runtime.ERRORS, "_no_overload": runtime.no_overload}
    inlined = inline(expr, ns)
    assert inlined is not None
    assert inlined.absorbing is not None or not inlined.absorbs
    form = inlined.absorbing
    lines = [f"    {line}\n" for line in absorbing_lines(form, "_o")] if form else []
    source = (
        "def f(r, now):\n"
        f"    try:\n        return {inlined.fast}, None\n"
        "    except _E as exc:\n"
        + ("".join("    " + line for line in lines) + "        return _o_v, _o_e\n" if lines
           else "        return None, exc\n")
    )  # fmt: skip
    exec(compile(source, "<test>", "exec"), ns)
    value, error = ns["f"](request, None)
    try:
        expected: Any = ("value", expr.evaluate({"request": request}))
    except cel.EvaluationError as exc:
        expected = ("error", str(exc))
    if error is None:
        assert ("value", value) == expected
    else:
        assert ("error", str(runtime.to_eval_error(error, inlined.names))) == expected
