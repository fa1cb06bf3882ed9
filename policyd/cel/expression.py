"""compile(): parse, type-check, bound the cost, and generate Python for one expression.

The result is an immutable :class:`Expression` whose ``evaluate`` attribute *is* the
generated function, so a call costs one Python call and nothing more. Expressions
the native compiler does not cover run on cel-python's evaluator instead
(``native`` is False and ``fallback_reason`` says why).
"""

from __future__ import annotations

import builtins
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policyd.cel import analysis, codegen, syntax
from policyd.cel.checker import Checker
from policyd.cel.errors import CompileError
from policyd.cel.types import CelType, from_declaration


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression. ``evaluate(activation)`` runs it over plain values."""

    source: str
    result_type: str
    paths: frozenset[tuple[str, ...]]
    native: bool
    fallback_reason: str | None
    cost: int
    evaluate: Callable[[Mapping[str, Any]], Any] = field(repr=False, compare=False)
    python_source: str | None = field(default=None, repr=False, compare=False)


def _declarations(
    declarations: Mapping[str, Any] | None,
) -> dict[str, CelType] | None:
    if declarations is None:
        return None
    return {str(name): from_declaration(decl, str(name)) for name, decl in declarations.items()}


def compile(
    source: str,
    declarations: Mapping[str, Any] | None = None,
    *,
    check: bool = True,
) -> Expression:
    """Compile CEL ``source`` against ``declarations`` (name -> type name or nested record).

    With ``declarations=None`` every identifier is ``dyn``. ``check=False`` turns
    unknown names and type mismatches into run-time errors (the conformance suite's
    unchecked cases); policies always use the default. Raises :class:`CompileError`.
    """
    if not isinstance(source, str):
        raise CompileError(
            f"a CEL expression must be a string, not {type(source).__name__}",
            code="PD301",
            source=str(source),
            offset=0,
        )
    tree = syntax.parse(source)
    checker = Checker(source, _declarations(declarations), strict=check)
    try:
        tree = checker.visit(tree)
        cost = analysis.check_cost(source, tree)
    except RecursionError:  # pragma: no cover - the depth limit is far below Python's
        raise CompileError(
            "expression is nested too deeply",
            code="PD306",
            source=source,
            offset=0,
            hint="split it into simpler conditions",
        ) from None
    paths = analysis.collect_paths(tree)
    result = (tree.type or CelType("dyn")).cel_name
    reason = "; ".join(checker.fallback_reasons) or None
    if reason is None:
        try:
            return _native(source, tree, result, paths, cost)
        except (codegen.Unsupported, SyntaxError, RecursionError, MemoryError) as exc:
            reason = f"native compilation failed ({type(exc).__name__}: {exc})"
    return _fallback(source, result, paths, cost, reason)


def _native(
    source: str,
    tree: syntax.Node,
    result: str,
    paths: frozenset[tuple[str, ...]],
    cost: int,
) -> Expression:
    budget = analysis.comprehensions(tree) > 0  # every macro is bounded (#11)
    python, consts = codegen.generate(tree, analysis.uses_absorbing(tree), budget)
    namespace = codegen.namespace()
    namespace.update(consts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # e.g. `'' is None` from dyn('') == null
        code = builtins.compile(python, f"<cel {source[:60]!r}>", "exec")
    exec(code, namespace)
    return Expression(
        source=source,
        result_type=result,
        paths=paths,
        native=True,
        fallback_reason=None,
        cost=cost,
        evaluate=namespace["_evaluate"],
        python_source=python,
    )


def _fallback(
    source: str,
    result: str,
    paths: frozenset[tuple[str, ...]],
    cost: int,
    reason: str,
) -> Expression:
    from policyd.cel.fallback import CelpyProgram

    program = CelpyProgram(source, frozenset(p[0] for p in paths))
    return Expression(
        source=source,
        result_type=result,
        paths=paths,
        native=False,
        fallback_reason=reason,
        cost=cost,
        evaluate=program.evaluate,
    )
