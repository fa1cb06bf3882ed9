"""Code generation: a checked AST becomes the source of one Python function.

Where the checker proved both operand types the generated code is plain Python
(``a == "x"``, ``"code" in tags``, ``len(s)``, ``a["tier"]``); elsewhere it calls the
CEL-correct helpers of :mod:`policyd.cel.runtime`. Errors are Python exceptions.

Two variants come from one generator. The *fast* variant uses Python's ``and``,
``or``, ``all()`` and ``any()``: when nothing raises they give exactly CEL's answer.
When something raises, the function re-runs the *absorbing* variant, in which
``&&``, ``||``, ``all`` and ``exists`` evaluate every operand and let a ``false``
(or ``true``) win over an error, as the CEL specification says. CEL expressions
have no side effects, so running twice is safe; the common, error-free case pays
nothing for it.
"""

from __future__ import annotations

import math
from typing import Any

from policyd.cel import analysis, runtime, stdlib, timeutil
from policyd.cel.errors import CostLimitExceeded, EvaluationError
from policyd.cel.syntax import (
    Call,
    Comprehension,
    Ident,
    ListLit,
    Literal,
    MapLit,
    Node,
    Select,
    children,
)
from policyd.cel.types import TYPE_VALUES, CelType

# Iterations of all/exists/map/filter allowed in one evaluation (see runtime.take).
MAX_ITERATIONS = 100_000

HELPERS = [
    "as_bool", "not_", "and_", "or_", "all_", "exists_", "iter_range", "take", "eq", "ne",
    "in_list", "in_map", "in_", "lt", "le", "gt", "ge", "check_int", "int_div", "int_mod",
    "float_div", "add", "sub", "mul", "div", "mod", "neg", "list_index", "map_index", "index",
    "select", "has", "make_map", "size", "contains", "starts_with", "ends_with", "matches",
    "lower_ascii", "upper_ascii", "to_int", "to_double", "to_string", "to_bool", "to_bytes",
    "to_timestamp", "to_duration", "type_of", "raise_", "to_eval_error", "charge",
    "take_each",
]  # fmt: skip


class Unsupported(Exception):
    """The native compiler does not cover this construct (the expression falls back)."""


def namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {
        f"_{name}": getattr(runtime, name, None) or getattr(stdlib, name) for name in HELPERS
    }
    ns["_E"] = runtime.ERRORS
    ns["_Cost"] = CostLimitExceeded
    ns["_add_timestamp"] = timeutil.add_timestamp
    ns["_sub_timestamps"] = timeutil.sub_timestamps
    ns["_check_duration"] = timeutil.check_duration
    ns["__builtins__"] = {"all": all, "any": any, "sum": sum, "len": len, "list": list}
    return ns


