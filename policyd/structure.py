"""Structure check: a loaded YAML document -> a typed model object, or diagnostics.

Runs pydantic on each document and turns its errors into :class:`Diagnostic`
values pointing at the exact key or value in the file, with "did you mean"
hints for misspelt keys and values.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from policyd import model
from policyd.diagnostics import Diagnostic, Severity
from policyd.loader import Document

Path = tuple[str | int, ...]

# Codes for structure problems (PD1xx).
UNKNOWN_KEY = "PD101"
WRONG_TYPE = "PD102"
MISSING_FIELD = "PD103"
INVALID_VALUE = "PD104"
UNKNOWN_API_VERSION = "PD105"
UNKNOWN_KIND = "PD106"

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "int_from_float": "a whole number",
}


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" hint, or None when nothing is close."""
    matches = difflib.get_close_matches(str(word), sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else None


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def to_model(doc: Document) -> tuple[model.Document | None, list[Diagnostic]]:
    """Validate one document's structure; the typed object when it is valid."""
    data = doc.data
    api = data.get("apiVersion")
    kind = data.get("kind")
    if api != model.API_VERSION:
        where = ("apiVersion",) if "apiVersion" in data else ()
        message = "document has no apiVersion" if api is None else f"unknown apiVersion {api!r}"
        return None, [
            _diag(doc, where, UNKNOWN_API_VERSION, message, f"use apiVersion: {model.API_VERSION}")
        ]
    cls = model.KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        where = ("kind",) if "kind" in data else ()
        message = "document has no kind" if kind is None else f"unknown kind {kind!r}"
        hint = suggest(str(kind), model.KINDS) if kind is not None else None
        return None, [
            _diag(
                doc,
                where,
                UNKNOWN_KIND,
                message,
                hint or f"kind is one of {', '.join(model.KINDS)}",
            )
        ]
    try:
        return cls.model_validate(data), []
    except ValidationError as exc:
        return None, _translate(doc, cls, exc.errors(include_url=False))


def _translate(doc: Document, cls: type[BaseModel], errors: Sequence[Any]) -> list[Diagnostic]:
    by_path: dict[Path, list[tuple[dict[str, Any], bool]]] = {}
    for error in errors:
        path, branched = _data_path(doc.data, error["loc"], error["type"])
        by_path.setdefault(path, []).append((error, branched))
    out = []
    for path, group in by_path.items():
        if len(group) > 1 and all(b for _, b in group):
            # A value matched none of a union's forms: one message, not one per form.
            value = _at(doc.data, path)
            forms = "; or ".join(sorted({_message(doc, cls, path, e)[1] for e, _ in group}))
            out.append(
                _diag(doc, path, INVALID_VALUE, f"invalid value {_show(value)}: {forms}", None)
            )
            continue
        for error, _ in group:
            code, message, hint = _message(doc, cls, path, error)
            out.append(_diag(doc, path, code, message, hint, key=code == UNKNOWN_KEY))
    return out


def _message(
    doc: Document, cls: type[BaseModel], path: Path, error: dict[str, Any]
) -> tuple[str, str, str | None]:
    kind = error["type"]
    value = error.get("input")
    field = path[-1] if path else "document"
    if kind == "extra_forbidden":
        known = _field_names(cls, path[:-1])
        hint = suggest(str(field), known)
        if hint is None and known:
            hint = "allowed keys here: " + ", ".join(sorted(known))
        return UNKNOWN_KEY, f"unknown key {field!r}", hint
    if kind == "missing":
        return MISSING_FIELD, f"missing required key {field!r}", f"add {field}: ..."
    if kind in _TYPE_NAMES:
        expected = _TYPE_NAMES[kind]
        hint = None
        if kind == "string_type" and isinstance(value, bool):
            hint = 'quote it ("true") if you mean the text'
        return WRONG_TYPE, f"{field!r} must be {expected}, not {describe(value)}", hint
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ",").split(",")]
        hint = suggest(str(value), choices) if isinstance(value, str) else None
        return (
            INVALID_VALUE,
            f"invalid value {_show(value)} for {field!r}: expected {expected}",
            hint,
        )
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and isinstance(value, str):
        return (
            INVALID_VALUE,
            f"invalid name {value!r} for {field!r}",
            "names use letters, digits, '.', '_' and '-', and start with a letter or digit",
        )
    return INVALID_VALUE, f"{field!r}: {message}", None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _data_path(data: Any, loc: Sequence[Any], kind: str) -> tuple[Path, bool]:
    """Map a pydantic error location onto the document data, skipping union-branch tags."""
    path: list[str | int] = []
    node = data
    branched = False
    last = len(loc) - 1
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif i == last and kind == "missing":
            path.append(part)
        elif isinstance(node, dict) and part == "for_" and "for" in node:
            path.append("for")
            node = node["for"]
        else:
            branched = True
    return tuple(path), branched


def _at(data: Any, path: Path) -> Any:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _field_names(cls: Any, path: Path) -> set[str]:
    """Field names (aliases) allowed at ``path`` of a document of type ``cls``."""
    current: list[Any] = [cls]
    for part in path:
        nxt: list[Any] = []
        for tp in current:
            nxt.extend(_step(tp, part))
        current = nxt
    names: set[str] = set()
    for tp in current:
        for inner in _unwrap(tp):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                for name, info in inner.model_fields.items():
                    names.add(info.alias or name)
    return names


def _unwrap(tp: Any) -> list[Any]:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out = []
        for arg in get_args(tp):
            out.extend(_unwrap(arg))
        return out
    value = getattr(tp, "__value__", None)  # TypeAliasType
    if value is not None:
        return _unwrap(value)
    return [tp]


def _step(tp: Any, part: str | int) -> list[Any]:
    out = []
    for inner in _unwrap(tp):
        origin = get_origin(inner)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            for name, info in inner.model_fields.items():
                if part in (name, info.alias):
                    out.append(info.annotation)
        elif origin is dict:
            out.append(get_args(inner)[1])
        elif origin is list:
            out.append(get_args(inner)[0])
    return out


def _diag(
    doc: Document,
    path: Path,
    code: str,
    message: str,
    hint: str | None,
    *,
    key: bool = False,
    severity: Severity = Severity.ERROR,
) -> Diagnostic:
    pos = doc.source_map.key(path) if key else doc.source_map.value(path)
    return Diagnostic(doc.file, pos.line, pos.column, severity, code, message, hint)
