"""Inlining a compiled expression: the fast form of its generated function as source.

:func:`inline` turns an :class:`~policyd.cel.Expression` whose generated function is one
``return`` inside a ``try`` (what :mod:`policyd.cel.codegen` emits for an expression
without comprehensions) into a Python expression another generated function can embed
(:mod:`policyd.fused`): the activation's ``request`` and ``now`` read from locals ``r``
and ``now``, the function's constants and helpers renamed into the caller's namespace.
Anything else (the cel-python fallback, a metered comprehension) is not inlined.
"""

from __future__ import annotations

import ast
from typing import Any

from policyd.cel.expression import Expression

_BUILTINS = frozenset({"all", "any", "sum", "len", "list"})  # a CEL function's builtins


def inline(
    expr: Expression, prefix: str, ns: dict[str, Any]
) -> tuple[str, frozenset[str], bool] | None:
    """The fast form of ``expr``'s generated function as an expression over ``r``, ``now``
    and ``a``, its names, and whether an error must re-run the function; None when its
    code is not of the one shape inlined (a single ``return`` in a ``try``)."""
    code = expr.python_source
    if not expr.native or code is None:
        return None
    scope = expr.evaluate.__globals__
    tree = ast.parse(code)
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    body = functions["_evaluate"].body if "_evaluate" in functions else []
    if len(body) != 1 or not isinstance(body[0], ast.Try) or len(body[0].body) != 1:
        return None
    returned = body[0].body[0]
    if not isinstance(returned, ast.Return) or returned.value is None:
        return None
    renamer = _Renamer(scope, prefix, ns)
    try:
        fast = ast.unparse(renamer.visit(returned.value))
    except _NotInlined:
        return None
    return fast, scope.get("_names", frozenset()), "_slow" in functions


class _NotInlined(Exception):
    pass


class _Renamer(ast.NodeTransformer):
    """``_a['request']`` → ``r``, ``_a['now']`` → ``now``, ``_a`` → ``a``; the function's
    constants and helpers renamed into the fused namespace; anything else refused."""

    def __init__(self, scope: dict[str, Any], prefix: str, ns: dict[str, Any]) -> None:
        self.scope, self.prefix, self.ns = scope, prefix, ns

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.value.id == "_a":
            key = node.slice
            if isinstance(key, ast.Constant) and key.value in ("request", "now"):
                return ast.Name("r" if key.value == "request" else "now", ast.Load())
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "_a":
            return ast.Name("a", ast.Load())
        if node.id in self.scope and node.id.startswith("_"):
            name = self.prefix + node.id
            self.ns[name] = self.scope[node.id]
            return ast.Name(name, ast.Load())
        if node.id in _BUILTINS:
            return node
        raise _NotInlined(node.id)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if isinstance(node, ast.Lambda | ast.comprehension | ast.NamedExpr):
            raise _NotInlined(type(node).__name__)
        return super().generic_visit(node)
