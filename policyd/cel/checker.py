"""Static type checking of a parsed expression against declarations.

The checker walks the AST once, gives every node a :class:`~policyd.cel.types.CelType`
(``dyn`` where it cannot know), resolves each operator and function to an
overload, and reports unknown names (PD302), type mismatches (PD303) and unknown
functions (PD304) with the position of the offending token and a did-you-mean
hint. cel-python has no checker; ``1 + "a"`` is caught here, at load time.

In *unchecked* mode (used for conformance cases that disable checking) the same
problems become run-time errors of the node instead of compile errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from policyd.cel import stdlib
from policyd.cel.errors import SYNTAX, TYPE_MISMATCH, UNKNOWN_FUNCTION, UNKNOWN_NAME, CompileError
from policyd.cel.overloads import (
    FALLBACK_FUNCTIONS,
    OPERATOR_SYMBOLS,
    OVERLOADS,
    join,
    substitute,
    unify,
)
from policyd.cel.syntax import Call, Comprehension, Ident, ListLit, Literal, MapLit, Node, Select
from policyd.cel.types import (
    BOOL,
    BYTES,
    DOUBLE,
    DYN,
    INT,
    NULL,
    STRING,
    TYPE,
    TYPE_DENOTATIONS,
    CelType,
    list_of,
    map_of,
)
from policyd.words import close_match, listing

_LITERAL_TYPES = {
    "int": INT,
    "double": DOUBLE,
    "string": STRING,
    "bytes": BYTES,
    "bool": BOOL,
    "null": NULL,
}
_MAP_KEY_KINDS = ("int", "bool", "string", "dyn")


# Names people reach for from other languages, and the CEL function that does it.
_ALIASES = {
    "len": "size",
    "length": "size",
    "count": "size",
    "lower": "lowerAscii",
    "upper": "upperAscii",
    "toLowerCase": "lowerAscii",
    "toUpperCase": "upperAscii",
    "startswith": "startsWith",
    "endswith": "endsWith",
    "includes": "contains",
    "match": "matches",
    "regex": "matches",
    "str": "string",
    "float": "double",
    "any": "exists",
    "some": "exists",
    "every": "all",
}


def _suggest(name: str, options: Iterable[str]) -> str | None:
    if name in _ALIASES:
        return f"use {_ALIASES[name]}() instead"
    close = close_match(name, options)
    return f"did you mean '{close}'?" if close is not None else None


def _describe(args: list[CelType]) -> str:
    return "(" + ", ".join(str(a) for a in args) + ")"


class Checker:
    """Type-checks one expression; ``visit`` returns the (possibly rewritten) node."""

    def __init__(
        self, source: str, declarations: Mapping[str, CelType] | None, strict: bool = True
    ) -> None:
        self.source = source
        self.decls = declarations
        self.strict = strict
        self.scopes: list[dict[str, CelType]] = []
        self.fallback_reasons: list[str] = []
        self.dotted = bool(declarations) and any("." in k for k in declarations or ())

    # ------------------------------------------------------------------ errors

    def fail(
        self, node: Node, message: str, code: str, hint: str | None = None, pos: int | None = None
    ) -> CelType:
        if self.strict:
            raise CompileError(
                message,
                code=code,
                source=self.source,
                offset=node.pos if pos is None else pos,
                hint=hint,
            )
        return DYN  # unchecked: the run-time helpers report the mismatch

    # ------------------------------------------------------------------ dispatch

    def visit(self, node: Node) -> Node:
        if isinstance(node, Select) and not node.test_only:
            resolved = self.resolve_qualified(node)
            if resolved is not None:
                node = resolved
        method = getattr(self, "visit_" + type(node).__name__)
        node.type = method(node)
        return node

    def lookup_local(self, name: str) -> CelType | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def is_declared(self, name: str) -> bool:
        return self.decls is not None and name in self.decls

    def visit_Literal(self, node: Literal) -> CelType:
        if node.kind == "uint":
            raise CompileError(
                "unsigned integers (uint) are not supported",
                code=TYPE_MISMATCH,
                source=self.source,
                offset=node.pos,
                hint="use an int literal without the 'u' suffix",
            )
        return _LITERAL_TYPES[node.kind]

    def visit_Ident(self, node: Ident) -> CelType:
        local = self.lookup_local(node.name)
        if local is not None:
            node.ref = "local"
            return local
        if self.decls is not None and node.name in self.decls:
            node.ref = "var"
            return self.decls[node.name]
        if node.name in TYPE_DENOTATIONS and node.name != "uint":
            node.ref = "type"
            return TYPE
        if self.decls is None:
            node.ref = "var"
            return DYN
        node.ref = "var"
        known = list(self.decls) + [n for s in self.scopes for n in s]
        message = f"undeclared reference to '{node.name}'"
        node.error = message
        return self.fail(node, message, UNKNOWN_NAME, _suggest(node.name, known))

    def resolve_qualified(self, node: Select) -> Node | None:
        """``a.b.c`` where ``a.b`` (or ``google.protobuf.Duration``) is one declared name."""
        parts: list[Select] = []
        cur: Node = node
        while isinstance(cur, Select) and not cur.test_only:
            parts.append(cur)
            cur = cur.operand
        if not isinstance(cur, Ident) or self.lookup_local(cur.name) is not None:
            return None
        names = [cur.name] + [p.field for p in reversed(parts)]
        for k in range(len(names), 1, -1):
            dotted = ".".join(names[:k])
            if (self.dotted and self.is_declared(dotted)) or (
                dotted in TYPE_DENOTATIONS and not self.is_declared(names[0])
            ):
                replacement: Node = Ident(cur.pos, dotted)
                for sel in reversed(parts[: len(names) - k]):
                    replacement = Select(sel.pos, replacement, sel.field)
                return replacement
        return None

    def visit_Select(self, node: Select) -> CelType:
        node.operand = self.visit(node.operand)
        operand = node.operand.type or DYN
        result = self.field_type(node, operand, node.field)
        return BOOL if node.test_only else result

    def field_type(self, node: Node, operand: CelType, name: str) -> CelType:
        if operand.kind == "record":
            found = operand.field(name)
            if found is not None:
                return found
            owner = operand.name or "this record"
            hint = _suggest(name, operand.field_names)
            if hint is None and operand.field_names:
                hint = "declared fields are " + listing(operand.field_names)
            return self.fail(node, f"undefined field '{name}' of {owner}", UNKNOWN_NAME, hint)
        if operand.kind == "map":
            if operand.params[0].kind in ("string", "dyn"):
                return operand.params[1]
            return self.fail(
                node,
                f"cannot select field '{name}' of {operand}: its keys are not strings",
                TYPE_MISMATCH,
                "use an index instead, like m[1]",
            )
        if operand.kind == "dyn":
            return DYN
        return self.fail(node, f"type '{operand}' does not support field selection", TYPE_MISMATCH)

    def visit_ListLit(self, node: ListLit) -> CelType:
        node.items = [self.visit(item) for item in node.items]
        return list_of(self._join_all([i.type or DYN for i in node.items]))

    def visit_MapLit(self, node: MapLit) -> CelType:
        entries = []
        for key, value in node.entries:
            key, value = self.visit(key), self.visit(value)
            kt = key.type or DYN
            if kt.kind not in _MAP_KEY_KINDS:
                self.fail(
                    key,
                    f"unsupported map key type '{kt}'",
                    TYPE_MISMATCH,
                    "map keys are string, int or bool",
                )
            entries.append((key, value))
        node.entries = entries
        keys = self._join_all([k.type or DYN for k, _ in entries])
        values = self._join_all([v.type or DYN for _, v in entries])
        return map_of(keys, values)

    @staticmethod
    def _join_all(types: list[CelType]) -> CelType:
        if not types:
            return DYN
        result: CelType | None = types[0]
        for t in types[1:]:
            result = join(result, t) if result is not None else None
        return result or DYN

    def visit_Comprehension(self, node: Comprehension) -> CelType:
        node.range = self.visit(node.range)
        rt = node.range.type or DYN
        if rt.kind == "list" or rt.kind == "map":
            var = rt.params[0]
        elif rt.kind == "record":
            var = STRING
        elif rt.kind == "dyn":
            var = DYN
        else:
            self.fail(node, f"{node.macro}() cannot iterate over {rt}", TYPE_MISMATCH)
            var = DYN
        self.scopes.append({node.var: var})
        try:
            node.args = [self.visit(a) for a in node.args]
        finally:
            self.scopes.pop()
        predicates = node.args[:1] if node.macro != "map" else node.args[:-1]
        for pred in predicates:
            pt = pred.type or DYN
            if pt.kind not in ("bool", "dyn"):
                self.fail(
                    pred,
                    f"the condition of {node.macro}() must be bool, not {pt}",
                    TYPE_MISMATCH,
                    'compare the value, e.g. x == "value"',
                )
        if node.macro == "map":
            return list_of(node.args[-1].type or DYN)
        if node.macro == "filter":
            return list_of(var)
        return BOOL

    # ------------------------------------------------------------------ calls

    def visit_Call(self, node: Call) -> CelType:
        if node.target is not None:
            node.target = self.visit(node.target)
        node.args = [self.visit(a) for a in node.args]
        name = node.function
        if name in ("_&&_", "_||_", "!_"):
            for arg in node.args:
                at = arg.type or DYN
                if at.kind not in ("bool", "dyn"):
                    symbol = OPERATOR_SYMBOLS[name]
                    return self.fail(
                        node,
                        f"operands of '{symbol}' must be bool, not {at}",
                        TYPE_MISMATCH,
                        'compare the value, e.g. x == "value"' if at.kind != "null_type" else None,
                    )
            return BOOL
        if name == "_?_:_":
            cond, yes, no = node.args
            ct = cond.type or DYN
            if ct.kind not in ("bool", "dyn"):
                return self.fail(
                    node, f"the condition of '?:' must be bool, not {ct}", TYPE_MISMATCH
                )
            joined = join(yes.type or DYN, no.type or DYN)
            if joined is None:
                return self.fail(
                    node,
                    f"the branches of '?:' have different types ({yes.type} and {no.type})",
                    TYPE_MISMATCH,
                    "convert one side, or wrap it in dyn()",
                )
            return joined
        if name == "_[_]" and (node.args[0].type or DYN).kind == "record":
            return self.index_record(node)
        if name == "matches":
            self.compile_pattern(node)
        if name in FALLBACK_FUNCTIONS:
            reason = f"{name}() (timestamp/duration accessors run on cel-python)"
            if reason not in self.fallback_reasons:
                self.fallback_reasons.append(reason)
        return self.resolve(node)

    def index_record(self, node: Call) -> CelType:
        record, index = node.args
        it = index.type or DYN
        if it.kind not in ("string", "dyn"):
            return self.fail(
                node,
                f"no matching overload for '[]' applied to ({record.type}, {it})",
                TYPE_MISMATCH,
            )
        node.overload = "index_map"
        if isinstance(index, Literal) and isinstance(index.value, str):
            return self.field_type(index, record.type or DYN, index.value)
        return DYN

    def compile_pattern(self, node: Call) -> None:
        pattern = node.args[-1]
        if isinstance(pattern, Literal) and isinstance(pattern.value, str):
            try:
                node.pattern = stdlib.compile_regex(pattern.value)
            except stdlib.RegexError as exc:
                self.fail(
                    pattern,
                    f"invalid regular expression {pattern.value!r}: {exc}",
                    SYNTAX,
                    "matches() uses RE2 syntax (no lookaround or backreferences)",
                )

    def resolve(self, node: Call) -> CelType:
        name = node.function
        candidates = OVERLOADS.get(name)
        is_method = node.target is not None
        if candidates is None:
            kind = "method" if is_method else "function"
            known = sorted(n for n in OVERLOADS if n[0].isalpha())
            if self.strict:
                return self.fail(
                    node, f"unknown {kind} '{name}'", UNKNOWN_FUNCTION, _suggest(name, known)
                )
            node.error = f"unbound function '{name}'"
            return DYN
        args = ([node.target] if node.target is not None else []) + node.args
        types = [a.type or DYN for a in args]
        same_style = [o for o in candidates if o.member == is_method]
        shaped = [o for o in same_style if len(o.params) == len(args)]
        if not shaped:
            if not same_style and is_method:
                return self.fail(
                    node,
                    f"'{name}' is a function, not a method",
                    UNKNOWN_FUNCTION,
                    f"call it as {name}(...)",
                )
            if not same_style:
                return self.fail(
                    node, f"'{name}' is a method", UNKNOWN_FUNCTION, f"call it as value.{name}(...)"
                )
            counts = sorted({len(o.params) - o.member for o in same_style})
            return self.fail(
                node,
                f"'{name}' takes {' or '.join(map(str, counts))} argument(s), not {len(node.args)}",
                TYPE_MISMATCH,
            )
        matches = []
        for overload in shaped:
            env: dict[str, CelType] = {}
            if all(unify(p, t, env) for p, t in zip(overload.params, types, strict=True)):
                matches.append((overload, substitute(overload.result, env)))
        if not matches:
            symbol = OPERATOR_SYMBOLS.get(name, name)
            return self.fail(
                node,
                f"no matching overload for '{symbol}' applied to {_describe(types)}",
                TYPE_MISMATCH,
                self.overload_hint(name, types),
            )
        if len({o.id for o, _ in matches}) == 1 and all(t.kind != "dyn" for t in types):
            node.overload = matches[0][0].id
        return self._join_all([r for _, r in matches])

    @staticmethod
    def overload_hint(name: str, types: list[CelType]) -> str | None:
        kinds = {t.kind for t in types}
        if kinds == {"int", "double"}:
            return "int and double do not mix: write 1.0 instead of 1, or convert with double()"
        if name in ("_==_", "_!=_") and "null_type" in kinds:
            return "to test whether a field is present, use has(...)"
        if "string" in kinds and name == "_+_":
            return "convert the other side with string()"
        if name in ("_<_", "_<=_", "_>_", "_>=_") and kinds & {"list", "map"}:
            return "compare a size instead, like size(request.tags) > 3"
        return None
