"""What the README, docs/ and examples/ tell users to use is public (#16).

policyd's convention (``policyd/__init__.py``): the public API is ``policyd.__all__`` plus
the modules in ``policyd.PUBLIC_MODULES``; every other module is an implementation module.
This test reads every import statement and every backquoted dotted name ending in a class
or a call (``policyd.cel.compile()``, ``policyd.X.SomeError``) in the user-facing text and
fails when one leads into an implementation module. docs/architecture.md is for
contributors and may name anything.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import policyd

REPO = Path(__file__).resolve().parent.parent
FOR_CONTRIBUTORS = {REPO / "docs" / "architecture.md"}
IMPORT = re.compile(
    r"^\s*#?\s*(?:from|import)\s+(policyd(?:\.\w+)*)(?:\s+import\s+([\w, ()]+))?", re.M
)
REFERENCE = re.compile(r"`(policyd(?:\.\w+)+?)\.([A-Z]\w*|\w+\(\))`")


def _user_facing() -> list[Path]:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    files += sorted((REPO / "examples").rglob("*.py"))
    return [f for f in files if f not in FOR_CONTRIBUTORS]


def _module_of(dotted: str) -> str:
    """The longest importable module prefix of a dotted name."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return name
    raise AssertionError(f"{dotted}: no such module")


def _uses(text: str) -> list[tuple[str, str]]:
    """(module, what is used from it) for each import and each class or call reference."""
    found = []
    for match in IMPORT.finditer(text):
        module, names = match.group(1), match.group(2) or ""
        found.append((_module_of(module), names.strip()))
    for match in REFERENCE.finditer(text):
        found.append((_module_of(match.group(1)), match.group(2)))
    return found


@pytest.mark.parametrize("path", _user_facing(), ids=lambda p: str(p.relative_to(REPO)))
def test_user_facing_text_uses_only_public_modules(path: Path) -> None:
    pytest.importorskip("litellm")  # the integration modules import it
    private = [
        f"{module} ({names})"
        for module, names in _uses(path.read_text(encoding="utf-8"))
        if module not in policyd.PUBLIC_MODULES
    ]
    assert not private, (
        f"{path.relative_to(REPO)} sends users to implementation modules: {private}; "
        "export the name from policyd (policyd/__init__.py) or list the module in "
        "PUBLIC_MODULES"
    )


def test_the_check_sees_a_reference_into_an_implementation_module() -> None:
    uses = _uses("raises `policyd.budgets.usage.UnknownBudget`; see `policyd.cel.compile()`")
    assert uses == [("policyd.budgets.usage", "UnknownBudget"), ("policyd.cel", "compile()")]
    assert _uses("from policyd.bundle import load_bundle") == [("policyd.bundle", "load_bundle")]
    assert "policyd.bundle" not in policyd.PUBLIC_MODULES


def test_every_public_module_imports_and_says_what_it_owns() -> None:
    pytest.importorskip("litellm")
    for name in policyd.PUBLIC_MODULES:
        module = importlib.import_module(name)
        assert (module.__doc__ or "").strip(), f"{name} has no docstring"


def test_telemetry_attribute_names_are_not_module_references() -> None:
    # `policyd.request` or `policyd.shadow.comparisons` in the docs are attribute and metric
    # names: only imports and references to a class or a call count.
    assert _uses("`policyd.request` and `policyd.shadow.comparisons`") == []
