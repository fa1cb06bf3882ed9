"""Inlining a compiled expression: the fast form of its generated function as source.

:func:`inline` turns an :class:`~policyd.cel.Expression` whose generated function is one
``return`` inside a ``try`` (what :mod:`policyd.cel.codegen` emits for an expression
without comprehensions) into a Python expression another generated function can embed
(:mod:`policyd.fused`): the activation's ``request`` and ``now`` read from locals ``r``
and ``now``, the function's constants and helpers renamed into the caller's namespace.
Anything else (the cel-python fallback, a metered comprehension) is not inlined. The
absorbing form CEL's ``&&``/``||`` need after an error (``_slow``) is written out as
statements too when it is an and/or tree over plain operands (:func:`absorbing_lines`).
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, replace
from typing import Any

from policyd.cel.expression import Expression

_BUILTINS = frozenset({"all", "any", "sum", "len", "list"})  # a CEL function's builtins


@dataclass(frozen=True)
class Inlined:
    """An expression ready to embed.

    ``fast``: its fast form, an expression over ``r``, ``now`` (and ``a``, the activation,
    when ``activation``), raising a Python exception on error; ``names``: what
    :func:`~policyd.cel.runtime.to_eval_error` needs to word one. ``absorbs``: False when
    an error is the answer, True when the function's ``_slow`` form decides after an
    error (CEL's absorbing ``&&``/``||``), and ``absorbing``: that form as an and/or tree
    over plain operands, when it is one, for :func:`absorbing_lines`.
    """

    prefix: str
    fast: str
    names: frozenset[str]
    absorbs: bool
    absorbing: tuple[str, tuple[Any, ...]] | None
    activation: bool


def inline(expr: Expression, ns: dict[str, Any]) -> Inlined | None:
    """``expr``'s generated function as source to embed, its constants and helpers added to
    ``ns`` under ``Inlined.prefix`` (its names and ``<prefix>_names`` too); None when its
    code is not of the shape inlined (one ``return`` inside a ``try``)."""
    code = expr.python_source
    if not expr.native or code is None:
        return None
    scope = expr.evaluate.__globals__
    known = _MADE.get(code)
    if known is None:
        if len(_MADE) >= 4096:
            _MADE.clear()  # prefixes are never reused (_SERIAL), so entries may go
        known = _MADE[code] = _inline(code, scope, f"_x{next(_SERIAL)}")
    if known is None:
        return None
    inlined, used = known
    for name in used:  # this expression's own constants, under the names the code uses
        ns[inlined.prefix + name] = scope[name]
    names = scope.get("_names", frozenset())
    ns[inlined.prefix + "_names"] = names
    return replace(inlined, names=names)


#: generated code -> what inlining it gave and the names it renamed, under a prefix of its
#: own: the same code (the same expression text) has the same constants, so compiling a
#: policy again, changed or not (a reload, the policy test runner), repeats the work only
#: for new expressions, and the generated code around them keeps its text.
_MADE: dict[str, tuple[Inlined, tuple[str, ...]] | None] = {}
_SERIAL = itertools.count()


def _inline(
    code: str, scope: dict[str, Any], prefix: str
) -> tuple[Inlined, tuple[str, ...]] | None:
    ns: dict[str, Any] = {}
    tree = ast.parse(code)
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    fast = _returned(functions.get("_evaluate"))
    if fast is None:
        return None
    renamer = _Renamer(scope, prefix, ns)
    try:
        fast_code = ast.unparse(renamer.visit(fast))
    except _NotInlined:
        return None
    names = scope.get("_names", frozenset())
    used = tuple(name[len(prefix) :] for name in ns)
    if "_slow" not in functions:
        return Inlined(prefix, fast_code, names, False, None, renamer.activation), used
    slow = _returned(functions["_slow"])
    try:
        tree_form = _and_or(slow, renamer) if slow is not None else None
    except _NotInlined:
        tree_form = None
    if tree_form is not None and (_leaves(tree_form) > MAX_OPERANDS or renamer.activation):
        tree_form = None  # (the statements read only r and now)
    used = tuple(name[len(prefix) :] for name in ns)
    return Inlined(prefix, fast_code, names, True, tree_form, renamer.activation), used


#: Most operands written out as statements (each nests one level deeper).
MAX_OPERANDS = 12


def _returned(function: ast.FunctionDef | None) -> ast.expr | None:
    """X of a function whose body is ``try: return X`` (and its handlers)."""
    body = function.body if function is not None else []
    if len(body) != 1 or not isinstance(body[0], ast.Try) or len(body[0].body) != 1:
        return None
    returned = body[0].body[0]
    if not isinstance(returned, ast.Return) or returned.value is None:
        return None
    return returned.value


def _and_or(node: ast.expr, renamer: _Renamer) -> tuple[str, tuple[Any, ...]]:
    """``("&&" | "||", operands)`` of an ``_and_``/``_or_`` call whose operands are lambdas,
    each operand such a tree again or ``("", code)``; _NotInlined for any other shape."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("_and_", "_or_")
        and not node.keywords
        and all(isinstance(a, ast.Lambda) and not a.args.args for a in node.args)
    ):
        op = "&&" if node.func.id == "_and_" else "||"
        return op, tuple(_operand(a.body, renamer) for a in node.args)  # type: ignore[attr-defined]
    raise _NotInlined("not an and/or")


