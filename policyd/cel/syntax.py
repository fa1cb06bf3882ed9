"""CEL syntax: parse text with cel-python's grammar and turn the lark tree into a small AST.

The AST has one node class per construct, each with the 0-based offset of the
token that errors should point at. Operators and functions are :class:`Call`
nodes named like cel-go's (``_+_``, ``_&&_``, ``@in``, ``_[_]``); the macros
``has`` and ``all/exists/exists_one/map/filter`` become :class:`Select` (with
``test_only``) and :class:`Comprehension`. Literal escapes are decoded here
following the CEL specification, not cel-python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from policyd.cel import astcache
from policyd.cel.errors import SYNTAX, TOO_COMPLEX, CompileError
from policyd.cel.types import CelType

MAX_SOURCE_LENGTH = 8192
MAX_DEPTH = 48

RESERVED = frozenset(
    {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let"}
    | {"loop", "package", "namespace", "return", "var", "void", "while"}
)
MACROS = {"all": 2, "exists": 2, "exists_one": 2, "filter": 2, "map": (2, 3)}


@dataclass(eq=False)
class Node:
    pos: int
    type: CelType | None = field(default=None, init=False, repr=False)
    # Set by the checker in unchecked mode: evaluating this node raises this message.
    error: str | None = field(default=None, init=False, repr=False)


@dataclass(eq=False)
class Literal(Node):
    value: Any
    kind: str  # int | uint | double | string | bytes | bool | null


@dataclass(eq=False)
class Ident(Node):
    name: str
    ref: str = field(default="", init=False)  # set by the checker: var | local | type


@dataclass(eq=False)
class Select(Node):
    operand: Node
    field: str
    test_only: bool = False  # has(operand.field)


@dataclass(eq=False)
class Call(Node):
    function: str
    args: list[Node]
    target: Node | None = None  # receiver of a method call
    overload: str | None = field(default=None, init=False, repr=False)
    pattern: Any = field(default=None, init=False, repr=False)  # compiled constant regex


@dataclass(eq=False)
class ListLit(Node):
    items: list[Node]


@dataclass(eq=False)
class MapLit(Node):
    entries: list[tuple[Node, Node]]


@dataclass(eq=False)
class Comprehension(Node):
    macro: str  # all | exists | exists_one | map | filter
    range: Node
    var: str
    args: list[Node]  # predicate / transform (map with three arguments: filter, transform)


def children(node: Node) -> list[Node]:
    """Direct sub-expressions, in evaluation order."""
    if isinstance(node, Select):
        return [node.operand]
    if isinstance(node, Call):
        return ([node.target] if node.target is not None else []) + list(node.args)
    if isinstance(node, ListLit):
        return list(node.items)
    if isinstance(node, MapLit):
        return [n for pair in node.entries for n in pair]
    if isinstance(node, Comprehension):
        return [node.range, *node.args]
    return []


# --------------------------------------------------------------------------- literals

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
_ESCAPE = re.compile(
    r"\\(?:(?P<simple>[abfnrtv\\'\"`?])|x(?P<x>[0-9a-fA-F]{2})|u(?P<u>[0-9a-fA-F]{4})"
    r"|U(?P<U>[0-9a-fA-F]{8})|(?P<oct>[0-3][0-7]{2})|(?P<bad>.?))",
    re.DOTALL,
)


def _decode_escapes(body: str, as_bytes: bool) -> str | bytes:
    """Expand CEL escapes; in bytes literals \\x and octal escapes are single bytes."""
    out: list[bytes] = []
    last = 0
    for m in _ESCAPE.finditer(body):
        out.append(body[last : m.start()].encode("utf-8"))
        last = m.end()
        if m.group("simple") is not None:
            out.append(_SIMPLE_ESCAPES[m.group("simple")].encode())
        elif m.group("x") is not None or m.group("oct") is not None:
            code = int(m.group("x"), 16) if m.group("x") else int(m.group("oct"), 8)
            out.append(bytes([code]) if as_bytes else chr(code).encode("utf-8"))
        elif m.group("u") is not None or m.group("U") is not None:
            if as_bytes:
                raise ValueError("\\u and \\U escapes are not allowed in bytes literals")
            code = int(m.group("u") or m.group("U"), 16)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise ValueError(f"invalid code point \\u{code:04x}")
            out.append(chr(code).encode("utf-8"))
        else:
            raise ValueError(f"invalid escape sequence '\\{m.group('bad')}'")
    out.append(body[last:].encode("utf-8"))
    data = b"".join(out)
    return data if as_bytes else data.decode("utf-8")


def decode_string(token: str) -> str | bytes:
    """The value of a STRING/MLSTRING/BYTES literal token."""
    text = token
    as_bytes = raw = False
    while text[0] in "bBrR":
        if text[0] in "bB":
            as_bytes = True
        else:
            raw = True
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    body = text[quote:-quote]
    if raw:
        return body.encode("utf-8") if as_bytes else body
    return _decode_escapes(body, as_bytes)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _int_literal(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("-")
    value = sign * (int(digits[2:], 16) if digits[:2].lower() == "0x" else int(digits, 10))
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"integer literal {text} does not fit in 64 bits")
    return value


# --------------------------------------------------------------------------- backticks

_BACKTICK = re.compile(r"`([^`\n]+)`")
_STRINGISH = re.compile(
    r"""[bBrR]{0,2}(\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')""",
    re.DOTALL,
)


