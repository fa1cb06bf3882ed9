"""compile(): the contract policyd's validator and engine rely on.

Type checking happens at load time: unknown attributes, wrong types and unknown
functions are CompileErrors with a code, a position inside the expression and,
where possible, a did-you-mean hint. The Expression says what it reads (paths),
what it returns (result_type), whether it runs natively, and what it costs.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import pytest

from policyd import cel

DECLS = {
    "request": {
        "tenant": {"id": "string", "tier": "string"},
        "user": {"id": "string", "country": "string"},
        "tags": "list<string>",
        "metadata": "map<string, dyn>",
        "messages": "list<map<string, dyn>>",
        "max_tokens": "int",
        "temperature": "double",
        "input_tokens": "int",
    },
    "now": "timestamp",
}


def compile_error(source: str, decls: object = DECLS) -> cel.CompileError:
    with pytest.raises(cel.CompileError) as info:
        cel.compile(source, decls)  # type: ignore[arg-type]
    return info.value


def test_expression_surface() -> None:
    expr = cel.compile('request.tenant.tier == "enterprise" && "code" in request.tags', DECLS)
    assert expr.source == 'request.tenant.tier == "enterprise" && "code" in request.tags'
    assert expr.result_type == "bool"
    assert expr.paths == frozenset({("request", "tenant", "tier"), ("request", "tags")})
    assert expr.native is True
    assert expr.fallback_reason is None
    assert 0 < expr.cost < 100
    assert expr.evaluate({"request": {"tenant": {"tier": "enterprise"}, "tags": ["code"]}})


@pytest.mark.parametrize(
    ("source", "result_type"),
    [
        ("request.user.id", "string"),
        ("request.max_tokens * 2", "int"),
        ("request.temperature + 0.5", "double"),
        ("request.metadata.anything", "dyn"),
        ("request.tags.map(t, size(t))", "list<int>"),
        ("request.metadata", "map<string, dyn>"),
        ("request.tenant", "map<string, dyn>"),
        ("now", "timestamp"),
        ("now - now", "duration"),
        ('{"a": 1}', "map<string, int>"),
        ("[1, 'a']", "list<dyn>"),
        ("type(1)", "type"),
        ("null", "null_type"),
        ("b'x'", "bytes"),
    ],
)
def test_result_types(source: str, result_type: str) -> None:
    assert cel.compile(source, DECLS).result_type == result_type


@pytest.mark.parametrize(
    ("source", "code", "column", "message", "hint"),
    [
        ('request.tenant.tierr == "x"', "PD302", 16, "undefined field 'tierr'", "'tier'"),
        ("reqest.user.id", "PD302", 1, "undeclared reference to 'reqest'", "'request'"),
        ("request.tags > 3", "PD303", 14, "no matching overload for '>'", "size"),
        ('1 + "a"', "PD303", 3, "(int, string)", "string()"),
        ("request.temperature == 0", "PD303", 21, "(double, int)", "1.0"),
        ("sise(request.tags)", "PD304", 1, "unknown function 'sise'", "'size'"),
        ("len(request.tags)", "PD304", 1, "unknown function 'len'", "size"),
        ("request.tags.lenght()", "PD304", 14, "unknown method 'lenght'", None),
        ('request.user.id = "x"', "PD301", 17, "syntax error", "'=='"),
        ('request.user.id == "x', "PD301", 20, "syntax error", "string literal"),
        ("request.user.id ==", "PD301", 19, "ends too early", None),
        ('"a".matches("(")', "PD301", 13, "invalid regular expression", "RE2"),
        ("true ? 1 : 'a'", "PD303", 6, "different types", "dyn()"),
        ("request.tags.all(t, t)", "PD303", 21, "must be bool", "compare the value"),
        ("request.max_tokens && true", "PD303", 20, "must be bool", "compare the value"),
        ("has(request)", "PD301", 1, "has() needs a field selection", None),
        ("request.tags.exists(t.x, true)", "PD301", 21, "variable name", None),
        ("Foo{a: 1}", "PD301", 1, "message construction", "plain maps"),
        ("1u + 2u", "PD303", 1, "uint", "without the 'u' suffix"),
        ("{[1]: 2}", "PD303", 2, "map key type", "string, int or bool"),
        ("request.max_tokens.foo", "PD303", 20, "does not support field selection", None),
        ("while", "PD301", 1, "reserved word", None),
        ("size(1, 2)", "PD303", 1, "takes 1 argument", None),
        ("'a'.size(1)", "PD303", 5, "takes", None),
        ("'abc'.timestamp()", "PD304", 7, "is a function, not a method", "timestamp(...)"),
        ("startsWith('a', 'b')", "PD304", 1, "is a method", "value.startsWith(...)"),
    ],
)
def test_compile_errors(
    source: str, code: str, column: int, message: str, hint: str | None
) -> None:
    error = compile_error(source)
    assert error.code == code
    assert message in error.message
    assert (error.line, error.column) == (1, column), str(error)
    assert error.offset == column - 1
    if hint is None:
        assert error.hint is None, error.hint
    else:
        assert error.hint is not None and hint in error.hint
    assert str(error).startswith(f"1:{column}: ")
    assert "^" in error.pointer()


def test_error_positions_on_later_lines() -> None:
    error = compile_error('request.user.id == "x" &&\n  request.tenant.teir == "y"')
    assert (error.line, error.column) == (2, 18)
    assert error.offset == 43


def test_records_are_closed_maps_and_dyn_are_open() -> None:
    far = compile_error("request.user.email")  # no declared field is close: list them
    assert far.code == "PD302" and "undefined field 'email' of request.user" in far.message
    assert far.hint == "declared fields are id, country"
    assert compile_error("request.user.contry").hint == "did you mean 'country'?"
    cel.compile("request.metadata.anything.deeper", DECLS)  # map<string, dyn>: allowed
    cel.compile("request.messages[0].role", DECLS)  # map value: allowed
    assert compile_error('request["nope"]').code == "PD302"
    assert cel.compile('request["user"]["id"]', DECLS).result_type == "string"


def test_without_declarations_everything_is_dyn() -> None:
    expr = cel.compile("a.b.c + 1 > x", None)
    assert expr.result_type == "bool"
    assert expr.paths == frozenset({("a", "b", "c"), ("x",)})
    assert expr.evaluate({"a": {"b": {"c": 1}}, "x": 1}) is True
    assert cel.compile("type(x) == string").evaluate({"x": "s"}) is True


def test_undeclared_identifier_with_empty_declarations() -> None:
    assert compile_error("x", {}).code == "PD302"


def test_unknown_declared_type_degrades_to_dyn() -> None:
    expr = cel.compile("x.y == 1", {"x": "strng"})
    assert expr.result_type == "bool"
    with pytest.raises(cel.CelError, match="unknown CEL type 'strng'"):
        cel.parse_type("strng")
    assert str(cel.parse_type("map<string, list<int>>")) == "map<string, list<int>>"


def test_paths_are_maximal_and_skip_macro_variables() -> None:
    expr = cel.compile(
        'request.messages.exists(m, m.role == "user") && has(request.user.country) '
        '&& request.metadata["k"] == 1 && size(request.tenant) > 0',
        DECLS,
    )
    assert expr.paths == frozenset(
        {
            ("request", "messages"),
            ("request", "user", "country"),
            ("request", "metadata", "k"),
            ("request", "tenant"),
        }
    )


def test_qualified_names_resolve_longest_declared_prefix() -> None:
    expr = cel.compile("a.b.c", {"a.b.c": "string", "a.b": "map<string, string>"})
    assert expr.evaluate({"a.b.c": "yes", "a.b": {"c": "no"}}) == "yes"
    assert expr.paths == frozenset({("a.b.c",)})


def test_backtick_quoted_fields() -> None:
    expr = cel.compile('request.metadata.`x-user-id` == "u1"', DECLS)
    assert expr.evaluate({"request": {"metadata": {"x-user-id": "u1"}}}) is True
    assert ("request", "metadata", "x-user-id") in expr.paths
    error = compile_error("request.metadata.`x` + 1 + 'a'.zzz()")
    assert error.column == 32  # offsets are unchanged by the quoting


def test_fallback_for_timestamp_accessors() -> None:
    expr = cel.compile('now.getHours("Europe/Berlin") >= 9 && now.getDayOfWeek() < 6', DECLS)
    assert expr.native is False
    assert expr.fallback_reason is not None and "getHours" in expr.fallback_reason
    now = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)  # 10:30 in Berlin, a Tuesday
    assert expr.evaluate({"now": now}) is True
    assert expr.evaluate({"now": now.replace(hour=6)}) is False


def test_fallback_restores_the_recursion_limit() -> None:
    before = sys.getrecursionlimit()
    cel.compile("now.getMinutes() == 0", DECLS)
    assert sys.getrecursionlimit() == before


def test_generated_python_is_kept_for_debugging() -> None:
    expr = cel.compile('request.user.id == "u"', DECLS)
    assert expr.python_source is not None and "_evaluate" in expr.python_source
    assert "python_source" not in repr(expr)


def test_too_long_and_too_deep_are_rejected_at_load_time() -> None:
    long = " || ".join(f'request.user.id == "{i:06d}"' for i in range(400))
    assert compile_error(long).code == "PD306"
    deep = "(" * 60 + "1" + ")" * 60
    error = compile_error(deep)
    assert error.code == "PD306" and "nested too deeply" in error.message
    assert compile_error("[" * 60 + "]" * 60).code == "PD306"


def test_long_or_chains_do_not_nest() -> None:
    source = " || ".join(f'request.user.id == "u{i}"' for i in range(250))
    expr = cel.compile(source, DECLS)
    assert expr.evaluate({"request": {"user": {"id": "u249"}}}) is True
    assert expr.evaluate({"request": {"user": {"id": "nobody"}}}) is False


def test_cost_limit_rejects_nested_macros_over_request_lists() -> None:
    error = compile_error(
        "request.messages.exists(m, request.tags.exists(t, m.content.contains(t)))"
    )
    assert error.code == "PD306"
    assert "too expensive" in error.message
    assert error.hint is not None and "nest" in error.hint
    # a small literal list inside is fine
    cheap = cel.compile(
        'request.messages.exists(m, ["a", "b"].exists(w, m.content.contains(w)))', DECLS
    )
    assert cheap.cost < 100_000


def test_cost_grows_with_macros() -> None:
    plain = cel.compile("request.user.id == 'a'", DECLS)
    macro = cel.compile("request.tags.exists(t, t == 'a')", DECLS)
    assert macro.cost > 100 * plain.cost


def test_run_time_iteration_budget_bounds_nested_macros() -> None:
    expr = cel.compile("[1, 2].all(a, xs.exists(b, b < 0))", {"xs": "list<int>"})
    assert expr.evaluate({"xs": [1] * 1000}) is False
    with pytest.raises(cel.EvaluationError, match="cost limit"):
        cel.compile("xs.all(a, [1, 2].exists(b, b >= 0))", {"xs": "list<int>"}).evaluate(
            {"xs": [0] * 34_000}
        )


def test_unchecked_mode_defers_errors_to_run_time() -> None:
    expr = cel.compile("x || true", {}, check=False)
    assert expr.evaluate({}) is True
    with pytest.raises(cel.EvaluationError, match="undeclared reference to 'x'"):
        cel.compile("x", {}, check=False).evaluate({})
    with pytest.raises(cel.EvaluationError, match="unbound function"):
        cel.compile("f(1)", {}, check=False).evaluate({})
    assert cel.compile("1.0 == 1", {}, check=False).evaluate({}) is True


def test_compile_errors_are_picklable_and_print_cleanly() -> None:
    import pickle

    error = compile_error("request.tags > 3")
    again = pickle.loads(pickle.dumps(error))
    assert (again.code, again.offset, again.hint) == (error.code, error.offset, error.hint)
    assert isinstance(error, cel.CelError)
    assert isinstance(cel.EvaluationError("x"), cel.CelError)
    assert str(cel.EvaluationError("no such key: 'tier'")) == "no such key: 'tier'"


def test_non_string_source_is_a_compile_error() -> None:
    with pytest.raises(cel.CompileError):
        cel.compile(42, DECLS)  # type: ignore[arg-type]