_CMP_SYMBOL = {"_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">="}
_CMP_HELPER = {"_<_": "_lt", "_<=_": "_le", "_>_": "_gt", "_>=_": "_ge"}
_PLAIN_CMP = frozenset(
    {"cmp_int", "cmp_double", "cmp_bool", "cmp_string", "cmp_bytes", "cmp_timestamp"}
    | {"cmp_duration"}
)
_BINARY = {
    "add_int": "_check_int({0} + {1})",
    "add_double": "({0} + {1})",
    "add_string": "({0} + {1})",
    "add_bytes": "({0} + {1})",
    "add_list": "[*{0}, *{1}]",
    "add_timestamp_duration": "_add_timestamp({0}, {1})",
    "add_duration_timestamp": "_add_timestamp({1}, {0})",
    "add_duration": "_check_duration({0} + {1})",
    "sub_int": "_check_int({0} - {1})",
    "sub_double": "({0} - {1})",
    "sub_timestamp": "_sub_timestamps({0}, {1})",
    "sub_timestamp_duration": "_add_timestamp({0}, -{1})",
    "sub_duration": "_check_duration({0} - {1})",
    "mul_int": "_check_int({0} * {1})",
    "mul_double": "({0} * {1})",
    "div_int": "_int_div({0}, {1})",
    "div_double": "_float_div({0}, {1})",
    "mod_int": "_int_mod({0}, {1})",
}
_GENERIC = {"_+_": "_add", "_-_": "_sub", "_*_": "_mul", "_/_": "_div", "_%_": "_mod"}
_CONVERSIONS = {
    "int": "_to_int",
    "double": "_to_double",
    "string": "_to_string",
    "bool": "_to_bool",
    "bytes": "_to_bytes",
    "timestamp": "_to_timestamp",
    "duration": "_to_duration",
}
_IDENTITY = frozenset(
    {"int_int", "double_double", "string_string", "bool_bool", "bytes_bytes"}
    | {"timestamp_timestamp", "duration_duration"}
)
_STRING_METHODS = {
    "contains": ("({1} in {0})", "_contains"),
    "startsWith": ("{0}.startswith({1})", "_starts_with"),
    "endsWith": ("{0}.endswith({1})", "_ends_with"),
}
_BOOL_FUNCTIONS = frozenset(
    {"_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_", "@in", "!_", "_&&_", "_||_"}
    | {"contains", "startsWith", "endsWith", "matches", "bool"}
)
_PLAIN_EQ_KINDS = frozenset(["string", "bytes", "timestamp", "duration"])
_SCALAR_KINDS = frozenset(["string", "bytes", "int", "double", "bool", "timestamp", "duration"])


def _kind(node: Node) -> str:
    return node.type.kind if node.type is not None else "dyn"


def is_bool_producer(node: Node) -> bool:
    """Does the generated code for ``node`` always yield a real ``bool`` when it returns?"""
    if isinstance(node, Literal):
        return node.kind == "bool"
    if isinstance(node, Select):
        return node.test_only
    if isinstance(node, Comprehension):
        return node.macro in ("all", "exists", "exists_one")
    if isinstance(node, Call):
        if node.error is not None:
            return True  # raises
        if node.function == "_?_:_":
            return is_bool_producer(node.args[1]) and is_bool_producer(node.args[2])
        return node.function in _BOOL_FUNCTIONS
    return False


def _reads(node: Node, var: str) -> bool:
    """Does ``node`` read the macro variable ``var`` (or hold a macro)?"""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Ident) and current.ref == "local" and current.name == var:
            return True
        if isinstance(current, Comprehension):
            return True  # conservative: charged per iteration
        stack.extend(children(current))
    return False


def _reads_outside(node: Node, var: str) -> bool:
    """Does ``node`` read anything but the macro variable ``var`` and literals (the
    request, an outer macro's variable, a nested macro)?"""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Ident):
            if current.ref == "var" or (current.ref == "local" and current.name != var):
                return True
        elif isinstance(current, Comprehension):
            return True  # conservative
        stack.extend(children(current))
    return False


