"""Static facts about a checked expression: the attribute paths it reads and its cost.

The cost estimate follows Kubernetes' CEL cost limits in spirit: every node costs
one, and a macro costs its range's size times its body. Ranges of unknown size
(lists and maps from the request) count as :data:`UNKNOWN_SIZE` elements, so
nesting macros over request data multiplies quickly and is rejected at load time
when it exceeds :data:`MAX_COST`.
"""

from __future__ import annotations

from policyd.cel.errors import TOO_COMPLEX, CompileError
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

UNKNOWN_SIZE = 1000
MAX_COST = 1_000_000
_REGEX_COST = 10


def path_of(node: Node) -> tuple[str, ...] | None:
    """``("request", "tenant", "tier")`` for a selection chain from a declared variable."""
    if isinstance(node, Ident):
        return (node.name,) if node.ref == "var" else None
    if isinstance(node, Select):
        base = path_of(node.operand)
        return None if base is None else (*base, node.field)
    if isinstance(node, Call) and node.function == "_[_]":
        key = node.args[1]
        if isinstance(key, Literal) and key.kind == "string":
            base = path_of(node.args[0])
            return None if base is None else (*base, key.value)
    return None


def collect_paths(root: Node) -> frozenset[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        path = path_of(node)
        if path is not None:
            found.add(path)
            continue
        stack.extend(children(node))
    return frozenset(found)


def _size(node: Node) -> int:
    if isinstance(node, ListLit):
        return len(node.items)
    if isinstance(node, MapLit):
        return len(node.entries)
    if isinstance(node, Comprehension) and node.macro in ("map", "filter"):
        return _size(node.range)
    return UNKNOWN_SIZE


def cost(node: Node) -> int:
    if isinstance(node, Comprehension):
        body = sum(cost(arg) for arg in node.args) + 1
        return cost(node.range) + _size(node.range) * body
    own = _REGEX_COST if isinstance(node, Call) and node.function == "matches" else 1
    return own + sum(cost(child) for child in children(node))


def text_names(root: Node) -> frozenset[str]:
    """Names and string literals written in the expression: the only keys a run-time
    error message may quote (anything else may be a value from the request)."""
    found: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Select):
            found.add(node.field)
        elif isinstance(node, Ident):
            found.add(node.name)
        elif isinstance(node, Literal) and node.kind == "string":
            found.add(node.value)
        stack.extend(children(node))
    return frozenset(found)


def comprehensions(root: Node) -> int:
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        count += isinstance(node, Comprehension)
        stack.extend(children(node))
    return count


def uses_absorbing(root: Node) -> bool:
    """Does the expression contain &&, || or all/exists (which absorb errors)?"""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Call) and node.function in ("_&&_", "_||_"):
            return True
        if isinstance(node, Comprehension) and node.macro in ("all", "exists"):
            return True
        stack.extend(children(node))
    return False


def check_cost(source: str, root: Node) -> int:
    total = cost(root)
    if total > MAX_COST:
        worst = _costliest_macro(root)
        raise CompileError(
            f"expression is too expensive: estimated cost {total:,} exceeds the limit of "
            f"{MAX_COST:,}",
            code=TOO_COMPLEX,
            source=source,
            offset=worst.pos if worst is not None else 0,
            hint="macros nested over request lists multiply (each counts "
            f"{UNKNOWN_SIZE} elements); avoid nesting all()/exists()/map() over them",
        )
    return total


def _costliest_macro(root: Node) -> Node | None:
    best: tuple[int, Node] | None = None
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Comprehension):
            c = cost(node)
            if best is None or c > best[0]:
                best = (c, node)
        stack.extend(children(node))
    return best[1] if best else None
