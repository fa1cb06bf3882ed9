"""No import cycles in policyd/: every import, at module level and inside functions.

The graph is built from the source with ``ast`` (nothing is imported): an edge runs from
a module to each policyd module it imports, wherever the import statement sits, except
under ``if TYPE_CHECKING:`` (never executed). ``from pkg import name`` points at
``pkg.name`` when that is a module, else at ``pkg``; like import-linter, importing
``a.b.c`` is no edge to ``a`` or ``a.b`` (their ``__init__`` runs first, but counting
that would make every package a cycle with its own modules).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "policyd"

# Import cycles allowed, each a strongly connected component of the graph: none since
# #16 (deciding is policyd.deciding, used by the engine and by policy tests; the engine
# imports reload's modules, never the package that also holds the `policyd watch` loop).
# The test fails on any cycle not listed, and on a listed one that is gone.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree`` (functions and classes included), skipping the
    body of ``if TYPE_CHECKING:`` (its ``else:`` runs, so it counts)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The policyd modules that module ``name`` (at ``path``) imports."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [
                f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem
                for alias in node.names
            ]
        for target in targets:
            while target and target not in known:  # `import policyd.x.y` names a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def a_cycle_in(component: frozenset[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle through ``component``, for the failure message."""
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & component):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    return [start]


def test_no_import_cycles_beyond_the_known_ones() -> None:
    graph = import_graph()
    found = set(cycles(graph))
    new = [" -> ".join(a_cycle_in(c, graph)) for c in found - KNOWN_CYCLES]
    gone = [sorted(c) for c in KNOWN_CYCLES - found]
    assert not new, "import cycle(s) not in KNOWN_CYCLES:\n" + "\n".join(new)
    assert not gone, f"listed in KNOWN_CYCLES but gone (or changed), update the list: {gone}"


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking(
    tmp_path: Path,
) -> None:
    """The walker itself: a function-level import is an edge, a TYPE_CHECKING one is not."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg import c\n"
        "def f():\n    from . import b\n    return b\n"
    )
    (package / "b.py").write_text("import pkg.a\n")
    (package / "c.py").write_text("from .a import f\n")
    known = {"pkg": package / "__init__.py"} | {
        f"pkg.{n}": package / f"{n}.py" for n in ("a", "b", "c")
    }
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a"}}
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.b"})]
    assert a_cycle_in(frozenset({"pkg.a", "pkg.b"}), graph) == ["pkg.a", "pkg.b", "pkg.a"]