class CodeGen:
    """Emits Python expression text for AST nodes; constants go into ``consts``."""

    def __init__(self, absorbing: bool, consts: dict[str, Any], budget: bool) -> None:
        self.absorbing = absorbing
        self.consts = consts
        self.budget = budget
        self.loop_vars: list[str] = []  # the macros' variables, innermost last
        self.invariant: list[list[str]] = []  # per macro: loop-invariant metered operands

    def metered(self, code: str, node: Node) -> str:
        """``code`` charged to the budget when it is the operand of a linear operation
        that a macro body repeats (see runtime.charge). An operand built from the
        innermost macro's variable and literals is not charged: each element is scanned
        once per iteration, which is linear in the input overall. An operand that does
        not read that variable (``request.tags`` in ``t in request.tags``) is the same
        in every iteration: it is weighed once, where the macro starts (runtime.take_each),
        instead of in every iteration."""
        if not (self.budget and self.loop_vars):
            return code
        var = self.loop_vars[-1]
        if not _reads_outside(node, var):
            return code
        if not _reads(node, var):
            self.invariant[-1].append(code)
            return code
        return f"_charge(_n, {code})"

    def const(self, value: Any) -> str:
        for name, existing in self.consts.items():
            if existing is value:
                return name
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def cond(self, node: Node) -> str:
        code = self.expr(node)
        return code if is_bool_producer(node) else f"_as_bool({code})"

    def expr(self, node: Node) -> str:
        if node.error is not None:
            return f"_raise_({node.error!r})"
        method = getattr(self, "gen_" + type(node).__name__)
        return str(method(node))

    # ------------------------------------------------------------------ leaves

    def gen_Literal(self, node: Literal) -> str:
        value = node.value
        if node.kind == "double" and (math.isinf(value) or math.isnan(value)):
            return self.const(value)
        if node.kind == "uint":  # pragma: no cover - rejected by the checker
            raise Unsupported("uint")
        return repr(value)

    def gen_Ident(self, node: Ident) -> str:
        if node.ref == "local":
            return f"v_{node.name}"
        if node.ref == "type":
            return self.const(TYPE_VALUES[node.name])
        return f"_a[{node.name!r}]"

    def gen_Select(self, node: Select) -> str:
        operand = self.expr(node.operand)
        static_map = _kind(node.operand) in ("record", "map")
        if node.test_only:
            return (
                f"({node.field!r} in {operand})"
                if static_map
                else f"_has({operand}, {node.field!r})"
            )
        return f"{operand}[{node.field!r}]" if static_map else f"_select({operand}, {node.field!r})"

    def gen_ListLit(self, node: ListLit) -> str:
        return "[" + ", ".join(self.expr(item) for item in node.items) + "]"

    def gen_MapLit(self, node: MapLit) -> str:
        keys = [k for k, _ in node.entries]
        if all(isinstance(k, Literal) and k.kind in ("string", "int", "bool") for k in keys):
            literal_keys = [(k.kind if k.kind == "string" else "num", k.value) for k in keys]  # type: ignore[attr-defined]
            if len(set(literal_keys)) == len(literal_keys):
                body = ", ".join(f"{self.expr(k)}: {self.expr(v)}" for k, v in node.entries)
                return "{" + body + "}"
        pairs = ", ".join(f"({self.expr(k)}, {self.expr(v)})" for k, v in node.entries)
        return f"_make_map({pairs})"

    # ------------------------------------------------------------------ macros

    def gen_Comprehension(self, node: Comprehension) -> str:
        rng = self.expr(node.range)
        if _kind(node.range) not in ("list", "map", "record"):
            rng = f"_iter_range({rng})"
        if not self.budget:
            return self.macro(node, rng)
        placeholder = f"\x00{len(self.loop_vars)}\x00"
        self.loop_vars.append(node.var)
        self.invariant.append([])
        try:
            code = self.macro(node, placeholder)
        finally:
            self.loop_vars.pop()
            operands = self.invariant.pop()
        if operands:
            weighed = "lambda: (" + "".join(f"{o}, " for o in dict.fromkeys(operands)) + ")"
            rng = f"_take_each(_n, {rng}, {weighed})"
        else:
            rng = f"_take(_n, {rng})"
        return code.replace(placeholder, rng)

    def macro(self, node: Comprehension, rng: str) -> str:
        var = f"v_{node.var}"
        macro = node.macro
        if macro in ("all", "exists"):
            pred = self.cond(node.args[0])
            if self.absorbing:
                helper = "_all_" if macro == "all" else "_exists_"
                return f"{helper}({rng}, lambda {var}: {pred})"
            builtin = "all" if macro == "all" else "any"
            return f"{builtin}({pred} for {var} in {rng})"
        if macro == "exists_one":
            pred = self.cond(node.args[0])
            return f"(sum(1 for {var} in {rng} if {pred}) == 1)"
        if macro == "filter":
            pred = self.cond(node.args[0])
            return f"[{var} for {var} in {rng} if {pred}]"
        transform = self.expr(node.args[-1])
        if len(node.args) == 2:
            pred = self.cond(node.args[0])
            return f"[{transform} for {var} in {rng} if {pred}]"
        return f"[{transform} for {var} in {rng}]"

    # ------------------------------------------------------------------ calls

    def gen_Call(self, node: Call) -> str:
        name = node.function
        if name in ("_&&_", "_||_"):
            operands = self.flatten(node, name)
            conds = [self.cond(op) for op in operands]
            if self.absorbing:
                helper = "_and_" if name == "_&&_" else "_or_"
                return f"{helper}(" + ", ".join(f"lambda: {c}" for c in conds) + ")"
            joiner = " and " if name == "_&&_" else " or "
            return "(" + joiner.join(conds) + ")"
        if name == "!_":
            return f"(not {self.cond(node.args[0])})"
        if name == "_?_:_":
            cond, yes, no = node.args
            return f"({self.expr(yes)} if {self.cond(cond)} else {self.expr(no)})"
        if name in ("_==_", "_!=_"):
            return self.equality(node, negate=name == "_!=_")
        operands = ([node.target] if node.target is not None else []) + node.args
        args = [self.expr(a) for a in operands]
        overload = node.overload
        if name in _CMP_SYMBOL:
            left = self.metered(args[0], operands[0])
            if overload in _PLAIN_CMP:
                return f"({left} {_CMP_SYMBOL[name]} {args[1]})"
            return f"{_CMP_HELPER[name]}({left}, {args[1]})"
        if name in _GENERIC or name == "-_":
            args = [self.metered(a, n) for a, n in zip(args, operands, strict=True)]
            if overload in _BINARY:
                return _BINARY[overload].format(*args)
            if overload == "neg_int":
                return f"_check_int(-{args[0]})"
            if overload == "neg_double":
                return f"(-{args[0]})"
            return f"{_GENERIC.get(name, '_neg')}({', '.join(args)})"
        if name == "@in":
            return self.membership(node, args)
        if name == "_[_]":
            return self.indexing(node, args)
        if name == "size":
            return f"len({args[0]})" if overload else f"_size({args[0]})"
        if name in _STRING_METHODS or name in ("matches", "lowerAscii", "upperAscii"):
            args = [self.metered(a, n) for a, n in zip(args, operands, strict=True)]
        if name in _STRING_METHODS:
            plain, helper = _STRING_METHODS[name]
            return plain.format(*args) if overload else f"{helper}({args[0]}, {args[1]})"
        if name == "matches":
            if (
                node.pattern is not None
                and _kind(node.args[0] if node.target is None else node.target) == "string"
            ):
                return f"{self.const(node.pattern)}({args[0]})"
            return f"_matches({args[0]}, {args[1]})"
        if name in ("lowerAscii", "upperAscii"):
            return f"_{'lower' if name == 'lowerAscii' else 'upper'}_ascii({args[0]})"
        if name in _CONVERSIONS:
            if overload in _IDENTITY:
                return args[0]
            folded = self.fold(node)
            if folded is not None:
                return folded
            return f"{_CONVERSIONS[name]}({self.metered(args[0], operands[0])})"
        if name == "dyn":
            return args[0]
        if name == "type":
            return f"_type_of({args[0]})"
        raise Unsupported(f"{name}()")

    @staticmethod
    def flatten(node: Node, name: str) -> list[Node]:
        if isinstance(node, Call) and node.function == name and node.error is None:
            return [op for arg in node.args for op in CodeGen.flatten(arg, name)]
        return [node]

    def fold(self, node: Call) -> str | None:
        """timestamp('...') and duration('...') of a literal are parsed once, here."""
        arg = node.args[0] if node.args else None
        if node.function in ("timestamp", "duration") and isinstance(arg, Literal):
            helper = stdlib.to_timestamp if node.function == "timestamp" else stdlib.to_duration
            try:
                return self.const(helper(arg.value))
            except EvaluationError:
                return None  # an invalid literal is a run-time error, as in CEL
        return None

    def equality(self, node: Call, negate: bool) -> str:
        left, right = node.args
        lk, rk = _kind(left), _kind(right)
        a, b = self.expr(left), self.expr(right)
        scalar = ("int", "double", "bool", "null_type", "timestamp", "duration")
        if lk not in scalar and not isinstance(left, Literal) and not isinstance(right, Literal):
            a = self.metered(a, left)  # a literal operand bounds the comparison by its size
        if "null_type" in (lk, rk):
            other_node, other = (left, a) if rk == "null_type" else (right, b)
            if isinstance(other_node, Literal):  # null == 'x' is decided here
                return repr((other_node.value is None) != negate)
            return f"({other} is {'not ' if negate else ''}None)"
        if (lk == rk and lk in _SCALAR_KINDS) or lk in _PLAIN_EQ_KINDS or rk in _PLAIN_EQ_KINDS:
            return f"({a} {'!=' if negate else '=='} {b})"
        return f"{'_ne' if negate else '_eq'}({a}, {b})"

    def membership(self, node: Call, args: list[str]) -> str:
        item, container = node.args
        ik = _kind(item)
        ct = container.type or CelType("dyn")
        if node.overload == "in_list":
            if (
                ik in ("string", "int", "bytes", "timestamp", "duration")
                and ct.params[0].kind == ik
            ):
                if isinstance(container, ListLit) and all(
                    isinstance(i, Literal) and i.kind == ik for i in container.items
                ):  # a constant list: test membership in a set built once, here
                    values = frozenset(i.value for i in container.items if isinstance(i, Literal))
                    return f"({args[0]} in {self.const(values)})"
                return f"({args[0]} in {self.metered(args[1], container)})"
            return f"_in_list({args[0]}, {self.metered(args[1], container)})"
        if node.overload == "in_map":
            key_kind = "string" if ct.kind == "record" else ct.params[0].kind
            if ik == "string" and key_kind == "string":
                return f"({args[0]} in {args[1]})"
            return f"_in_map({args[0]}, {args[1]})"
        return f"_in_({args[0]}, {self.metered(args[1], container)})"

    def indexing(self, node: Call, args: list[str]) -> str:
        container, key = node.args
        ct = container.type or CelType("dyn")
        if node.overload == "index_list":
            return f"_list_index({args[0]}, {args[1]})"
        if node.overload == "index_map":
            key_kind = "string" if ct.kind == "record" else ct.params[0].kind
            if _kind(key) == "string" and key_kind == "string":
                return f"{args[0]}[{args[1]}]"
            return f"_map_index({args[0]}, {args[1]})"
        return f"_index({args[0]}, {args[1]})"


def generate(root: Node, absorbing_needed: bool, budget: bool) -> tuple[str, dict[str, Any]]:
    """Python source defining ``_evaluate(_a)``, and the constants it refers to."""
    consts: dict[str, Any] = {"_names": analysis.text_names(root)}
    fast = CodeGen(absorbing=False, consts=consts, budget=budget).expr(root)
    setup = f"    _n = [{MAX_ITERATIONS}]\n" if budget else ""
    if not absorbing_needed:
        source = (
            f"def _evaluate(_a):\n{setup}"
            f"    try:\n        return {fast}\n"
            f"    except _E as _e:\n        raise _to_eval_error(_e, _names) from None\n"
        )
        return source, consts
    slow = CodeGen(absorbing=True, consts=consts, budget=budget).expr(root)
    source = (
        f"def _slow(_a):\n{setup}"
        f"    try:\n        return {slow}\n"
        f"    except _E as _e:\n        raise _to_eval_error(_e, _names) from None\n\n"
        f"def _evaluate(_a):\n{setup}"
        f"    try:\n        return {fast}\n"
        f"    except _Cost:\n        raise\n"
        f"    except _E:\n        return _slow(_a)\n"
    )
    return source, consts
