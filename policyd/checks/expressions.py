"""CEL expressions: :func:`cel_fields` finds every expression in a policy, and
:func:`check_expressions` compiles each one once against the policy's declarations
(PD301-PD306, PD310), so a bundle that passes ``check`` never parses an expression again.
"""

from __future__ import annotations

import enum
import functools
import json
import re
import threading
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from policyd import cel, document, fields
from policyd.cel.types import CelType, from_declaration
from policyd.checks.base import CEL_NOT_BOOL, CEL_SLOW_PATH, Checker, Path
from policyd.diagnostics import Severity
from policyd.loader import Document


def cel_fields(obj: BaseModel, path: Path = ()) -> Iterator[tuple[Path, str, str]]:
    """Every CEL expression in a model object: (path, source, kind), in field order."""
    found: list[tuple[Path, str, str]] = []
    _collect_model(obj, path, found)
    return iter(found)


_CONTAINERS = (BaseModel, list, dict)


def _collect_model(obj: BaseModel, path: Path, found: list[tuple[Path, str, str]]) -> None:
    for name, key, marker in _field_markers(type(obj)):
        value = getattr(obj, name)
        if marker is not None and isinstance(value, str):
            found.append(((*path, key), value, marker.kind))
        elif isinstance(value, _CONTAINERS):  # nothing else can hold an expression
            _collect(value, (*path, key), found)


_FieldMarkers = tuple[tuple[str, str, "fields.CelMarker | None"], ...]
_markers: dict[type[BaseModel], _FieldMarkers] = {}
_markers_lock = threading.RLock()


def _field_markers(cls: type[BaseModel]) -> _FieldMarkers:
    """(field name, key as written, its CelMarker) for each field of a model class that is
    marked or whose values may hold an expression (see :func:`_may_hold_cel`), once."""
    found = _markers.get(cls)
    if found is not None:
        return found
    with _markers_lock:
        if cls in _markers:  # computed meanwhile, or being computed (a recursive model)
            return _markers[cls]
        every = tuple(
            (name, info.alias or name, _cel_marker(info.metadata, info.annotation))
            for name, info in cls.model_fields.items()
        )
        _markers[cls] = every  # all fields while in progress: a recursive model walks them
        kept = tuple(
            f
            for f, info in zip(every, cls.model_fields.values(), strict=True)
            if f[2] is not None or _may_hold_cel(info.annotation)
        )
        _markers[cls] = kept
        return kept


_LEAF_TYPES = (str, int, float, bool, bytes, type(None), enum.Enum)


def _may_hold_cel(annotation: Any) -> bool:
    """False when no value of ``annotation`` can hold a CEL expression: strings, numbers,
    enums and literals, and lists, dicts, unions and models of only those. True for anything
    else (``Any``, aliases, unknown types), so pruning never skips an expression."""
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return bool(_field_markers(annotation))
        return not issubclass(annotation, _LEAF_TYPES)
    origin = get_origin(annotation)
    if origin is Literal:
        return False
    if origin is Annotated:
        return _may_hold_cel(get_args(annotation)[0])
    if origin in (list, dict, tuple, set, frozenset, Union, types.UnionType):
        return any(_may_hold_cel(arg) for arg in get_args(annotation) if arg is not Ellipsis)
    return True


def _cel_marker(metadata: list[Any], annotation: Any) -> fields.CelMarker | None:
    """The CelMarker of a field, looking inside Optional[...] too."""
    for item in metadata:
        if isinstance(item, fields.CelMarker):
            return item
    for arg in get_args(annotation):
        found = _cel_marker(list(getattr(arg, "__metadata__", ())), arg)
        if found is not None:
            return found
    return None


def _collect(value: Any, path: Path, found: list[tuple[Path, str, str]]) -> None:
    if isinstance(value, BaseModel):
        _collect_model(value, path, found)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, _CONTAINERS):
                _collect(item, (*path, i), found)
    elif isinstance(value, dict):
        for k, item in value.items():
            if isinstance(item, _CONTAINERS):
                _collect(item, (*path, k), found)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _request_hint(exc: cel.CompileError, request: dict[str, Any]) -> str | None:
    """``tenant.tier`` for ``request.tenant.tier``: say that attributes live under request."""
    name = _IDENT.match(exc.source, exc.offset)
    if exc.code == "PD302" and name and name.group() in request:
        return f"request attributes are read through request: write request.{name.group()}"
    return None


def _one_line(source: str) -> str:
    """An expression as messages quote it: a block scalar's line breaks and indents folded."""
    return re.sub(r"\s*\n\s*", " ", source.strip())


@functools.lru_cache(maxsize=8192)
def _compile(source: str, declarations_json: str) -> cel.Expression:
    return cel.compile(source, _types(declarations_json))


@functools.lru_cache(maxsize=64)
def _types(declarations_json: str) -> dict[str, CelType]:
    """A policy's declarations as CEL types, built once: an expression that fails to
    compile is not remembered, and building them again for each one cost the size of
    ``context:`` per expression (2,000 fields x 2,000 failing rules: ~17 s)."""
    return {
        str(name): from_declaration(decl, str(name))
        for name, decl in json.loads(declarations_json).items()
    }


def compile_cached(source: str, declarations: dict[str, Any]) -> cel.Expression:
    """``cel.compile``, remembered per (source, declarations).

    Compiled expressions are immutable and thread-safe, so one object can serve every
    policy and every revision that declares the same request: a hot reload or a bundle
    of similar policies parses each distinct expression once (compiling is ~0.6 ms,
    mostly parsing). Errors are not remembered; they are raised again each time.
    """
    return _compile(source, _declarations_key(declarations))


def _declarations_key(declarations: dict[str, Any]) -> str:
    return json.dumps(declarations, sort_keys=True)


def check_expressions(
    policy: document.Policy, doc: Document, declarations: dict[str, Any], checker: Checker
) -> dict[Path, cel.Expression]:
    """Compile every CEL expression of ``policy``; return those that compiled to a usable type."""
    expressions: dict[Path, cel.Expression] = {}
    declarations_key = _declarations_key(declarations)  # once per policy, not per expression
    for path, source, kind in cel_fields(policy):
        try:
            expr = _compile(source, declarations_key)
        except cel.CompileError as exc:
            checker.add(
                doc,
                path,
                exc.code,
                f"{exc.message} in CEL expression {_one_line(source)!r}",
                exc.hint or _request_hint(exc, declarations["request"]),
                offset=exc.offset,
            )
            continue
        if kind == "condition" and expr.result_type not in ("bool", "dyn"):
            checker.add(
                doc,
                path,
                CEL_NOT_BOOL,
                f"condition must be a bool, but {_one_line(source)!r} is {expr.result_type}",
                'compare it with something, e.g. ... == "value"',
            )
            continue
        if not expr.native:
            checker.add(
                doc,
                path,
                CEL_SLOW_PATH,
                f"expression runs on cel-python's evaluator (slow path): {expr.fallback_reason}",
                severity=Severity.INFO,
            )
        expressions[path] = expr
    return expressions