def _hide_backticks(source: str) -> tuple[str, dict[str, str]]:
    """Replace ``.`quoted-field``` selections with same-length placeholder identifiers.

    cel-python's grammar predates backtick-quoted field names; offsets stay exact.
    """
    if "`" not in source:
        return source, {}
    names: dict[str, str] = {}
    pieces: list[str] = []
    pos = 0
    for sm in [*_STRINGISH.finditer(source), None]:
        end = sm.start() if sm is not None else len(source)
        code = source[pos:end]

        def swap(m: re.Match[str]) -> str:
            width = len(m.group(0))
            n = len(names)
            while True:
                placeholder = f"_{n}".ljust(width, "_")
                if placeholder not in source and placeholder not in names:
                    break
                n += 1
            if len(placeholder) > width:  # pragma: no cover - needs 10+ one-letter fields
                return m.group(0)
            names[placeholder] = m.group(1)
            return placeholder

        pieces.append(_BACKTICK.sub(swap, code))
        if sm is not None:
            pieces.append(sm.group(0))
            pos = sm.end()
    return "".join(pieces), names


# --------------------------------------------------------------------------- parser

_OPS = {
    "relation_lt": ("_<_", "<"),
    "relation_le": ("_<=_", "<="),
    "relation_gt": ("_>_", ">"),
    "relation_ge": ("_>=_", ">="),
    "relation_eq": ("_==_", "=="),
    "relation_ne": ("_!=_", "!="),
    "relation_in": ("@in", "in"),
    "addition_add": ("_+_", "+"),
    "addition_sub": ("_-_", "-"),
    "multiplication_mul": ("_*_", "*"),
    "multiplication_div": ("_/_", "/"),
    "multiplication_mod": ("_%_", "%"),
}
_WRAPPERS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
    | {"unary", "member", "primary"}
)


def _lark_parser() -> Any:
    from policyd.cel.grammar import parser

    return parser()  # cel-python's grammar and options, without importing cel-python