def _operand(node: ast.expr, renamer: _Renamer) -> tuple[str, Any]:
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("_and_", "_or_"):
        return _and_or(node, renamer)
    return "", ast.unparse(renamer.visit(node))


def _leaves(form: tuple[str, Any]) -> int:
    op, operands = form
    return 1 if op == "" else sum(_leaves(o) for o in operands)


def absorbing_lines(form: tuple[str, Any], out: str) -> list[str]:
    """Statements evaluating an and/or tree as ``runtime._absorbing`` does: each operand
    in order, a decisive value (false for ``&&``, true for ``||``) winning at once over
    any error, else the first error (``<out>_e``), else the other bool (``<out>_v``).
    They use ``_E`` (runtime.ERRORS) and ``_no_overload`` from the caller's namespace."""
    lines: list[str] = []
    _emit(form, out, lines, 0, [0])
    return lines


def _emit(form: tuple[str, Any], out: str, lines: list[str], depth: int, seq: list[int]) -> None:
    pad = "    " * depth
    op, operands = form
    if op == "":  # a plain operand: its value, or the exception it raised
        lines += [
            f"{pad}try:",
            f"{pad}    {out}_v = {operands}",
            f"{pad}    {out}_e = None",
            f"{pad}except _E as _raised:",
            f"{pad}    _raised.__traceback__ = _raised.__context__ = _raised.__cause__ = None",
            f"{pad}    {out}_v = None",
            f"{pad}    {out}_e = _raised",
        ]
        return
    decisive = op == "||"
    lines.append(f"{pad}{out}_e = None")
    for operand in operands:
        seq[0] += 1
        sub = f"{out}_{seq[0]}"
        _emit(operand, sub, lines, depth, seq)
        lines += [
            f"{pad}if {sub}_e is None and {sub}_v is {decisive}:",
            f"{pad}    {out}_v = {decisive}",
            f"{pad}    {out}_e = None",
            f"{pad}else:",
            f"{pad}    if {sub}_e is not None:",
            f"{pad}        if {out}_e is None:",
            f"{pad}            {out}_e = {sub}_e",
            f"{pad}    elif {sub}_v is not {not decisive} and {out}_e is None:",
            f"{pad}        {out}_e = _no_overload({op!r}, {sub}_v)",
        ]
        depth += 1
        pad = "    " * depth
    lines.append(f"{pad}{out}_v = {not decisive}")


class _NotInlined(Exception):
    """A condition's code this module cannot inline; caught here, never escapes."""


class _Renamer(ast.NodeTransformer):
    """``_a['request']`` → ``r``, ``_a['now']`` → ``now``, ``_a`` → ``a``; the function's
    constants and helpers renamed into the fused namespace; anything else refused."""

    def __init__(self, scope: dict[str, Any], prefix: str, ns: dict[str, Any]) -> None:
        self.scope, self.prefix, self.ns = scope, prefix, ns
        self.activation = False  # reads the activation itself, not only request or now

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.value.id == "_a":
            key = node.slice
            if isinstance(key, ast.Constant) and key.value in ("request", "now"):
                return ast.Name("r" if key.value == "request" else "now", ast.Load())
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "_a":
            self.activation = True
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
