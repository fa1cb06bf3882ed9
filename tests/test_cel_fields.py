"""`cel_fields` finds every CEL expression of a policy: it skips fields whose type cannot
hold one, so it is checked against a walk over every value of every model (the way it
was written before #17) on each policy the repository ships, as examples or benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from policyd import document, loader, structure
from policyd.checks.expressions import _cel_marker, cel_fields

REPO = Path(__file__).resolve().parents[1]
FILES = sorted(
    p
    for p in REPO.glob("**/*.yaml")
    if not any(part.startswith(".") for part in p.relative_to(REPO).parts)
    and "kind: Policy\n" in p.read_text(encoding="utf-8", errors="replace")
)


def _every_value(obj: BaseModel, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    for name, info in type(obj).model_fields.items():
        key = info.alias or name
        marker = _cel_marker(info.metadata, info.annotation)
        value = getattr(obj, name)
        if marker is not None and isinstance(value, str):
            yield (*path, key), value, marker.kind
        else:
            yield from _walk(value, (*path, key))


def _walk(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, BaseModel):
        yield from _every_value(value, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i))
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _walk(item, (*path, k))


def _policies(path: Path) -> list[document.Policy]:
    found = []
    for doc in loader.load_path(path).documents:
        typed, problems = structure.to_model(doc)
        if typed is None and problems:
            typed, _ = structure.repair(doc)
        if isinstance(typed, document.Policy):
            found.append(typed)
    return found


def test_there_are_policies_to_compare() -> None:
    policies = [policy for path in FILES for policy in _policies(path)]
    assert len(policies) > 20
    assert sum(len(list(cel_fields(policy))) for policy in policies) > 40


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_cel_fields_finds_what_a_walk_over_every_value_finds(path: Path) -> None:
    for policy in _policies(path):
        assert list(cel_fields(policy)) == list(_every_value(policy))