class _Builder:
    def __init__(self, source: str, placeholders: dict[str, str]) -> None:
        self.source = source
        self.placeholders = placeholders

    def error(self, message: str, pos: int, code: str = SYNTAX, hint: str | None = None) -> None:
        raise CompileError(message, code=code, source=self.source, offset=pos, hint=hint)

    def pos_of(self, tree: Any, default: int = 0) -> int:
        start = getattr(getattr(tree, "meta", None), "start_pos", None)
        if start is None:
            start = getattr(tree, "start_pos", None)
        return default if start is None else int(start)

    def name(self, token: Any) -> str:
        text = str(token)
        return self.placeholders.get(text, text)

    def op_pos(self, lo: int, hi: int, op: str) -> int:
        found = self.source.find(op, lo, hi if hi > lo else len(self.source))
        return found if found >= 0 else lo

    def build(self, tree: Any, depth: int = 0, default_pos: int = 0) -> Node:
        from lark import Token, Tree

        if depth > MAX_DEPTH:
            self.error(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                self.pos_of(tree, default_pos),
                TOO_COMPLEX,
                "split it into simpler conditions",
            )
        # Skip single-child wrapper levels without recursing.
        while (
            isinstance(tree, Tree)
            and tree.data in _WRAPPERS
            and len(tree.children) == 1
            and isinstance(tree.children[0], Tree)
        ):
            default_pos = self.pos_of(tree, default_pos)
            tree = tree.children[0]
        pos = self.pos_of(tree, default_pos)
        kids = tree.children
        sub = depth + 1
        data = tree.data

        if data == "expr":  # cond ? a : b
            cond, yes, no = (self.build(k, sub, pos) for k in kids)
            qpos = self.op_pos(self.end_of(kids[0]), self.pos_of(kids[1], pos), "?")
            return Call(qpos, "_?_:_", [cond, yes, no])
        if data in ("conditionalor", "conditionaland"):
            # a || b || c is one n-ary call: long chains do not nest (or recurse) deeper
            name, op = ("_||_", "||") if data == "conditionalor" else ("_&&_", "&&")
            operands = []
            cur = tree
            while isinstance(cur, Tree) and cur.data == data and len(cur.children) == 2:
                operands.append(cur.children[1])
                cur = cur.children[0]
            operands.append(cur)
            operands.reverse()
            opos = self.op_pos(self.end_of(operands[0]), self.pos_of(operands[1], pos), op)
            return Call(opos, name, [self.build(t, sub, pos) for t in operands])
        if data in ("relation", "addition", "multiplication"):
            op_tree, right_tree = kids
            name, op = _OPS[op_tree.data]
            left = self.build(op_tree.children[0], sub, pos)
            right = self.build(right_tree, sub, pos)
            end = getattr(op_tree.meta, "end_pos", None)
            opos = end - len(op) if end is not None else pos
            return Call(opos, name, [left, right])
        if data == "unary":
            op_tree, operand = kids
            name = "!_" if op_tree.data == "unary_not" else "-_"
            return Call(self.pos_of(op_tree, pos), name, [self.build(operand, sub, pos)])
        if data == "member_dot":
            operand = self.build(kids[0], sub, pos)
            return Select(kids[1].start_pos, operand, self.name(kids[1]))
        if data == "member_dot_arg":
            target = self.build(kids[0], sub, pos)
            method = self.name(kids[1])
            args = self.exprs(kids[2], sub, pos) if len(kids) > 2 else []
            return self.call(kids[1].start_pos, method, args, target, kids[2:])
        if data == "member_index":
            operand = self.build(kids[0], sub, pos)
            index = self.build(kids[1], sub, pos)
            bpos = self.op_pos(self.end_of(kids[0]), self.pos_of(kids[1], pos), "[")
            return Call(bpos, "_[_]", [operand, index])
        if data == "member_object":
            self.error(
                "message construction (Type{field: value}) is not supported",
                pos,
                hint="policy conditions work on plain maps: use {'field': value}",
            )
        if data in ("ident", "dot_ident"):
            return self.ident(kids[0])
        if data in ("ident_arg", "dot_ident_arg"):
            args = self.exprs(kids[1], sub, pos) if len(kids) > 1 else []
            return self.call(kids[0].start_pos, self.name(kids[0]), args, None, kids[1:])
        if data == "paren_expr":
            return self.build(kids[0], sub, pos)
        if data == "list_lit":
            return ListLit(pos, self.exprs(kids[0], sub, pos) if kids else [])
        if data == "map_lit":
            items = self.exprs(kids[0], sub, pos) if kids else []
            return MapLit(pos, list(zip(items[0::2], items[1::2], strict=True)))
        if data == "literal":
            return self.literal(kids[0], pos)
        if isinstance(tree, Token):  # pragma: no cover - grammar always wraps tokens
            return self.literal(tree, pos)
        self.error(f"unsupported syntax ({data})", pos)  # pragma: no cover
        raise AssertionError  # pragma: no cover

    def end_of(self, tree: Any) -> int:
        end = getattr(getattr(tree, "meta", None), "end_pos", None)
        return int(end) if end is not None else self.pos_of(tree)

    def exprs(self, tree: Any, depth: int, pos: int) -> list[Node]:
        return [self.build(k, depth, pos) for k in tree.children]

    def ident(self, token: Any) -> Ident:
        name = self.name(token)
        if name in RESERVED:
            self.error(f"'{name}' is a reserved word and cannot be used as a name", token.start_pos)
        return Ident(token.start_pos, name)

    def call(
        self, pos: int, name: str, args: list[Node], target: Node | None, arg_trees: list[Any]
    ) -> Node:
        if target is None and name == "has" and len(args) == 1:
            arg = args[0]
            if not isinstance(arg, Select) or arg.test_only:
                self.error("has() needs a field selection, like has(request.user.country)", pos)
            assert isinstance(arg, Select)
            return Select(arg.pos, arg.operand, arg.field, test_only=True)
        arity = MACROS.get(name)
        if target is not None and arity is not None:
            counts = arity if isinstance(arity, tuple) else (arity,)
            if len(args) in counts:
                var = args[0]
                if not isinstance(var, Ident):
                    self.error(
                        f"the first argument of {name}() must be a variable name, like x",
                        self.pos_of(arg_trees[0].children[0], var.pos),
                    )
                assert isinstance(var, Ident)
                return Comprehension(pos, name, target, var.name, args[1:])
        return Call(pos, name, args, target)

    def literal(self, token: Any, pos: int) -> Literal:
        kind = token.type
        text = str(token)
        tpos = token.start_pos
        if tpos is None:  # cel-python re-creates true/false tokens without a position
            found = self.source.find(text, pos)
            tpos = found if found >= 0 else pos
        try:
            if kind == "INT_LIT":
                return Literal(tpos, _int_literal(text), "int")
            if kind == "UINT_LIT":
                return Literal(tpos, int(text[:-1], 0) if "x" in text else int(text[:-1]), "uint")
            if kind == "FLOAT_LIT":
                return Literal(tpos, float(text), "double")
            if kind in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
                value = decode_string(text)
                return Literal(tpos, value, "bytes" if isinstance(value, bytes) else "string")
            if kind == "BOOL_LIT":
                return Literal(tpos, text == "true", "bool")
            if kind == "NULL_LIT":
                return Literal(tpos, None, "null")
        except ValueError as exc:
            self.error(f"invalid literal {text}: {exc}", tpos)
        self.error(f"unsupported literal {text}", tpos)  # pragma: no cover
        raise AssertionError  # pragma: no cover


