"""Run-time cost bounds of CEL expressions: every macro is capped, also a single one (#11)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cel_conformance import same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cel_differential import _ACTIVATIONS, _bool
from test_cel_differential import DECLS as DIFF_DECLS

from policyd import cel

DECL = {"request": {"tags": "list<string>", "prompt": "string", "ts": "timestamp"}}
LIMIT = "evaluation cost limit exceeded"


def _run(source: str, tags: list[str], prompt: str = "") -> object:
    expr = cel.compile(source, DECL)
    return expr.evaluate({"request": {"tags": tags, "prompt": prompt, "ts": datetime.now(UTC)}})


@pytest.mark.parametrize(
    "source",
    [
        # one macro whose body scans the request: iterations x size
        "request.tags.exists(t, t in request.tags && t == 'zz')",
        "request.tags.exists(t, dyn(t) in dyn(request.tags) && t == 'zz')",
        "request.tags.all(t, size(request.tags + [t]) > 0 && t != 'zz')",
        "request.tags.exists(t, request.prompt.contains(t + 'zz'))",
        "request.tags.exists(t, request.prompt.lowerAscii() == t)",
        # the same on cel-python's slow path (a timestamp accessor forces it)
        "request.tags.exists(t, t in request.tags && request.ts.getHours() == 99)",
    ],
)
def test_single_macro_scanning_the_request_hits_the_cost_limit(source: str) -> None:
    tags = [f"tag-{i}" for i in range(40_000)]
    with pytest.raises(cel.EvaluationError, match=LIMIT):
        _run(source, tags, prompt="x" * 200_000)


def test_single_macro_iterations_are_capped() -> None:
    tags = ["a"] * 200_001  # more than MAX_ITERATIONS, in one macro
    with pytest.raises(cel.EvaluationError, match=LIMIT):
        _run("request.tags.all(t, t == 'a')", tags)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("request.tags.exists(t, t in request.tags && t == 'tag-7')", True),
        ("request.tags.exists(t, t in request.tags && t == 'zz')", False),
        ("request.tags.all(t, request.prompt.contains(t))", False),
        ("request.tags.filter(t, t in request.tags).size() == 300", True),
        ("request.tags.exists(t, t in request.tags && request.ts.getHours() == 99)", False),
    ],
)
def test_ordinary_sizes_still_evaluate(source: str, expected: bool) -> None:
    tags = [f"tag-{i}" for i in range(300)]
    assert _run(source, tags, prompt="tag-1 tag-2") is expected


def test_the_budget_is_per_evaluation() -> None:
    expr = cel.compile("request.tags.exists(t, t in request.tags && t == 'zz')", DECL)
    tags = [f"tag-{i}" for i in range(300)]
    for _ in range(50):  # 50 x 300 iterations: far more than one budget in total
        assert expr.evaluate({"request": {"tags": tags, "prompt": "", "ts": None}}) is False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.deferred(lambda: _bool(3)), activation=_ACTIVATIONS)
def test_metering_never_changes_an_answer(source: str, activation: dict[str, Any]) -> None:
    """With and without the budget, small inputs give the same value or both an error."""
    from policyd.cel import analysis, codegen
    from policyd.cel.checker import Checker
    from policyd.cel.expression import _declarations
    from policyd.cel.syntax import parse

    tree = Checker(source, _declarations(DIFF_DECLS)).visit(parse(source))
    answers = []
    for budget in (False, True):
        python, consts = codegen.generate(tree, analysis.uses_absorbing(tree), budget)
        namespace = {**codegen.namespace(), **consts}
        exec(compile(python, "<test>", "exec"), namespace)
        try:
            answers.append(namespace["_evaluate"](activation))
        except cel.EvaluationError:
            answers.append("error")
    assert same(answers[0], answers[1]), (source, answers)