def _syntax_error(source: str, exc: Exception) -> CompileError:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    offset = len(source)
    if isinstance(line, int) and isinstance(column, int) and line > 0:
        lines = source.split("\n")
        offset = sum(len(x) + 1 for x in lines[: line - 1]) + column - 1
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        message = f"syntax error: unexpected {str(exc.token)!r}"
    elif isinstance(exc, UnexpectedCharacters):
        message = f"syntax error: unexpected character {source[offset : offset + 1]!r}"
    elif isinstance(exc, (UnexpectedEOF, UnexpectedToken)):
        message = "syntax error: the expression ends too early"
        offset = len(source.rstrip())
    else:
        message = f"syntax error: {str(exc).splitlines()[0]}"
    hint = None
    if re.search(r"(?<![=!<>])=(?!=)", source):
        hint = "compare with '==', not '='"
    elif "'" in source[offset : offset + 1] or '"' in source[offset : offset + 1]:
        hint = "check that every string literal is closed"
    return CompileError(message, code=SYNTAX, source=source, offset=offset, hint=hint)


def parse(source: str) -> Node:
    """Parse CEL text into an AST; raises :class:`CompileError` (PD301/PD306)."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise CompileError(
            f"expression is too long ({len(source)} characters, limit {MAX_SOURCE_LENGTH})",
            code=TOO_COMPLEX,
            source=source,
            offset=MAX_SOURCE_LENGTH,
            hint="split it into simpler conditions",
        )
    if not source.strip():
        raise CompileError("empty expression", code=SYNTAX, source=source, offset=0)
    cached = astcache.get(source)
    if cached is not None:
        return cached
    from lark.exceptions import LarkError

    text, placeholders = _hide_backticks(source)
    try:
        tree = _lark_parser().parse(text)
    except LarkError as exc:
        raise _syntax_error(source, exc) from None
    except RecursionError:
        raise CompileError(
            "expression is nested too deeply",
            code=TOO_COMPLEX,
            source=source,
            offset=0,
            hint="split it into simpler conditions",
        ) from None
    node = _Builder(source, placeholders).build(tree)
    astcache.put(source, node)
    return node
